"""Statistics of a sweep: proxy-vs-energy correlations, per-lambda changes, ANOVA, and the claims as sentences.

Every interval is a 95% interval: bootstrap percentile intervals (2,000 resamples, seed 0) for
correlations, Student-t intervals over seeds for per-lambda means. The sentences in ``claims`` are
computed from these numbers with the thresholds below; none is typed by hand.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

import numpy as np
from scipy import stats

#: An energy change is "no change" when its 95% interval includes 0 or its mean is under this (percent).
MIN_ENERGY_CHANGE_PCT = 5.0
#: E "fell about 1000x" (the paper's claim) when the mean ratio is at least this.
PAPER_E_RATIO = 500.0
#: The paper's accuracy claim: under this many percentage points lost.
PAPER_MAX_ACC_LOSS_PP = 0.5
#: A proxy "tracks" an energy when the lower end of Spearman's rho interval is above this.
TRACKS_RHO = 0.5
BOOTSTRAP_RESAMPLES = 2000
PROXIES = ("E", "FLOPs", "synops", "spikes")


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


def energy_targets(record: dict[str, Any]) -> dict[str, tuple[float, float | None, str]]:
    """Energy figures of one run: name -> (joules, duration s or None, provenance from the run's own record)."""
    out: dict[str, tuple[float, float | None, str]] = {}
    inference = record["inference"]
    for domain, joules in inference["net_energy_j_per_workload"].items():
        out[f"inference {domain}"] = (joules, inference["duration_s_per_workload"],
                                      inference["measurement"]["provenance"].get(domain, "?"))
    train = record["train"]
    if train.get("measurement"):
        for domain, joules in train["net_energy_j"].items():
            out[f"training {domain}"] = (joules, train["measurement"]["duration_s"],
                                         train["measurement"]["provenance"][domain])
    loihi = record.get("loihi") or {}
    for profile, joules in (loihi.get("energy_j_per_sample") or {}).items():
        out[f"loihi:sim ({profile}) per sample"] = (joules, None, "modeled")
    return out


def proxies(record: dict[str, Any]) -> dict[str, float | None]:
    """The proxy values of one run."""
    loihi = record.get("loihi") or {}
    return {"E": record["activation_energy"], "FLOPs": record.get("inference_flops_per_sample"),
            "synops": loihi.get("synops_per_sample"), "spikes": loihi.get("spikes_per_sample")}


@dataclass(frozen=True)
class LambdaRow:
    """One lambda of one (model, dataset), relative to lambda = 0 with the same seed.

    Attributes:
        model, dataset, lam: Which row.
        accuracy: Test accuracy in percent.
        energy: E per test sample.
        e_ratio: E(lambda=0) / E(lambda): how many times lower E is.
        accuracy_change_pp: Accuracy change in percentage points.
        energy_change_pct: Energy target -> percent change.
        energy_j: Energy target -> joules.
        provenance: Energy target -> its provenance label.
    """

    model: str
    dataset: str
    lam: float
    accuracy: Interval
    energy: Interval
    e_ratio: Interval
    accuracy_change_pp: Interval
    energy_change_pct: dict[str, Interval]
    energy_j: dict[str, Interval]
    provenance: dict[str, str] = field(default_factory=dict)


def lambda_table(records: list[dict[str, Any]]) -> list[LambdaRow]:
    """Per (model, dataset, lambda) statistics over seeds, paired with lambda = 0."""
    targets_of = {id(r): energy_targets(r) for r in records}
    groups: dict[tuple[str, str], dict[float, dict[int, dict[str, Any]]]] = {}
    for r in records:
        groups.setdefault((r["model"], r["dataset"]), {}).setdefault(r["lambda"], {})[r["seed"]] = r
    rows = []
    for (model, dataset), by_lam in sorted(groups.items()):
        base = by_lam.get(0.0, {})
        for lam in sorted(by_lam):
            runs = by_lam[lam]
            seeds = [s for s in sorted(runs) if s in base]
            labels = {t: v[2] for r in runs.values() for t, v in targets_of[id(r)].items()}
            change, joules = {}, {}
            for t in sorted(labels):
                pairs = [(targets_of[id(runs[s])].get(t), targets_of[id(base[s])].get(t)) for s in seeds]
                change[t] = t_interval([(a[0] / b[0] - 1) * 100 for a, b in pairs if a and b and b[0] > 0])
                joules[t] = t_interval([targets_of[id(r)][t][0] for r in runs.values() if t in targets_of[id(r)]])
            rows.append(LambdaRow(
                model, dataset, lam,
                t_interval(runs[s]["test_accuracy"] * 100 for s in runs),
                t_interval(runs[s]["activation_energy"] for s in runs),
                t_interval(base[s]["activation_energy"] / runs[s]["activation_energy"] for s in seeds
                           if runs[s]["activation_energy"] > 0),
                t_interval((runs[s]["test_accuracy"] - base[s]["test_accuracy"]) * 100 for s in seeds),
                change, joules, labels))
    return rows


def _energy_verdict(e_ratio: Interval, change: Interval, target: str, provenance: str) -> str:
    label = f"{provenance} {target} energy" if provenance != "modeled" else f"{target} energy (modeled, not measured)"
    where = "on simulated Loihi" if target.startswith("loihi") else "on this device"
    if e_ratio.low is None or change.low is None or change.high is None:
        return f"{label}: too few seeds for an interval, no verdict"
    if e_ratio.low <= 1.0:
        return f"E did not fall reliably (ratio {e_ratio.fmt('.2f', 'x')}), so whether {label} follows it is not tested"
    no_change = (change.low <= 0.0 <= change.high) or abs(change.mean) < MIN_ENERGY_CHANGE_PCT
    if no_change:
        return f"{label} changed {change.fmt('+.1f', '%')}: {where} E does not track this energy"
    if change.high < 0:
        return f"{label} changed {change.fmt('+.1f', '%')}: {where} this energy falls with E"
    return f"{label} changed {change.fmt('+.1f', '%')}: it rose while E fell, so E does not track this energy"


def claims(rows: list[LambdaRow], correlations: list[Correlation]) -> list[str]:
    """The paper's claims evaluated as sentences computed from the numbers."""
    out = []
    by_group: dict[tuple[str, str], list[LambdaRow]] = {}
    for row in rows:
        by_group.setdefault((row.model, row.dataset), []).append(row)
    for (model, dataset), group in sorted(by_group.items()):
        top = max(group, key=lambda r: r.lam)
        if top.lam == 0:
            continue
        ratio, acc = top.e_ratio, top.accuracy_change_pp
        paper_e = ("consistent with the paper's ~1000x" if ratio.mean >= PAPER_E_RATIO
                   else "short of the paper's ~1000x")
        paper_acc = (f"within the paper's {PAPER_MAX_ACC_LOSS_PP} pp" if acc.mean > -PAPER_MAX_ACC_LOSS_PP
                     else f"more than the paper's {PAPER_MAX_ACC_LOSS_PP} pp lost")
        out.append(f"{model} on {dataset}, lambda={top.lam:g} vs 0: E fell {ratio.fmt(',.1f', 'x')} ({paper_e}); "
                   f"accuracy changed {acc.fmt('+.2f', ' pp')} ({paper_acc}).")
        for target, change in sorted(top.energy_change_pct.items()):
            provenance = top.provenance.get(target, "modeled")
            out.append(f"{model} on {dataset}, lambda={top.lam:g}: {_energy_verdict(ratio, change, target, provenance)}.")
    for c in correlations:
        if c.proxy != "E":
            continue
        if c.spearman is None:
            out.append(f"E vs {c.target}: not computable ({c.note}).")
            continue
        tracks = c.spearman.low is not None and c.spearman.low > TRACKS_RHO
        out.append(f"E vs {c.target} ({c.provenance}) over {c.n} runs: Spearman rho {c.spearman.fmt('+.2f')}, "
                   f"Pearson r {c.pearson.fmt('+.2f') if c.pearson else 'n/a'}: E "
                   f"{'tracks' if tracks else 'does not reliably track'} it (threshold: interval above {TRACKS_RHO}).")
    return out


def anova(records: list[dict[str, Any]], values: list[float]) -> list[dict[str, Any]] | None:
    """Two-way ANOVA of ``values`` (one per record) on architecture and dataset (one-way when only one
    varies), with partial eta^2. Returns None when neither factor has two levels.
    """
    import pandas as pd
    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm

    frame = pd.DataFrame({"model": [r["model"] for r in records], "dataset": [r["dataset"] for r in records],
                          "y": values})
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


@dataclass
class Analysis:
    """Everything a report shows."""

    records: list[dict[str, Any]]
    rows: list[LambdaRow]
    correlations: list[Correlation]
    claims: list[str]
    anova_accuracy: list[dict[str, Any]] | None
    anova_energy: list[dict[str, Any]] | None
    measured_domains: list[str]
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary (records excluded)."""
        return {"lambda_table": [asdict(r) for r in self.rows], "correlations": [asdict(c) for c in self.correlations],
                "claims": self.claims, "anova_accuracy": self.anova_accuracy, "anova_energy": self.anova_energy,
                "measured_domains": self.measured_domains, "problems": self.problems, "runs": len(self.records),
                "thresholds": {"min_energy_change_pct": MIN_ENERGY_CHANGE_PCT, "paper_e_ratio": PAPER_E_RATIO,
                               "paper_max_acc_loss_pp": PAPER_MAX_ACC_LOSS_PP, "tracks_rho": TRACKS_RHO}}


def analyse(records: list[dict[str, Any]], problems: list[str] | None = None) -> Analysis:
    """Run every analysis on a sweep's records."""
    targets_of = [energy_targets(r) for r in records]
    proxies_of = [proxies(r) for r in records]
    targets = {t: v[2] for per_run in targets_of for t, v in per_run.items()}
    correlations = []
    for target, prov in sorted(targets.items()):
        values = [per_run.get(target) for per_run in targets_of]
        ys = [v[0] if v else None for v in values]
        durations = [v[1] if v else None for v in values]
        for proxy in PROXIES:
            correlations.append(correlate(proxy, target, prov, [p[proxy] for p in proxies_of], ys,
                                          durations if all(d is not None for d in durations) else None))
    rows = lambda_table(records)
    measured = sorted({t for t, p in targets.items() if p in ("measured", "integrated")})
    # The ANOVA of energy uses each run's first inference domain.
    first = [(r, next(iter(r["inference"]["net_energy_j_per_workload"].values()), None)) for r in records]
    first = [(r, j) for r, j in first if j is not None]
    return Analysis(records, rows, correlations, claims(rows, correlations),
                    anova(records, [r["test_accuracy"] for r in records]),
                    anova([r for r, _ in first], [j for _, j in first]) if first else None,
                    measured, list(problems or []))
