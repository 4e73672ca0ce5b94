"""General statistics: intervals, correlations with bootstrap intervals, ANOVA with partial eta squared.

Every interval is a 95% interval: Student-t for means, bootstrap percentile (2,000 resamples, seed 0)
for correlations. Nothing here knows a run record's layout; the verdicts built on these numbers live in
``stats`` (equivalence tests) and ``claims`` (the paper's thresholds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
from scipy import stats

BOOTSTRAP_RESAMPLES = 2000


@dataclass(frozen=True)
class Interval:
    """A point estimate with its 95% interval and how it was computed.

    Attributes:
        n: Observations.
        mean: Point estimate.
        low, high: 95% interval (None when it cannot be computed, e.g. n < 2).
        method: How the interval was computed.
    """

    n: int
    mean: float
    low: float | None
    high: float | None
    method: str

    def fmt(self, spec: str = ".2f", suffix: str = "") -> str:
        """``mean [low, high]`` with a format spec."""
        if self.low is None or self.high is None:
            return f"{self.mean:{spec}}{suffix} (n={self.n}, no interval)"
        return f"{self.mean:{spec}}{suffix} [{self.low:{spec}}, {self.high:{spec}}]"


def t_interval(values: Iterable[float]) -> Interval:
    """Mean with a Student-t 95% interval."""
    data = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    n = len(data)
    if n == 0:
        return Interval(0, float("nan"), None, None, "t")
    mean = float(data.mean())
    if n < 2:
        return Interval(n, mean, None, None, "t")
    sem = float(data.std(ddof=1)) / math.sqrt(n)
    half = float(stats.t.ppf(0.975, n - 1)) * sem
    return Interval(n, mean, mean - half, mean + half, "Student t, 95%")


@dataclass(frozen=True)
class Correlation:
    """How one proxy relates to one energy figure across runs.

    Attributes:
        proxy, target: What was correlated.
        provenance: The energy figure's provenance.
        n: Runs.
        pearson, spearman: Coefficients with bootstrap 95% intervals (None when undefined).
        loglog_slope: OLS slope of log(energy) on log(proxy) (None when a value is not positive).
        partial_r_duration: Pearson r of the two after removing the linear effect of duration (None if n/a).
        note: Why something is undefined.
    """

    proxy: str
    target: str
    provenance: str
    n: int
    pearson: Interval | None
    spearman: Interval | None
    loglog_slope: float | None
    partial_r_duration: float | None
    note: str = ""


def _bootstrap(x: np.ndarray, y: np.ndarray, fn: Any) -> tuple[float | None, float | None]:
    rng = np.random.RandomState(0)
    values = []
    n = len(x)
    for _ in range(BOOTSTRAP_RESAMPLES):
        idx = rng.randint(0, n, n)
        xs, ys = x[idx], y[idx]
        if np.ptp(xs) == 0 or np.ptp(ys) == 0:
            continue
        values.append(fn(xs, ys))
    if len(values) < BOOTSTRAP_RESAMPLES // 2:
        return None, None
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


def correlate(proxy: str, target: str, provenance: str, x: list[float], y: list[float],
              duration: list[float] | None = None) -> Correlation:
    """Pearson and Spearman with bootstrap intervals, log-log slope and partial r controlling for duration."""
    pairs = [(a, b, d) for a, b, d in zip(x, y, duration or [None] * len(x))
             if a is not None and b is not None and math.isfinite(a) and math.isfinite(b)]
    n = len(pairs)
    xa = np.array([p[0] for p in pairs], dtype=float)
    ya = np.array([p[1] for p in pairs], dtype=float)
    if n < 3:
        return Correlation(proxy, target, provenance, n, None, None, None, None, "fewer than 3 runs")
    if np.ptp(xa) == 0:
        return Correlation(proxy, target, provenance, n, None, None, None, None,
                           f"{proxy} is the same in every run (it does not depend on lambda)")
    if np.ptp(ya) == 0:
        return Correlation(proxy, target, provenance, n, None, None, None, None, "energy is the same in every run")
    pearson_r = float(stats.pearsonr(xa, ya)[0])
    spearman_r = float(stats.spearmanr(xa, ya)[0])
    p_lo, p_hi = _bootstrap(xa, ya, lambda a, b: np.corrcoef(a, b)[0, 1])
    s_lo, s_hi = _bootstrap(xa, ya, lambda a, b: stats.spearmanr(a, b)[0])
    slope = None
    if (xa > 0).all() and (ya > 0).all():
        slope = float(np.polyfit(np.log(xa), np.log(ya), 1)[0])
    partial = None
    if duration is not None and all(p[2] is not None for p in pairs):
        d = np.array([p[2] for p in pairs], dtype=float)
        if np.ptp(d) > 0:
            rx = xa - np.polyval(np.polyfit(d, xa, 1), d)
            ry = ya - np.polyval(np.polyfit(d, ya, 1), d)
            if np.ptp(rx) > 0 and np.ptp(ry) > 0:
                partial = float(np.corrcoef(rx, ry)[0, 1])
    method = f"bootstrap percentile, {BOOTSTRAP_RESAMPLES} resamples"
    return Correlation(proxy, target, provenance, n, Interval(n, pearson_r, p_lo, p_hi, method),
                       Interval(n, spearman_r, s_lo, s_hi, method), slope, partial)


def anova(models: Sequence[str], datasets: Sequence[str], values: Sequence[float]) -> list[dict[str, Any]] | None:
    """Two-way ANOVA of ``values`` on architecture and dataset with their interaction (one-way when only one
    varies), with partial eta^2 = SS_term / (SS_term + SS_residual) (type II sums of squares). Returns None
    when neither factor has two levels.
    """
    import pandas as pd
    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm

    frame = pd.DataFrame({"model": list(models), "dataset": list(datasets), "y": list(values)})
    factors = [f for f in ("model", "dataset") if frame[f].nunique() >= 2]
    if not factors or frame["y"].nunique() < 2:
        return None
    formula = "y ~ " + " * ".join(f"C({f})" for f in factors)
    fit = smf.ols(formula, data=frame).fit()
    table = anova_lm(fit, typ=2)
    residual = float(table.loc["Residual", "sum_sq"])
    out = []
    for term, row in table.iterrows():
        if term == "Residual":
            continue
        ss = float(row["sum_sq"])
        out.append({"term": term.replace("C(", "").replace(")", ""), "df": float(row["df"]), "F": float(row["F"]),
                    "p": float(row["PR(>F)"]), "partial_eta_sq": ss / (ss + residual) if ss + residual > 0 else None})
    return out


