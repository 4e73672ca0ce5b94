"""Series over time: the cost to reach a target accuracy, its paired gain, and drift of a reference workload.

Cost to target: accuracy is measured only at epoch ends, so between two epoch ends the cost (joules,
FLOPs or seconds, cumulative) is interpolated linearly in accuracy: if the target is first reached in epoch
k, cost = C[k-1] + (target - A[k-1]) / (A[k] - A[k-1]) * (C[k] - C[k-1]). This assumes accuracy rises
evenly with cost within that epoch; ``interpolate=False`` takes the epoch's end, an upper bound. In the first
epoch there is no earlier accuracy unless ``initial_accuracy`` (the accuracy before training, at cost 0) is
given; without it the first epoch's end is used.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
from scipy import stats as _sp

from .stats_core import (FAILS, HOLDS, INCONCLUSIVE, INTERVAL_LEVEL, StatResult, finite_array, interval_text,
                         make_result, one_sided_p, paired_log_differences, says_nothing, seeds_needed, t_interval,
                         too_few, too_wide)

#: The paper's third claim: energy-first designs give 5-33% training-efficiency gains (gain = 1 - ratio).
CLAIMED_GAIN_BAND = (0.05, 0.33)
#: Verdicts of ``reference_drift`` (besides ``inconclusive``).
DRIFTING = "drifting"
STABLE = "stable"
#: Reference drift that cannot matter: the fitted change over the whole series must stay inside +-5%,
#: half the energy SESOI (10%), so drift alone cannot fake or hide a change that matters.
DRIFT_TOLERANCE = 0.05


@dataclass(frozen=True)
class TargetCost:
    """The cost of first reaching a target accuracy.

    Attributes:
        cost: Cumulative cost (in the unit of the series given: J, FLOPs or s) at the target; None if never reached.
        epoch: 1-based epoch in which the target was first reached (0: before training); None if never reached.
        reason: How the cost was obtained, or why there is none.
    """

    cost: float | None
    epoch: int | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-safe dict."""
        return asdict(self)


def cost_to_target(cumulative_cost: Sequence[float], accuracy: Sequence[float], target_accuracy: float, *,
                   interpolate: bool = True, initial_accuracy: float | None = None) -> TargetCost:
    """Cost (J, FLOPs or s, cumulative at each epoch end) to first reach ``target_accuracy``.

    Args:
        cumulative_cost: Cumulative cost at the end of each epoch (non-decreasing).
        accuracy: Accuracy at the end of each epoch (any scale, the same as ``target_accuracy``).
        target_accuracy: The accuracy to reach (reached when accuracy >= target).
        interpolate: Interpolate within the epoch (see module docstring) or take the epoch's end.
        initial_accuracy: Accuracy before training (at cost 0), used to interpolate within the first epoch.

    Returns:
        The cost with the epoch, or ``cost=None`` with the reason it was never reached.

    Raises:
        ValueError: On mismatched lengths, non-finite values or a decreasing cumulative series.
    """
    c, a = finite_array(cumulative_cost, "cumulative_cost"), finite_array(accuracy, "accuracy")
    if len(c) != len(a):
        raise ValueError(f"{len(c)} cumulative costs but {len(a)} accuracies; one of each per epoch")
    if (np.diff(c) < 0).any() or (len(c) and c[0] < 0):
        raise ValueError("cumulative_cost must be non-negative and non-decreasing")
    hits = np.flatnonzero(a >= target_accuracy)
    if len(hits) == 0:
        best = f"best {a.max():g} at epoch {int(a.argmax()) + 1}" if len(a) else "no epochs"
        return TargetCost(None, None, f"target {target_accuracy:g} never reached in {len(a)} epochs ({best})")
    k = int(hits[0])
    if initial_accuracy is not None and initial_accuracy >= target_accuracy:
        return TargetCost(0.0, 0, f"reached before training (initial accuracy {initial_accuracy:g})")
    if k == 0:
        prev_cost, prev_acc = 0.0, initial_accuracy
    else:
        prev_cost, prev_acc = float(c[k - 1]), float(a[k - 1])
    if not interpolate or prev_acc is None or prev_acc >= target_accuracy:
        how = "epoch end" + ("" if interpolate else " (interpolation off)")
        if interpolate and prev_acc is None:
            how = "epoch end (no accuracy before the first epoch to interpolate from)"
        return TargetCost(float(c[k]), k + 1, f"reached in epoch {k + 1}; cost at the {how}")
    frac = (target_accuracy - prev_acc) / (float(a[k]) - prev_acc)
    cost = prev_cost + frac * (float(c[k]) - prev_cost)
    return TargetCost(cost, k + 1, f"reached in epoch {k + 1}; interpolated {frac:.2f} of the way through it")


