"""Summaries for the report's tables: a mean with its Student-t 95% interval over whatever values exist, and
the ANOVA with partial eta squared.

``t_interval`` here summarises (it skips missing values: a table cell over the runs that have the figure);
the verdicts use ``stats`` instead, which refuses missing values so nothing is dropped silently there.
Nothing here knows a run record's layout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
from scipy import stats

from .stats_core import interval_text, too_wide

#: The possible range of an accuracy in percent: its intervals are clipped to it.
ACCURACY_RANGE_PCT = (0.0, 100.0)
#: The range of a quantity that cannot be negative (E, counts, modeled joules).
NON_NEGATIVE = (0.0, math.inf)


@dataclass(frozen=True)
class Interval:
    """A point estimate with its 95% interval and how it was computed.

    Attributes:
        n: Observations.
        mean: Point estimate.
        low, high: 95% interval (None when it cannot be computed, e.g. n < 2).
        method: How the interval was computed.
        clipped: An end was clipped to the quantity's possible range (``t_interval(bounds=...)``).
        unresolved: The interval is too wide to say anything (``stats_core.too_wide``); reports print
            ``unresolved (N seeds)`` in its place.
    """

    n: int
    mean: float
    low: float | None
    high: float | None
    method: str
    clipped: bool = False
    unresolved: bool = False

    def fmt(self, spec: str = ".2f", suffix: str = "") -> str:
        """``mean [low, high]`` with a format spec (``unresolved (N seeds)`` when too wide to say anything)."""
        return interval_text(self.mean, self.low, self.high, self.n, spec, suffix, unresolved=self.unresolved)


def t_interval(values: Iterable[float], bounds: tuple[float, float] | None = None,
               scale: str | None = None) -> Interval:
    """Mean with a Student-t 95% interval.

    Args:
        values: The observations (missing and non-finite values are skipped).
        bounds: The quantity's possible range (e.g. ``ACCURACY_RANGE_PCT``): the interval is clipped to it,
            ``clipped`` says so and the method names the range.
        scale: The scale for the "unresolved" rule (``stats_core.too_wide``), read before any clip; None:
            never unresolved.
    """
    data = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    n = len(data)
    if n == 0:
        return Interval(0, float("nan"), None, None, "t")
    mean = float(data.mean())
    if n < 2:
        return Interval(n, mean, None, None, "t")
    sem = float(data.std(ddof=1)) / math.sqrt(n)
    half = float(stats.t.ppf(0.975, n - 1)) * sem
    low, high = mean - half, mean + half
    wide = scale is not None and too_wide(low, high, scale)
    if bounds is None or bounds[0] <= low and high <= bounds[1]:
        return Interval(n, mean, low, high, "Student t, 95%", unresolved=wide)
    where = (f"the possible range {bounds[0]:g}-{bounds[1]:g}" if math.isfinite(bounds[1])
             else f"{bounds[0]:g} (the quantity cannot be lower)")
    return Interval(n, mean, max(low, bounds[0]), min(high, bounds[1]), f"Student t, 95%, clipped to {where}",
                    True, wide)


def accuracy_interval(values_pct: Iterable[float]) -> Interval:
    """An accuracy's (percent) mean with its t interval clipped to 0-100 (unresolved when wider than the scale)."""
    return t_interval(values_pct, ACCURACY_RANGE_PCT, "points")


class AnovaSkipped(ValueError):
    """A design the ANOVA cannot be computed on; ``str()`` says why (a report shows it in the table's place)."""


def anova(models: Sequence[str], datasets: Sequence[str], values: Sequence[float],
          blocks: Sequence[Any] | None = None) -> list[dict[str, Any]] | None:
    """Two-way ANOVA of ``values`` on architecture and dataset with their interaction (one-way when only one
    varies), with partial eta^2 = SS_term / (SS_term + SS_residual) (type II sums of squares). ``blocks``
    (e.g. each run's lambda) enters as a blocking factor, so runs at different lambdas are not taken for
    replicates of one cell; its own row is not reported. Returns None when neither factor has two levels.

    Raises:
        AnovaSkipped: a cell of the design (every architecture x dataset) with fewer than two runs, a
            rank-deficient design, no residual degrees of freedom, or a fit that fails; the message says which.
    """
    import itertools

    import pandas as pd
    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm

    frame = pd.DataFrame({"model": list(models), "dataset": list(datasets), "y": list(values),
                          "block": [str(b) for b in blocks] if blocks is not None else ["-"] * len(values)})
    factors = [f for f in ("model", "dataset") if frame[f].nunique() >= 2]
    if not factors or frame["y"].nunique() < 2:
        return None
    counts = frame.groupby(factors).size().to_dict()
    for cell in itertools.product(*(sorted(frame[f].unique()) for f in factors)):
        n = counts.get(cell if len(factors) > 1 else cell[0], 0)
        if n < 2:
            raise AnovaSkipped(f"the cell {' x '.join(map(str, cell))} has {n} run(s); the ANOVA needs at least 2 "
                               "in every cell of the design")
    formula = "y ~ " + " * ".join(f"C({f})" for f in factors)
    if frame["block"].nunique() >= 2:
        formula += " + C(block)"
    try:
        fit = smf.ols(formula, data=frame).fit()
        exog = np.asarray(fit.model.exog)
        rank = int(np.linalg.matrix_rank(exog))
        if rank < exog.shape[1]:
            raise AnovaSkipped(f"the design is rank-deficient ({rank} of {exog.shape[1]} columns independent): "
                               "some combination of architecture, dataset and lambda was not run")
        if fit.df_resid < 1:
            raise AnovaSkipped("no residual degrees of freedom: more runs per cell are needed")
        table = anova_lm(fit, typ=2)
    except AnovaSkipped:
        raise
    except Exception as exc:  # noqa: BLE001 - one table fails with its reason; the report stands
        raise AnovaSkipped(f"the fit failed ({type(exc).__name__}: {exc})") from None
    residual = float(table.loc["Residual", "sum_sq"])
    out = []
    for term, row in table.iterrows():
        if term in ("Residual", "C(block)"):
            continue
        ss = float(row["sum_sq"])
        f_value, p_value = float(row["F"]), float(row["PR(>F)"])
        if not (math.isfinite(f_value) and math.isfinite(p_value)):
            raise AnovaSkipped(f"the F test of {term} is undefined (F = {f_value}, p = {p_value})")
        out.append({"term": term.replace("C(", "").replace(")", ""), "df": float(row["df"]), "F": f_value,
                    "p": p_value, "partial_eta_sq": ss / (ss + residual) if ss + residual > 0 else None})
    return out


