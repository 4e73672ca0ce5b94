"""Error rates of the verdicts on simulated sweeps whose truth is known, through the real lambda table.

Each ``Case`` builds run records the way a sweep writes them (one inference window per run, per seed a
lambda = 0 run and a lambda > 0 run whose E is ``fall`` times smaller), with energy a known function of E,
noise, drift over the run order and an order of runs; ``rates`` runs ``tables.lambda_rows`` (the code every
report uses to pair runs by seed and decide) on many such sweeps and counts the verdicts and how often each
interval covers the truth. ``bench/bench_error_rates.py`` prints the table; the tests assert its bounds.

Run orders: ``interleaved`` (the default design: within each seed the two runs are adjacent, and which comes
first alternates from seed to seed, so drift falls on both arms alike) and ``sequential`` (every baseline
first, then every lambda > 0 run: the unprotected order, which drift turns into an effect).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from energymeter.measurement import Measurement

from ..records.record import RunRecord, WindowRecord
from .figures import build_figures
from .stats_core import DOES_NOT_TRACK, FAILS, HOLDS, INCONCLUSIVE, TRACKS
from .stats_paired import ENERGY_SESOI
from .tables import lambda_rows

TRUTHS = ("proportional", "independent", "affine", "effect5")
DRIFTS = ("none", "linear", "step")
ORDERS = ("interleaved", "sequential")
_LAMBDA = 1e-2


@dataclass(frozen=True)
class Case:
    """One simulated design and truth.

    Attributes:
        truth: ``proportional`` (energy = c E), ``independent`` (energy = c), ``affine`` (half fixed, half
            proportional to E) or ``effect5`` (energy 5% lower at lambda > 0, whatever E).
        fall: E(0) / E(lambda), > 1.
        seeds: Seeds per sweep (a baseline and a lambda run each).
        drift: ``none``, ``linear`` (machine power falls 30% over the run order) or ``step`` (-30% halfway).
        order: ``interleaved`` or ``sequential`` (see the module docstring).
        noise_sd: SD of the log energy's noise per run.
        tails: ``normal`` or ``t3`` (Student t with 3 df, scaled to ``noise_sd``).
        outlier: One run per sweep reads 3x its energy.
    """

    truth: str
    fall: float
    seeds: int
    drift: str = "none"
    order: str = "interleaved"
    noise_sd: float = 0.05
    tails: str = "normal"
    outlier: bool = False

    @property
    def true_elasticity(self) -> float | None:
        """The slope of log energy on log E the data are drawn with (None where it is not one number)."""
        return {"proportional": 1.0, "independent": 0.0,
                "effect5": math.log(0.95) / -math.log(self.fall)}.get(self.truth)

    @property
    def true_change_pct(self) -> float:
        """The energy change at lambda vs 0 without drift or noise (percent; affine: at the mean E)."""
        ratio = {"proportional": 1 / self.fall, "independent": 1.0, "effect5": 0.95,
                 "affine": (0.5 + 0.5 / self.fall)}[self.truth]
        return (ratio - 1) * 100


def simulate(case: Case, rng: np.random.Generator) -> list[RunRecord]:
    """One sweep's run records under ``case``."""
    pairs = []
    for s in range(case.seeds):
        e0 = 100.0 * math.exp(0.1 * rng.standard_normal())
        arms = [(0.0, e0), (_LAMBDA, e0 / case.fall)]
        pairs.append((s, arms if s % 2 == 0 else arms[::-1]))
    if case.order == "interleaved":
        runs = [(s, lam, e) for s, arms in pairs for lam, e in arms]
    else:
        runs = sorted(((s, lam, e) for s, arms in pairs for lam, e in arms), key=lambda r: (r[1], r[0]))
    n = len(runs)
    outlier = int(rng.integers(n)) if case.outlier else -1
    records = []
    for i, (s, lam, e) in enumerate(runs):
        drift = {"none": 1.0, "linear": 1.0 - 0.3 * i / max(n - 1, 1), "step": 1.0 if i < n / 2 else 0.7}[case.drift]
        base = {"proportional": 0.5 * e, "independent": 40.0, "affine": 20.0 + 0.2 * e,
                "effect5": 40.0 * (0.95 if lam else 1.0)}[case.truth]
        z = rng.standard_t(3) / math.sqrt(3.0) if case.tails == "t3" else rng.standard_normal()
        joules = base * drift * math.exp(case.noise_sd * z) * (3.0 if i == outlier else 1.0)
        m = Measurement(name="inference", duration_s=1.0, energy_j={"cpu:0:package": joules * 10},
                        provenance={"cpu:0:package": "measured"})
        records.append(RunRecord(model="mlp", dataset="digits", lam=lam, seed=s, test_accuracy=0.95,
                                 activation_energy=e, inference=WindowRecord(m, {}, 10, 32), epochs=1, run_index=i))
    return records


