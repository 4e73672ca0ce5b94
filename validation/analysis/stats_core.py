"""The result record, the decision constants and the interval arithmetic every statistic here shares.

One rule for every verdict in ``energymeter.validation.analysis.stats``: a verdict is read from the **reported 95%
interval**. Each side of a two-sided question is then a one-sided test at alpha = 0.025, and an
equivalence verdict (two one-sided tests, TOST) is at alpha = 0.025 per side. This is stricter than the
textbook TOST (alpha = 0.05, read from a 90% interval), and it is chosen so that a reader can check every
verdict against the interval printed beside it: no verdict ever contradicts the interval a report shows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
from scipy import stats as _sp

#: Level of every interval reported and of every interval a verdict is read from.
INTERVAL_LEVEL = 0.95
#: Power the "seeds needed" figure aims for (the chance that that many seeds would resolve the question
#: if the observed mean and SD were the truth).
TARGET_POWER = 0.80

# Verdict vocabulary. A proxy tracks an energy or it does not; a claim of the paper holds or fails.
TRACKS = "tracks"
DOES_NOT_TRACK = "does_not_track"
HOLDS = "holds"
FAILS = "fails"
INCONCLUSIVE = "inconclusive"

#: Beyond this many seeds the answer is "not feasible" (None) rather than a number.
_MAX_SEEDS = 10**9

#: An interval too wide to say anything is printed as "unresolved (N seeds)" instead of its ends. The rule,
#: by the scale the interval is on (``too_wide``): a ratio ("times") whose interval spans more than
#: ``UNRESOLVED_RATIO_SPAN`` (high / low, two orders of magnitude); a percent change (of a ratio: energy,
#: a cost) whose interval is wider than ``UNRESOLVED_PERCENT_WIDTH`` points (it reaches a ten-fold rise);
#: accuracy or an accuracy change (percent, percentage points) whose interval is wider than
#: ``UNRESOLVED_POINTS_WIDTH``, the whole accuracy scale. An interval a verdict was decided from is always
#: printed, so every decided verdict can be checked against its interval.
UNRESOLVED_RATIO_SPAN = 100.0
UNRESOLVED_PERCENT_WIDTH = 1000.0
UNRESOLVED_POINTS_WIDTH = 100.0
#: The scales ``too_wide`` knows.
SCALES = ("ratio", "percent_change", "points")


def too_wide(low: float | None, high: float | None, scale: str) -> bool:
    """Whether an interval is too wide to say anything, by the rule of its scale (see ``UNRESOLVED_RATIO_SPAN``).

    Args:
        low, high: The interval's ends (None: no interval, which is not "too wide").
        scale: ``ratio`` (positive, dimensionless), ``percent_change`` (percent) or ``points`` (percent or pp
            of accuracy).

    Raises:
        ValueError: ``scale`` is not one of ``SCALES``.
    """
    if scale not in SCALES:
        raise ValueError(f"scale {scale!r}: one of {', '.join(SCALES)}")
    if low is None or high is None or not (math.isfinite(low) or math.isfinite(high)):
        return low is not None and high is not None  # both ends infinite: says nothing
    if scale == "ratio":
        return low <= 0 or not math.isfinite(high) or high / low > UNRESOLVED_RATIO_SPAN
    width = high - low
    return not math.isfinite(width) or width > (UNRESOLVED_PERCENT_WIDTH if scale == "percent_change"
                                                else UNRESOLVED_POINTS_WIDTH)


def unresolved_text(n: int, unit: str = "seed") -> str:
    """What a report prints in place of an interval too wide to say anything."""
    return f"unresolved ({n} {unit}{'' if n == 1 else 's'})"


def interval_text(estimate: float | None, low: float | None, high: float | None, n: int, spec: str,
                  suffix: str = "", *, unresolved: bool = False, unit: str = "seed") -> str:
    """``estimate [low, high]`` with a format spec; ``unresolved (N seeds)`` for an interval that says nothing;
    ``estimate (n=N, no interval)`` without one; ``n/a`` without an estimate."""
    if estimate is None or estimate != estimate:
        return "n/a"
    if unresolved:
        return unresolved_text(n, unit)
    if low is None or high is None:
        return f"{estimate:{spec}}{suffix} (n={n}, no interval)"
    return f"{estimate:{spec}}{suffix} [{low:{spec}}, {high:{spec}}]"


def _json_safe(value: Any) -> Any:
    if isinstance(value, (bool, str)) or value is None:
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_json_safe(v) for v in value]
    return str(value)


@dataclass(frozen=True)
class StatResult:
    """One statistic with its uncertainty, how it was computed, and what it decides.

    Attributes:
        quantity: What the estimate is, with its unit (``"energy_change_pct"``, ``"pearson_r"``).
        n: Independent units the interval rests on (seeds, clusters, runs), not rows.
        estimate: Point estimate (None when undefined, e.g. no data).
        low: Lower end of the interval (None when it cannot be computed, e.g. n < 2).
        high: Upper end of the interval.
        level: Interval level (0.95).
        method: How the estimate and interval were computed, in words.
        verdict: ``tracks``/``does_not_track``/``inconclusive`` for proxies, ``holds``/``fails``/
            ``inconclusive`` for the paper's claims, other documented words for drift; None for a plain estimate.
        reason: A sentence fragment, computed from the numbers, that says why the verdict is what it is.
        seeds_needed: For an inconclusive verdict, how many seeds (or clusters, repetitions) would resolve it
            at the observed noise with ``TARGET_POWER``; None when decided or when it cannot be estimated.
        details: Further named figures as ``(name, value)`` pairs (use ``detail(name)``).
    """

    quantity: str
    n: int
    estimate: float | None
    low: float | None
    high: float | None
    level: float
    method: str
    verdict: str | None = None
    reason: str = ""
    seeds_needed: int | None = None
    details: tuple[tuple[str, Any], ...] = ()

    def detail(self, name: str, default: Any = None) -> Any:
        """The value of one entry of ``details`` (``default`` when absent)."""
        return dict(self.details).get(name, default)

    @property
    def unresolved(self) -> bool:
        """Whether the interval is too wide to say anything (detail ``unresolved``, set by the statistic by the
        rule of ``too_wide``); a report prints ``unresolved (N seeds)`` in its place."""
        return bool(self.detail("unresolved", False))

    @property
    def clipped(self) -> bool:
        """Whether an end of the interval was clipped to the quantity's possible range (detail ``clipped``)."""
        return bool(self.detail("clipped", False))

    def fmt(self, spec: str = ".2f", suffix: str = "") -> str:
        """``estimate [low, high]`` formatted with ``spec`` (``n=…, no interval`` when there is none,
        ``unresolved (N seeds)`` when it is too wide to say anything)."""
        if self.estimate is None:
            return f"n/a (n={self.n})"
        return interval_text(self.estimate, self.low, self.high, self.n, spec, suffix, unresolved=self.unresolved)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict: non-finite floats become None, numpy scalars become Python numbers."""
        out = {k: _json_safe(getattr(self, k)) for k in
               ("quantity", "n", "estimate", "low", "high", "level", "method", "verdict", "reason", "seeds_needed")}
        out["details"] = {str(k): _json_safe(v) for k, v in self.details}
        return out


def make_result(quantity: str, n: int, estimate: float | None, interval: tuple[float | None, float | None],
                method: str, verdict: str | None = None, reason: str = "", seeds_needed: int | None = None,
                level: float = INTERVAL_LEVEL, **details: Any) -> StatResult:
    """Build a ``StatResult`` from any statistic, coercing numpy numbers and sorting the details by name.

    Args:
        quantity: What the estimate is, with its unit.
        n: Independent units behind the interval.
        estimate: Point estimate.
        interval: ``(low, high)``; either may be None.
        method: How it was computed.
        verdict: The decision, if any.
        reason: Sentence fragment computed from the numbers.
        seeds_needed: Units that would resolve an inconclusive verdict.
        level: Interval level.
        **details: Further named figures (JSON-safe after ``to_dict``).

    Returns:
        The frozen record.
    """
    def num(v: float | None) -> float | None:
        return None if v is None else float(v)
    return StatResult(quantity, int(n), num(estimate), num(interval[0]), num(interval[1]), float(level), method,
                      verdict, reason, seeds_needed, tuple(sorted(details.items())))


def says_nothing(low: float | None, high: float | None, scale: str, verdict: str | None) -> bool:
    """``too_wide`` for an interval no verdict was decided from (None or ``inconclusive``): the ``unresolved``
    detail a statistic sets."""
    return verdict in (None, INCONCLUSIVE) and too_wide(low, high, scale)


def finite_array(values: Iterable[float], name: str) -> np.ndarray:
    """``values`` as float64, refusing NaN, infinities and None (the caller filters; nothing is dropped here)."""
    arr = np.asarray(list(values), dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a flat sequence of numbers")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} holds a non-finite value; filter missing runs before calling")
    return arr


def paired_log_differences(after: Sequence[float], before: Sequence[float], name: str) -> np.ndarray:
    """``log(after_i) - log(before_i)`` for pairs sharing a seed; refuses non-positive values and length mismatch."""
    a, b = finite_array(after, name), finite_array(before, name)
    if a.shape != b.shape:
        raise ValueError(f"{name}: {len(a)} values at lambda vs {len(b)} at baseline; pair them by seed first")
    if (a <= 0).any() or (b <= 0).any():
        raise ValueError(f"{name}: a ratio needs positive values on both sides")
    return np.log(a) - np.log(b)


def too_few(shown: str, n: int) -> str:
    """The reason given when fewer than 2 pairs leave no interval."""
    return f"{shown} over {n} seed(s): no interval without 2 seeds" if n else "no paired seeds"


def t_interval(values: np.ndarray, level: float = INTERVAL_LEVEL) -> tuple[float, float | None, float | None, float]:
    """Mean, Student-t interval and sample SD of ``values`` (interval None when n < 2).

    Returns:
        ``(mean, low, high, sd)``; sd is NaN when n < 2.
    """
    n = len(values)
    if n == 0:
        return float("nan"), None, None, float("nan")
    mean = float(values.mean())
    if n < 2:
        return mean, None, None, float("nan")
    sd = float(values.std(ddof=1))
    half = float(_sp.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return mean, mean - half, mean + half, sd


def one_sided_p(mean: float, sd: float, n: int, bound: float, above: bool) -> float | None:
    """The one-sided p-value of a Student t test that the true mean lies beyond ``bound``.

    ``above`` tests "mean > bound" (small p: the data say the mean lies above ``bound``), otherwise
    "mean < bound". ``p < (1 - INTERVAL_LEVEL) / 2`` exactly when the reported interval lies beyond ``bound``,
    so a p-value and the interval a report prints never disagree. None when ``n < 2`` (no SD).
    """
    if n < 2 or not math.isfinite(sd) or not math.isfinite(mean):
        return None
    if sd == 0:
        return 0.0 if (mean > bound if above else mean < bound) else 1.0
    t = (mean - bound) / (sd / math.sqrt(n))
    return float(_sp.t.sf(t, n - 1) if above else _sp.t.cdf(t, n - 1))


def seeds_needed(sd: float, margin: float, level: float = INTERVAL_LEVEL,
                 power: float = TARGET_POWER, sides: int = 1) -> int | None:
    """Paired units (seeds) needed for an interval around the observed mean to clear a boundary ``margin`` away.

    The formula is the usual one for a one-sample t test, with t quantiles: the smallest n >= 2 with

        (t[1 - alpha, n-1] + t[1 - beta/sides, n-1]) * sd / sqrt(n) <= margin,

    where alpha = (1 - level) / 2 is the one-sided error of reading a decision from a two-sided ``level``
    interval, beta = 1 - power, and ``sides`` = 2 for an equivalence decision (both ends of the interval
    must clear their bounds, so each side gets beta/2, a Bonferroni split that errs towards more seeds).
    It assumes the observed mean and SD are the truth, so it is a plan for the next run, not a promise.

    Args:
        sd: Observed SD of the paired differences (same scale as ``mean``).
        margin: Distance from the observed mean to the boundary the interval must clear (> 0), on the
            same scale as ``sd``.
        level: Interval level the decision is read from.
        power: Chance of resolving, if the observed mean and SD were the truth.
        sides: 1 for a one-sided decision, 2 for an equivalence (TOST) decision.

    Returns:
        The seed count (2 when sd is 0 and margin > 0), or None when margin <= 0 or sd is not finite
        (no seed count can resolve a mean sitting on a boundary, and n < 2 gives no SD).
    """
    if not math.isfinite(sd) or not math.isfinite(margin) or margin <= 0:
        return None
    if sd == 0:
        return 2
    alpha, beta = (1 - level) / 2, (1 - power) / sides
    z = _sp.norm.ppf(1 - alpha) + _sp.norm.ppf(1 - beta)
    n = max(2, math.ceil((z * sd / margin) ** 2))  # t > z, so the normal answer is a lower bound
    while n < _MAX_SEEDS:
        t = _sp.t.ppf(1 - alpha, n - 1) + _sp.t.ppf(1 - beta, n - 1)
        if t * sd / math.sqrt(n) <= margin:
            return int(n)
        n += 1  # the normal start is within a few seeds of the answer
    return None