def efficiency_gain(cost_at_lambda: Sequence[float], cost_at_baseline: Sequence[float], *,
                    claimed_band: tuple[float, float] = CLAIMED_GAIN_BAND, quantity: str = "energy") -> StatResult:
    """Gain ``1 - cost(lambda) / cost(0)`` to reach a target, paired by seed, against the claimed band.

    The ratio is the geometric mean of per-seed ratios with a Student-t interval on the mean log ratio
    (back-transformed, so a gain can never exceed 100%). Verdict: ``holds`` when the gain interval's lower end
    is at least the band's low end (at least the claimed minimum gain); ``fails`` when its upper end is below
    it; otherwise ``inconclusive`` with ``seeds_needed``. Detail ``above_band`` flags a gain whose interval
    lies wholly above the band's high end (larger than claimed).

    Args:
        cost_at_lambda: Cost to target (J, FLOPs or s) of each seed at lambda > 0; seeds that never reached
            the target must be dropped by the caller (and counted in its report).
        cost_at_baseline: Cost to target of the same seeds at lambda = 0.
        claimed_band: The claimed gain range as fractions (0.05, 0.33).
        quantity: What the cost is (``"energy"``, ``"flops"``, ``"time"``), used in the quantity name.

    Returns:
        ``<quantity>_to_target_gain_pct``.

    Raises:
        ValueError: On unpaired lengths or non-positive costs.
    """
    d = paired_log_differences(cost_at_lambda, cost_at_baseline, f"{quantity} cost to target")
    n, low_gain = len(d), claimed_band[0]
    mean, lo, hi, sd = t_interval(d)
    gain = (lambda v: None if v is None else (1 - math.exp(v)) * 100)  # noqa: E731
    g, g_lo, g_hi = gain(mean) if n else None, gain(hi), gain(lo)  # a larger log ratio is a smaller gain
    band = f"{claimed_band[0]:.0%}-{claimed_band[1]:.0%}"
    shown = f"gain {g:+.1f}%" + (f" [{g_lo:+.1f}, {g_hi:+.1f}]" if g_lo is not None else "") if n else "no seeds"
    above = g_lo is not None and g_lo > claimed_band[1] * 100
    undecided = f"gain {interval_text(g, g_lo, g_hi, n, '+.1f', '%', unresolved=True)}" if n else shown

    def result(verdict: str, reason: str, needed: int | None = None) -> StatResult:
        # The one-sided p of the decision reached: a gain of at least the band's low end (a log ratio below
        # log(1 - low)), or less than it.
        p = (None if verdict == INCONCLUSIVE else
             one_sided_p(mean, sd, n, math.log(1 - low_gain), above=verdict == FAILS))
        return make_result(f"{quantity}_to_target_gain_pct", n, g, (g_lo, g_hi),
                           f"paired by seed; Student t on the mean log ratio of cost to target, back-transformed; "
                           f"gain = 1 - ratio", verdict, reason, needed, ratio=math.exp(mean) if n else None,
                           claimed_band=list(claimed_band), above_band=above, sd_log_ratio=sd, p_value=p,
                           unresolved=says_nothing(g_lo, g_hi, "percent_change", verdict))

    if g_lo is None:
        return result(INCONCLUSIVE, too_few(shown, n))
    if g_lo >= low_gain * 100:
        extra = f", more than the claimed {band}" if above else f", consistent with the claimed {band}"
        return result(HOLDS, f"{shown}: at least the claimed {low_gain:.0%} gain{extra}")
    if g_hi < low_gain * 100:
        return result(FAILS, f"{shown}: below the claimed {band} (the gain is under {low_gain:.0%})")
    needed = seeds_needed(sd, abs(mean - math.log(1 - low_gain)))
    plan = f"about {needed} seeds would resolve it" if needed else "no seed count resolves an estimate on the bound"
    shown = undecided if too_wide(g_lo, g_hi, "percent_change") else shown
    return result(INCONCLUSIVE, f"{shown}: the interval straddles the claimed minimum {low_gain:.0%}; {plan}", needed)