@dataclass(frozen=True)
class Rates:
    """Shares of each verdict over ``sweeps`` simulated sweeps of one case (percent), and interval coverage."""

    case: Case
    sweeps: int
    tracking: dict[str, float]
    saving: dict[str, float]
    elasticity_coverage_pct: float | None
    change_coverage_pct: float | None

    def row(self) -> dict[str, Any]:
        c = self.case
        return {"truth": c.truth, "fall": c.fall, "seeds": c.seeds, "drift": c.drift, "order": c.order,
                "tails": c.tails, "outlier": c.outlier, "sweeps": self.sweeps,
                **{f"tracking_{k}_pct": v for k, v in self.tracking.items()},
                **{f"saving_{k}_pct": v for k, v in self.saving.items()},
                "elasticity_coverage_pct": self.elasticity_coverage_pct, "change_coverage_pct": self.change_coverage_pct}


def rates(case: Case, sweeps: int, seed: int = 0, sesoi: float = ENERGY_SESOI) -> Rates:
    """Run ``sweeps`` simulated sweeps of ``case`` through ``lambda_rows`` and count what they say."""
    rng = np.random.default_rng(seed)
    tracking = {TRACKS: 0, DOES_NOT_TRACK: 0, INCONCLUSIVE: 0}
    saving = {HOLDS: 0, FAILS: 0, INCONCLUSIVE: 0}
    covered_e = covered_c = counted_e = counted_c = 0
    bound = math.log1p(sesoi)
    true_e, true_c = case.true_elasticity, case.true_change_pct
    undrifted = case.drift == "none" or case.order == "interleaved"
    for _ in range(sweeps):
        row = next(r for r in lambda_rows(build_figures(simulate(case, rng)), sesoi) if r.lam > 0)
        fid = next(f for f in row.energy_change if "raw" in f.label)
        slope, change = row.elasticity.get(fid), row.energy_change[fid]
        tracking[slope.verdict if slope is not None and slope.verdict in tracking else INCONCLUSIVE] += 1
        high, low = change.detail("ratio_high"), change.detail("ratio_low")
        if high is not None and math.log(high) < -bound:
            saving[HOLDS] += 1
        elif low is not None and math.log(low) > -bound:
            saving[FAILS] += 1
        else:
            saving[INCONCLUSIVE] += 1
        if slope is not None and slope.low is not None and true_e is not None and undrifted:
            counted_e += 1
            covered_e += slope.low <= true_e <= slope.high
        if change.low is not None and undrifted and case.truth != "affine":
            counted_c += 1
            covered_c += change.low <= true_c <= change.high

    def pct(counts: dict[str, int]) -> dict[str, float]:
        return {k: 100.0 * v / sweeps for k, v in counts.items()}
    return Rates(case, sweeps, pct(tracking), pct(saving),
                 100.0 * covered_e / counted_e if counted_e else None,
                 100.0 * covered_c / counted_c if counted_c else None)


def default_cases(seeds: tuple[int, ...] = (2, 3, 5, 10)) -> list[Case]:
    """The table's cases: every truth at small and large falls of E, drift, tails, an outlier, both orders."""
    cases = []
    for n in seeds:
        for fall in (1.05, 10.0, 1000.0):
            cases.append(Case("proportional", fall, n))
        cases += [Case("independent", 1000.0, n), Case("affine", 1000.0, n), Case("effect5", 1000.0, n),
                  Case("independent", 1000.0, n, tails="t3"), Case("independent", 1000.0, n, outlier=True)]
        for drift in ("linear", "step"):
            for order in ORDERS:
                cases.append(Case("independent", 1000.0, n, drift=drift, order=order))
    return cases
