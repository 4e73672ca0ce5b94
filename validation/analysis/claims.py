"""The paper's claims, its figures in one place, and each claim as a machine-readable verdict with its sentence.

The paper (an energy-regularised loss ``L = L_CE + lambda E``) claims:

1. architecture alone explains almost nothing of the variance (partial eta^2 = 0.001) while
   architecture x dataset explains much (0.44);
2. E falls about 1000x (v2: "about three orders of magnitude" over lambda in {0 .. 1e-2}) with under 0.5 pp
   of accuracy lost (v1's "to 6% of baseline at moderate lambda" names no lambda, so no run here is compared
   with it);
3. energy-first designs give 5-33% training-efficiency gains.

Its untested premise, that E tracks physical energy, is the ``energy_tracking`` and ``correlation``
claims. Every verdict is ``tracks`` / ``does_not_track`` / ``inconclusive`` (or ``holds`` / ``fails`` /
``inconclusive`` for the paper's own figures), read from the interval by the rules in ``stats``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from .figures import LOIHI, FigureId
from .stats import ACCURACY_MAX_LOSS_PP, CLAIMED_GAIN_BAND, ENERGY_SESOI, FAILS, HOLDS, INCONCLUSIVE, StatResult
from .stats_core import interval_text, one_sided_p

#: v2 abstract: E falls "about three orders of magnitude" at lambda = 1e-2.
PAPER_E_RATIO_V2 = 1000.0
#: "About" N x: within this factor of N either way.
PAPER_E_RATIO_FACTOR = 2.0
#: The paper's accuracy bound (pp lost), and its efficiency band (gain = 1 - cost ratio).
PAPER_MAX_ACC_LOSS_PP = ACCURACY_MAX_LOSS_PP
PAPER_EFFICIENCY_GAIN = CLAIMED_GAIN_BAND
#: The paper's ANOVA figures (partial eta^2).
PAPER_ETA2 = {"model": 0.001, "model:dataset": 0.44}
#: An ANOVA term "matters" at a partial eta^2 of at least this (Cohen's medium effect) with p < ANOVA_ALPHA.
ETA2_MEDIUM = 0.06
ANOVA_ALPHA = 0.05

KINDS = ("e_reduction", "accuracy_change", "energy_tracking", "energy_saving", "correlation", "training_efficiency",
         "architecture_anova")


@dataclass(frozen=True)
class Claim:
    """One claim evaluated on a sweep.

    Attributes:
        kind: What sort of claim: one of ``KINDS`` for the paper's; a registered claim may add its own.
        subject: What it is about: model, dataset, lambda, E definition, energy target (as present).
        figure: The figure the verdict reads (e.g. ``"inference cpu:model (net J per workload)"``).
        provenance: That figure's provenance (``measured``, ``integrated``, ``modeled``, ``counted``), if energy.
        estimate, low, high: The estimate and its interval (None where undefined).
        level: The interval's level.
        n: Independent units (seeds or clusters).
        method: How the interval was computed.
        verdict: ``tracks`` / ``does_not_track`` / ``inconclusive`` or ``holds`` / ``fails`` / ``inconclusive``.
        seeds_needed: For ``inconclusive``: seeds that would resolve it at the observed noise (None if unknown).
        sentence: The claim in words, computed from the numbers.
        paper: What the paper says, where it says something.
    """

    kind: str
    subject: Mapping[str, Any]
    figure: str
    provenance: str | None
    estimate: float | None
    low: float | None
    high: float | None
    level: float
    n: int
    method: str
    verdict: str
    sentence: str
    seeds_needed: int | None = None
    paper: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        def safe(v: Any) -> Any:
            return None if isinstance(v, float) and not math.isfinite(v) else v
        return {"kind": self.kind, "subject": dict(self.subject), "figure": self.figure, "provenance": self.provenance,
                "estimate": safe(self.estimate), "low": safe(self.low), "high": safe(self.high), "level": self.level,
                "n": self.n, "method": self.method, "verdict": self.verdict, "seeds_needed": self.seeds_needed,
                "sentence": self.sentence, "paper": self.paper, "details": dict(self.details)}


def _interval(s: StatResult, spec: str, suffix: str = "", verdict: str = INCONCLUSIVE) -> str:
    """The interval as a claim prints it: "unresolved (N seeds)" where it is too wide to say anything and
    ``verdict`` (the claim's, read from it) decided nothing."""
    return interval_text(s.estimate, s.low, s.high, s.n, spec, suffix,
                         unresolved=s.unresolved and verdict == INCONCLUSIVE)


def _said(s: StatResult, verb: str, noun: str, spec: str, suffix: str = "", verdict: str = INCONCLUSIVE) -> str:
    """``"<verb> <interval>"`` ("E fell 22x [18, 27]"), or ``"<noun> unresolved (N seeds)"`` ("E's fall
    unresolved (2 seeds)") where the interval says nothing and no verdict was read from it."""
    text = _interval(s, spec, suffix, verdict)
    return f"{noun} {text}" if text.startswith("unresolved") else f"{verb} {text}"


def _subject_text(subject: Mapping[str, Any]) -> str:
    parts = [f"{subject['model']} on {subject['dataset']}"]
    if "activation_energy_kind" in subject:
        parts.append(f"trained with E={subject['activation_energy_kind']}")
    if "measured_as" in subject:
        parts.append(f"E measured as {subject['measured_as']}")
    if "lambda" in subject:
        parts.append(f"lambda={subject['lambda']:g} vs 0")
    return ", ".join(parts)


def _claim(kind: str, subject: Mapping[str, Any], figure: str, provenance: str | None, s: StatResult, verdict: str,
           sentence: str, paper: str | None = None, **details: Any) -> Claim:
    return Claim(kind, dict(subject), figure, provenance, s.estimate, s.low, s.high, s.level, s.n, s.method, verdict,
                 sentence, s.seeds_needed if verdict == INCONCLUSIVE else None, paper, details)


def rescaling_split(measure: str, ratio: StatResult, scale_free: StatResult | None) -> str:
    """One sentence: the part of an E ratio a pure per-layer rescaling of the activations explains, and the
    scale-free part (``l2-scale-free`` / ``l1-scale-free``, which no positive per-layer rescaling moves)."""
    if ratio.estimate is None:
        return ""
    if measure.endswith("scale-free"):
        return "this E is scale-free by construction: no per-layer rescaling of the activations moves it"
    if measure == "l0":
        return (f"no rescaling moves l0 E (active units), so all of its {ratio.estimate:,.1f}x is scale-free "
                "(units switched off)")
    if scale_free is None or not scale_free.estimate:
        return (f"the records hold no {measure}-scale-free E to split it into a rescaling and a scale-free part "
                "(written before it was recorded)")
    return (f"a pure per-layer rescaling of the activations (which changes no prediction) explains "
            f"{ratio.estimate / scale_free.estimate:,.1f}x of it; the scale-free part ({measure}-scale-free E) is "
            f"{_interval(scale_free, ',.1f', 'x')}")


def e_reduction(subject: Mapping[str, Any], ratio: StatResult, *, still_rising: bool = False,
                scale_free: StatResult | None = None, level_unknown: bool = False) -> Claim:
    """E fell N x, against the paper's "about 1000x" (within a factor of 2), with the part a pure rescaling
    explains; a ratio below the band that was still rising at the last epoch reads "not reached at this
    training length (still rising)", inconclusive, instead of ``fails``; so does one whose levelling could not
    be judged (``level_unknown``: a one-epoch run), since a short run cannot refute a claim about a trained one."""
    lo_band, hi_band = PAPER_E_RATIO_V2 / PAPER_E_RATIO_FACTOR, PAPER_E_RATIO_V2 * PAPER_E_RATIO_FACTOR
    if ratio.low is None or ratio.high is None:
        verdict = INCONCLUSIVE
    elif ratio.low >= lo_band and ratio.high <= hi_band:
        verdict = HOLDS
    elif ratio.high < lo_band or ratio.low > hi_band:
        verdict = FAILS
    else:
        verdict = INCONCLUSIVE
    status = verdict
    not_reached = verdict == FAILS and ratio.high is not None and ratio.high < lo_band and still_rising
    if not_reached:
        verdict, status = INCONCLUSIVE, "not reached at this training length (still rising)"
    elif verdict == FAILS and ratio.high is not None and ratio.high < lo_band and level_unknown:
        not_reached = True
        verdict, status = INCONCLUSIVE, ("not reached at this training length (too few epochs to tell whether "
                                         "it had levelled off)")
    measure = str(subject.get("measured_as", subject.get("activation_energy_kind", "l2/sum"))).split("/")[0]
    split = rescaling_split(measure, ratio, scale_free)
    fell = _said(ratio, "E fell", "E's fall", ",.1f", "x", verdict)
    text = (f"{_subject_text(subject)}: {fell} (paper: about "
            f"{PAPER_E_RATIO_V2:,.0f}x, i.e. {lo_band:,.0f}-{hi_band:,.0f}x): {status}"
            + (f"; {split}" if split else ""))
    return _claim("e_reduction", subject, "activation energy E per test sample", "counted", ratio, verdict, text,
                  f"about {PAPER_E_RATIO_V2:,.0f}x", still_rising=still_rising, not_reached=not_reached,
                  rescaling_split=split,
                  scale_free_ratio=None if scale_free is None else scale_free.estimate)


def joint(subject: Mapping[str, Any], lam: float | None, ratio: StatResult | None) -> Claim:
    """The paper's two figures together: at the largest lambda whose accuracy loss is shown to be under 0.5 pp,
    how far E fell (``lam`` None: no lambda > 0 showed it)."""
    if lam is None or ratio is None:
        s = StatResult("E(lambda=0) / E(lambda), times", 0, None, None, None, 0.95, "not computed", INCONCLUSIVE)
        text = (f"{_subject_text(subject)}: no lambda > 0 shows an accuracy loss under {PAPER_MAX_ACC_LOSS_PP} pp "
                f"(interval), so the paper's joint claim (about {PAPER_E_RATIO_V2:,.0f}x less E with under "
                f"{PAPER_MAX_ACC_LOSS_PP} pp lost) cannot be evaluated: inconclusive")
        return _claim("e_reduction", {**subject, "joint": True}, "activation energy E per test sample", "counted", s,
                      INCONCLUSIVE, text, f"about {PAPER_E_RATIO_V2:,.0f}x with under {PAPER_MAX_ACC_LOSS_PP} pp lost")
    inner = e_reduction({**subject, "lambda": lam}, ratio)
    fell = _said(ratio, "E fell", "E's fall", ",.1f", "x", inner.verdict)
    text = (f"{_subject_text(subject)}: at the largest lambda losing under {PAPER_MAX_ACC_LOSS_PP} pp "
            f"(lambda={lam:g}), {fell}; the paper: about "
            f"{PAPER_E_RATIO_V2:,.0f}x with under {PAPER_MAX_ACC_LOSS_PP} pp lost: {inner.verdict}")
    return _claim("e_reduction", {**subject, "lambda": lam, "joint": True}, inner.figure, "counted", ratio,
                  inner.verdict, text, f"about {PAPER_E_RATIO_V2:,.0f}x with under {PAPER_MAX_ACC_LOSS_PP} pp lost")


def accuracy(subject: Mapping[str, Any], change: StatResult) -> Claim:
    """The paper's "under 0.5 pp lost", with a rise beyond the bound said as such."""
    detail = dict(change.details)
    said = _said(change, "accuracy changed", "accuracy change", "+.2f", " pp", change.verdict or INCONCLUSIVE)
    text = f"{_subject_text(subject)}: {said}: "
    if detail.get("rose_beyond_bound"):
        text += f"no loss (accuracy rose by more than the {PAPER_MAX_ACC_LOSS_PP} pp bound)"
    elif change.verdict == HOLDS:
        text += f"under {PAPER_MAX_ACC_LOSS_PP} pp lost (holds)"
    elif change.verdict == FAILS:
        text += f"more than {PAPER_MAX_ACC_LOSS_PP} pp lost (fails)"
    else:
        text += f"cannot tell whether under {PAPER_MAX_ACC_LOSS_PP} pp was lost (inconclusive: {change.reason})"
    return _claim("accuracy_change", subject, "test accuracy (pp)", None, change, change.verdict or INCONCLUSIVE, text,
                  f"under {PAPER_MAX_ACC_LOSS_PP} pp lost")


def _energy_label(target: FigureId) -> str:
    provenance = target.provenance
    return f"{provenance} {target.label}" if provenance != "modeled" else f"{target.label} (modeled, not measured)"


def _change_text(change: StatResult, verdict: str = INCONCLUSIVE) -> str:
    """The energy change in words; ``verdict``: the claim's verdict if read from this interval."""
    if change.estimate is None:
        return change.reason or "no energy change computed"
    return _said(change, "energy changed", "energy change", "+.1f", "%", verdict)


def energy_tracking(subject: Mapping[str, Any], target: FigureId, change: StatResult,
                    slope: StatResult | None, sesoi: float = ENERGY_SESOI) -> Claim:
    """Whether an energy follows E: the elasticity's verdict (``stats_elasticity``), the paired change beside it.

    The claim's estimate and interval are the elasticity's (slope of log energy on log E within seed); the
    energy change (percent) is in ``details["energy_change"]``, and whether it is a saving that matters is the
    ``energy_saving`` claim.
    """
    where = "on simulated Loihi" if target.phase == LOIHI else "on this device"
    runtime = is_runtime_proxy(target)
    if slope is None:
        slope = StatResult("elasticity", change.n, None, None, None, change.level, "not computed", INCONCLUSIVE,
                           change.reason or "no elasticity: fewer than 2 seeds with both runs")
    if slope.estimate is None:
        words = RUNTIME_PROXY_NOTE if runtime else f"inconclusive ({slope.reason})"
        text = f"{_subject_text(subject)}: {_energy_label(target)}: {_change_text(change)}; {words}"
    else:
        verdict_words = {"tracks": f"{where} this energy follows E (tracks)",
                         "does_not_track": f"{where} E does not track this energy (does_not_track)"}
        words = (RUNTIME_PROXY_NOTE if runtime
                 else verdict_words.get(slope.verdict or "", f"inconclusive ({slope.reason})"))
        text = (f"{_subject_text(subject)}: {_energy_label(target)}: elasticity {_interval(slope, '+.3f')} (1 = "
                f"proportional to E, 0 = independent of it), {_change_text(change)}: {words}")
    verdict = INCONCLUSIVE if runtime else slope.verdict or INCONCLUSIVE
    extra: dict[str, Any] = {"energy_change": change.to_dict(), "p_value": slope.detail("p_value")}
    if runtime:
        extra["runtime_proxy"] = True
    if target.phase == LOIHI:
        text += f" ({LOIHI_NOTE})"
    return _claim("energy_tracking", {**subject, "target": target.label}, target.label, target.provenance, slope,
                  verdict, text, None, **extra)


def energy_saving(subject: Mapping[str, Any], target: FigureId, change: StatResult,
                  sesoi: float = ENERGY_SESOI) -> Claim:
    """Whether lambda saves at least ``sesoi`` of an energy: the paired change read against the smallest change
    that matters (``holds``: the interval lies below -sesoi; ``fails``: it excludes every saving of sesoi or more)."""
    runtime = is_runtime_proxy(target)
    bound = math.log1p(sesoi)
    mean, sd, n = change.detail("mean_log_ratio"), change.detail("sd_log_ratio"), change.n
    low, high = change.detail("ratio_low"), change.detail("ratio_high")
    verdict, p = INCONCLUSIVE, None
    if change.estimate is not None and low is not None and high is not None and not runtime:
        if math.log(high) < -bound:
            verdict, p = HOLDS, one_sided_p(mean, sd, n, -bound, above=False)
        elif math.log(low) > -bound:
            verdict, p = FAILS, one_sided_p(mean, sd, n, -bound, above=True)
    words = {HOLDS: f"saves more than {sesoi:.0%} (holds)",
             FAILS: f"saves less than {sesoi:.0%}, if anything (fails)"}.get(
        verdict, RUNTIME_PROXY_NOTE if runtime else f"cannot tell whether it saves {sesoi:.0%} (inconclusive)")
    text = f"{_subject_text(subject)}: {_energy_label(target)}: {_change_text(change, verdict)}: {words}"
    if target.phase == LOIHI:
        text += f" ({LOIHI_NOTE})"
    return _claim("energy_saving", {**subject, "target": target.label}, target.label, target.provenance, change,
                  verdict, text, None, p_value=p, sesoi=sesoi, **({"runtime_proxy": True} if runtime else {}))


#: What every verdict on simulated Loihi energy says of itself.
LOIHI_NOTE = "computed from the spike counts of the same activations E sums; not independent evidence"
#: What a modeled figure of this machine is, said where a verdict would otherwise stand.
RUNTIME_PROXY_NOTE = ("a runtime proxy (CPU seconds x a TDP share), not energy: no tracks/does_not_track verdict "
                      "is drawn from it (inconclusive)")


def is_runtime_proxy(target: FigureId) -> bool:
    """A modeled figure of this machine (the CPU model: CPU time x a TDP share), not a simulator's."""
    return target.provenance == "modeled" and target.phase != LOIHI


def correlation(subject: Mapping[str, Any], proxy: str, target: FigureId, result: StatResult) -> Claim:
    """A proxy's correlation with an energy, within groups, with a cluster-bootstrap interval."""
    provenance = target.provenance
    runtime = is_runtime_proxy(target)
    words = (RUNTIME_PROXY_NOTE if runtime else
             {"tracks": f"{proxy} tracks it", "does_not_track": f"{proxy} does not track it"}.get(
                 result.verdict or "", f"inconclusive ({result.reason})"))
    text = (f"{proxy} vs {target.label} ({provenance}) within {subject.get('groups', 1)} group(s), "
            f"{result.n} clusters: {result.quantity} {_interval(result, '+.2f')}: {words}")
    if target.phase == LOIHI:
        text += f" ({LOIHI_NOTE})"
    return _claim("correlation", {**subject, "proxy": proxy, "target": target.label}, target.label, provenance, result,
                  INCONCLUSIVE if runtime else result.verdict or INCONCLUSIVE, text,
                  p_value=result.detail("p_value"), **({"runtime_proxy": True} if runtime else {}))


def training_efficiency(subject: Mapping[str, Any], quantity: str, gain: StatResult, never: int,
                        target_pct: float | None = None, baseline: Any = None, same_flops: bool = False) -> Claim:
    """Cost to the target accuracy, lambda vs 0: against the paper's 5-33% gains.

    Args:
        target_pct: The target accuracy (percent): the lambda = 0 runs' mean final accuracy minus 0.5 pp.
        baseline: The lambda = 0 runs' final accuracy across seeds (an ``Interval``, percent), or None.
        same_flops: Every run does the baseline's FLOPs per epoch: a gain is faster convergence.
    """
    lo, hi = PAPER_EFFICIENCY_GAIN
    interval = _interval(gain, "+.1f", "%", gain.verdict or INCONCLUSIVE)  # gain in percent
    target = ""
    if target_pct is not None:
        spread = (f" [{baseline.low:.2f}, {baseline.high:.2f}]{' clipped' if baseline.clipped else ''}"
                  if baseline is not None and baseline.low is not None else "")
        target = (f" to {target_pct:.2f}% accuracy (the lambda = 0 runs' mean final accuracy"
                  f"{'' if baseline is None else f' {baseline.mean:.2f}%'}{spread} minus {PAPER_MAX_ACC_LOSS_PP} pp; "
                  "cost interpolated within the epoch that reaches it)")
    text = (f"{_subject_text(subject)}: {quantity}-to-target gain {interval}{target} (paper: {lo:.0%}-{hi:.0%}): "
            + {"holds": "holds", "fails": "fails"}.get(gain.verdict or "", f"inconclusive ({gain.reason})"))
    if never:
        text += f"; {never} run(s) never reached the target"
    if same_flops:
        text += "; the FLOPs per epoch are the baseline's: a gain here is faster convergence, not cheaper computation"
    details = {"never_reached": never, "same_flops_per_epoch": same_flops}
    if target_pct is not None:
        details["target_accuracy_pct"] = target_pct
    return _claim("training_efficiency", {**subject, "quantity": quantity}, f"{quantity} to target accuracy", None,
                  gain, gain.verdict or INCONCLUSIVE, text, f"{lo:.0%}-{hi:.0%} gains", **details,
                  p_value=gain.detail("p_value"))


def architecture_anova(response: str, table: list[dict[str, Any]]) -> list[Claim]:
    """ANOVA terms beside the paper's partial eta^2; a term "matters" only with p < 0.05 and eta^2 >= medium."""
    out = []
    for row in table:
        term = row["term"]
        eta = row.get("partial_eta_sq")
        p = row.get("p")
        paper = PAPER_ETA2.get(term)
        matters = eta is not None and p is not None and p < ANOVA_ALPHA and eta >= ETA2_MEDIUM
        if paper is None:
            verdict = INCONCLUSIVE
        elif paper < ETA2_MEDIUM:  # the paper says this term explains almost nothing
            verdict = FAILS if matters else INCONCLUSIVE  # absence of evidence is not evidence of absence
        else:
            verdict = HOLDS if matters else INCONCLUSIVE
        s = StatResult("partial eta^2", int(row.get("n", 0)), eta, None, None, 0.95,
                       f"two-way ANOVA (type II) of {response} with lambda as a blocking factor, F = {row['F']:.3g}, "
                       f"p = {p:.3g}; the decision is the F test (p < {ANOVA_ALPHA}) with eta^2 >= {ETA2_MEDIUM}",
                       verdict)
        text = (f"ANOVA of {response}: {term} partial eta^2 = {eta:.3f} (p = {p:.3g})"
                + (f" beside the paper's {paper}" if paper is not None else "") + f": {verdict}")
        out.append(_claim("architecture_anova", {"term": term, "response": response}, response, None, s, verdict, text,
                          None if paper is None else f"partial eta^2 = {paper}"))
    return out
