"""Changes paired by seed: energy at lambda vs lambda = 0 and accuracy vs the paper's bound.

Energy is compared on the log scale: for each seed the log of (energy at lambda / energy at lambda = 0),
a Student-t interval on the mean of those logs, and the back-transform ``exp``. The estimate is then the
geometric-mean ratio, a percent change is ``(ratio - 1) * 100``, and no interval can pass -100% (energy
cannot fall below zero). Verdicts are read from the reported 95% interval (see ``stats_core``).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .stats_core import (DOES_NOT_TRACK, FAILS, HOLDS, INCONCLUSIVE, TRACKS, StatResult, finite_array,
                         interval_text, make_result, paired_log_differences, says_nothing, seeds_needed, t_interval,
                         too_few, too_wide)

#: Smallest energy change of interest (SESOI), as a fraction. A change is "one that matters" when the
#: energy ratio leaves [1 / (1 + SESOI), 1 + SESOI], a band symmetric on the log scale (-9.1% .. +10% at
#: 0.10). Why 10%: the proxy under test falls ~1000x, so a proxy that tracks energy even loosely moves it by
#: far more than 10%; below 10% a change is within the run-to-run spread of energy counters on a shared
#: host (a few percent) plus drift, and smaller than any saving a user would retrain a network for.
#: A 5% SESOI (the low end of the paper's efficiency claim) needs about four times the seeds at equal noise;
#: pass ``sesoi=0.05`` where that is the question.
ENERGY_SESOI = 0.10
#: The paper's accuracy claim: "under 0.5 pp lost" (percentage points).
ACCURACY_MAX_LOSS_PP = 0.5
#: An accuracy change lies within +-this (percentage points): accuracy is a percent.
ACCURACY_CHANGE_RANGE_PP = 100.0

_LOG_T = "Student t on the mean of per-seed log ratios, back-transformed (geometric-mean ratio)"


def _pct(log_value: float | None) -> float | None:
    return None if log_value is None else (math.exp(log_value) - 1.0) * 100.0


def _fmt_pct(mean: float, low: float | None, high: float | None, n: int, unresolved: bool = False) -> str:
    if low is None or high is None:
        return f"{mean:+.1f}%"
    return interval_text(mean, low, high, n, "+.1f", "%", unresolved=unresolved)


def paired_ratio(after: Sequence[float], before: Sequence[float], quantity: str) -> StatResult:
    """Geometric-mean ratio ``after / before`` over pairs sharing a seed, with its 95% interval; no verdict.

    Use it for the proxy's own fall (E at lambda over E at lambda = 0): ``high < 1`` says E fell reliably,
    which is what ``energy_change(proxy_fell=...)`` asks. Detail ``fold_fall`` is ``1 / ratio``.

    Args:
        after: Values at lambda > 0 (positive), one per seed.
        before: Values at lambda = 0 for the same seeds, same order.
        quantity: What the values are (``"activation_energy"``); the result is ``<quantity>_ratio``.

    Returns:
        ``<quantity>_ratio`` (dimensionless).

    Raises:
        ValueError: On unpaired lengths, non-positive or non-finite values.
    """
    d = paired_log_differences(after, before, quantity)
    mean, lo, hi, sd = t_interval(d)
    n = len(d)
    ratio = math.exp(mean) if n else None
    r_lo, r_hi = (None if v is None else math.exp(v) for v in (lo, hi))
    wide = says_nothing(r_lo, r_hi, "ratio", None)
    shown = interval_text(ratio, r_lo, r_hi, n, ".4g", "x", unresolved=wide) if n else ""
    reason = f"{quantity} ratio {shown} over {n} seed(s)" if n > 1 else too_few(f"{quantity} ratio {shown}", n)
    return make_result(f"{quantity}_ratio", n, ratio, (r_lo, r_hi), f"paired by seed; {_LOG_T}", None, reason,
                       fold_fall=None if ratio is None else 1 / ratio, sd_log_ratio=sd, unresolved=wide)


def energy_change(energy_j_at_lambda: Sequence[float], energy_j_at_baseline: Sequence[float], *,
                  proxy_fell: bool = True, sesoi: float = ENERGY_SESOI, proxy: str = "E") -> StatResult:
    """Whether an energy follows a fall of the proxy, from energies paired by seed.

    Verdicts, with ``L = log(1 + sesoi)`` and ``[lo, hi]`` the 95% interval of the mean log ratio:

    * ``tracks``: ``hi < -L`` (energy fell, by more than the SESOI).
    * ``does_not_track``: ``-L < lo`` and ``hi < L`` (two one-sided tests, each at alpha = 0.025: every change
      that matters is excluded), or ``lo > 0`` (energy rose while the proxy fell).
    * ``inconclusive``: anything else, with ``seeds_needed``: the fewest seeds that would reach any of the
      decisions open to the observed mean (see ``stats_core.seeds_needed``).

    Args:
        energy_j_at_lambda: Energy (J) of each seed's run at lambda > 0.
        energy_j_at_baseline: Energy (J) of the same seeds' runs at lambda = 0, in the same order.
        proxy_fell: Whether the proxy (E) fell reliably between the two; when it did not, tracking is not
            tested and the verdict is ``inconclusive``.
        sesoi: Smallest energy change of interest, as a fraction (0.10 = 10%).
        proxy: The proxy's name in the reason.

    Returns:
        ``energy_change_pct`` with the ratio and log-scale figures in ``details``.

    Raises:
        ValueError: On unpaired lengths, non-positive or non-finite energies, or a SESOI not in (0, 1).
    """
    if not 0 < sesoi < 1:
        raise ValueError(f"sesoi is a fraction in (0, 1), got {sesoi}")
    d = paired_log_differences(energy_j_at_lambda, energy_j_at_baseline, "energy_j")
    n, bound = len(d), math.log1p(sesoi)
    mean, lo, hi, sd = t_interval(d)
    pct, pct_lo, pct_hi = _pct(mean), _pct(lo), _pct(hi)
    shown = _fmt_pct(pct, pct_lo, pct_hi, n) if n else "no seeds"
    # What an inconclusive reason shows: "unresolved (N seeds)" for an interval too wide to say anything.
    undecided = _fmt_pct(pct, pct_lo, pct_hi, n, too_wide(pct_lo, pct_hi, "percent_change")) if n else shown
    band = f"{sesoi:.0%}"

    def result(verdict: str, reason: str, needed: int | None = None) -> StatResult:
        return make_result(
            "energy_change_pct", n, pct if n else None, (pct_lo, pct_hi), f"paired by seed; {_LOG_T}",
            verdict, reason, needed, ratio=math.exp(mean) if n else None,
            ratio_low=None if lo is None else math.exp(lo), ratio_high=None if hi is None else math.exp(hi),
            mean_log_ratio=mean, sd_log_ratio=sd, sesoi=sesoi,
            unresolved=says_nothing(pct_lo, pct_hi, "percent_change", verdict))

    if n < 2:
        return result(INCONCLUSIVE, too_few(f"energy changed {shown}", n))
    if not proxy_fell:
        return result(INCONCLUSIVE, f"energy changed {undecided}; {proxy} did not fall reliably, so whether energy "
                                    "follows it is not tested")
    if hi < -bound:
        return result(TRACKS, f"energy changed {shown}: a fall larger than the {band} that matters")
    if lo > 0:
        return result(DOES_NOT_TRACK, f"energy changed {shown}: it rose while {proxy} fell")
    if -bound < lo and hi < bound:
        return result(DOES_NOT_TRACK, f"energy changed {shown}: the interval excludes every change of "
                                      f"{band} or more, so energy did not follow {proxy}")
    candidates = []
    if mean < -bound:
        candidates.append(seeds_needed(sd, -bound - mean))
    if abs(mean) < bound:
        candidates.append(seeds_needed(sd, bound - abs(mean), sides=2))
    if mean > 0:
        candidates.append(seeds_needed(sd, mean))
    needed = min((c for c in candidates if c is not None), default=None)
    plan = (f"about {needed} seeds would resolve it at the observed noise (SD of log ratios {sd:.3f})"
            if needed is not None else "the estimate sits on a decision boundary, so no seed count resolves it")
    return result(INCONCLUSIVE, f"energy changed {undecided}: the interval neither shows a fall larger than {band} "
                                f"nor excludes changes of {band}; {plan}", needed)


def accuracy_change(accuracy_pct_at_lambda: Sequence[float], accuracy_pct_at_baseline: Sequence[float], *,
                    max_loss_pp: float = ACCURACY_MAX_LOSS_PP) -> StatResult:
    """Whether the paper's "under ``max_loss_pp`` lost" holds, from accuracies (percent) paired by seed.

    ``holds`` when the 95% interval's lower end is above ``-max_loss_pp``; ``fails`` when its upper end is
    below it; otherwise ``inconclusive`` with ``seeds_needed``. A rise is reported as a rise: detail
    ``rose_beyond_bound`` is True when the lower end is above ``+max_loss_pp`` (a change larger than the
    bound, in the favourable direction), which is not "within" the bound; ``estimate_above_bound`` says the
    same of the point estimate alone.

    Args:
        accuracy_pct_at_lambda: Test accuracy (percent, 0-100) of each seed at lambda > 0.
        accuracy_pct_at_baseline: Test accuracy (percent) of the same seeds at lambda = 0.
        max_loss_pp: The claimed bound on the loss, percentage points (> 0).

    Returns:
        ``accuracy_change_pp``: the mean paired difference with a Student-t interval.

    Raises:
        ValueError: On unpaired lengths or non-finite values.
    """
    a = finite_array(accuracy_pct_at_lambda, "accuracy_pct")
    b = finite_array(accuracy_pct_at_baseline, "accuracy_pct")
    if a.shape != b.shape:
        raise ValueError(f"accuracy_pct: {len(a)} values at lambda vs {len(b)} at baseline; pair them by seed")
    d = a - b
    n = len(d)
    mean, raw_lo, raw_hi, sd = t_interval(d)
    # A change of accuracy lies in [-100, +100] pp: the t interval is clipped to it (the verdicts, read at
    # +-max_loss_pp, are unchanged by the clip); "unresolved" reads the interval before the clip.
    lo, hi = (None if v is None else min(max(v, -ACCURACY_CHANGE_RANGE_PP), ACCURACY_CHANGE_RANGE_PP)
              for v in (raw_lo, raw_hi))
    clipped = (lo, hi) != (raw_lo, raw_hi)
    wide = too_wide(raw_lo, raw_hi, "points")
    shown = (interval_text(mean, lo, hi, n, "+.2f", " pp") if lo is not None else
             f"{mean:+.2f} pp (no interval)" if n else "no seeds")
    bound = f"{max_loss_pp:g} pp"
    rose_beyond = lo is not None and lo > max_loss_pp

    def result(verdict: str, reason: str, needed: int | None = None) -> StatResult:
        method = "paired by seed; Student t on the mean difference" + (
            f", clipped to the possible -{ACCURACY_CHANGE_RANGE_PP:g}..+{ACCURACY_CHANGE_RANGE_PP:g} pp"
            if clipped else "")
        return make_result("accuracy_change_pp", n, mean if n else None, (lo, hi), method, verdict, reason, needed,
                           max_loss_pp=max_loss_pp, rose_beyond_bound=rose_beyond, sd_pp=sd,
                           estimate_above_bound=bool(n) and mean > max_loss_pp, clipped=clipped,
                           unresolved=wide and verdict == INCONCLUSIVE)

    if lo is None or hi is None:
        return result(INCONCLUSIVE, too_few(shown, n))
    if rose_beyond:
        return result(HOLDS, f"{shown}: no loss (accuracy rose by more than the {bound} bound)")
    if lo > 0:
        return result(HOLDS, f"{shown}: no loss (accuracy rose)")
    if lo > -max_loss_pp:
        return result(HOLDS, f"{shown}: any loss is under the {bound} bound")
    if hi < -max_loss_pp:
        return result(FAILS, f"{shown}: more than {bound} lost")
    needed = seeds_needed(sd, abs(mean + max_loss_pp))
    plan = f"about {needed} seeds would resolve it" if needed else "no seed count resolves an estimate on the bound"
    shown = interval_text(mean, lo, hi, n, "+.2f", " pp", unresolved=wide)
    return result(INCONCLUSIVE, f"{shown}: the interval reaches both sides of a {bound} loss; {plan}", needed)


__all__ = ["ENERGY_SESOI", "ACCURACY_MAX_LOSS_PP", "paired_ratio", "energy_change", "accuracy_change"]