def reference_drift(reference_energy_j: Sequence[float], *, tolerance: float = DRIFT_TOLERANCE) -> StatResult:
    """Drift of a fixed reference workload measured before every run, in run order, as a ratio.

    Fits log(energy) = a + b * run_index by least squares (a log-linear trend: drift multiplies energy), so
    every figure is a ratio that cannot go negative: the ratio per run ``exp(b)`` and the fitted ratio of the
    last run to the first ``exp(b * (n - 1))``, each with the Student-t interval of ``b`` (n - 2 df)
    back-transformed. Successive measurements may be autocorrelated, which this ignores, so treat a
    borderline interval with care. Verdict: ``DRIFTING`` when the interval of the ratio per run excludes 1;
    ``STABLE`` when the interval of the fitted last/first ratio lies inside ``[1 / (1 + tolerance),
    1 + tolerance]``; else ``inconclusive``, saying whether the interval is too wide to exclude a drift of
    ``tolerance``. Details: ``ratio_per_run_low/high``, ``fitted_last_over_first`` (with ``_low``/``_high``),
    ``last_over_first`` (the raw ratio of the two end measurements) and ``slope_log_per_run``.

    Args:
        reference_energy_j: Energy (J) of the reference workload before each run, in run order.
        tolerance: Fitted change over the series (fraction) that cannot matter.

    Returns:
        ``reference_drift_ratio_per_run`` (dimensionless; 1 = no drift).

    Raises:
        ValueError: On non-finite or non-positive energies.
    """
    y = finite_array(reference_energy_j, "reference_energy_j")
    if (y <= 0).any():
        raise ValueError("reference energies must be positive")
    n = len(y)
    method = ("OLS slope of log reference energy on run index (a log-linear trend), Student t (n-2 df), "
              "back-transformed to a ratio per run")
    if n < 3:
        return make_result("reference_drift_ratio_per_run", n, None, (None, None), method, INCONCLUSIVE,
                           f"{n} reference measurement(s): a slope with an interval needs 3")
    x, logs = np.arange(n, dtype=float), np.log(y)
    sxx = float(((x - x.mean()) ** 2).sum())
    b = float(((x - x.mean()) * (logs - logs.mean())).sum()) / sxx
    resid = logs - (float(logs.mean()) + b * (x - x.mean()))
    se = math.sqrt(float(resid @ resid) / (n - 2) / sxx)  # 0 for an exactly geometric series
    half = float(_sp.t.ppf(0.5 + INTERVAL_LEVEL / 2, n - 2)) * se
    per_run = [_exp(v) for v in (b, b - half, b + half)]
    whole = [_exp(v * (n - 1)) for v in (b, b - half, b + half)]
    wide = too_wide(whole[1], whole[2], "ratio")
    shown = (f"{per_run[0]:.4f}x per run [{per_run[1]:.4f}, {per_run[2]:.4f}] over {n} runs, fitted last/first "
             + (f"{whole[0]:.3f} [{whole[1]:.3g}, {whole[2]:.3g}]" if not wide else
                f"{whole[0]:.3g} (interval unresolved: it spans more than 100x)"))
    band = (1 / (1 + tolerance), 1 + tolerance)
    if b - half > 0 or b + half < 0:
        verdict, why = DRIFTING, f"{shown}: the reference drifts"
    elif band[0] < whole[1] and whole[2] < band[1]:
        verdict, why = STABLE, f"{shown}: any drift over the series is under {tolerance:.0%}"
    else:
        verdict, why = INCONCLUSIVE, (f"{shown}: no drift shown, but the interval of the fitted last/first ratio is "
                                      f"too wide to exclude a drift of {tolerance:.0%} over the series (that needs "
                                      f"it inside [{band[0]:.3f}, {band[1]:.3f}])")
    return make_result("reference_drift_ratio_per_run", n, per_run[0], (per_run[1], per_run[2]), method, verdict, why,
                       slope_log_per_run=b, ratio_per_run_low=per_run[1], ratio_per_run_high=per_run[2],
                       fitted_last_over_first=whole[0], fitted_last_over_first_low=whole[1],
                       fitted_last_over_first_high=whole[2], last_over_first=float(y[-1] / y[0]),
                       median_j=float(np.median(y)), unresolved=says_nothing(whole[1], whole[2], "ratio", verdict))


def _exp(v: float) -> float:
    """``exp`` that saturates instead of raising: a slope fitted to wild references stays a (huge) ratio."""
    return math.exp(min(v, 700.0))


#: Reference factors a drift correction accepts: a machine drifting more than 2x either way between runs is
#: not drift but a broken reference (a 1e-12 J reading once scaled a run by 2e11), so such a run is left
#: uncorrected and named.
PLAUSIBLE_FACTOR_BAND = (0.5, 2.0)
