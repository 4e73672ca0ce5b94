"""Inference energy paired by round: each lambda against lambda = 0 within the round both ran in.

Every round of a ``RoundsRecord`` measured every network of one seed's group once, in a balanced order, so
the machine's drift and the counter's slow noise fall on both windows of a pair alike. Per seed and domain the
log ratio of joules per sample, log(E_lambda,r / E_0,r), is taken in every round r; its mean (and median) over
rounds with a Student-t interval over rounds is that seed's *measurement noise*. Over seeds, the mean of the
seeds' mean log ratios with a t interval over seeds is the comparison's figure, and the spread of the seeds'
means beside the within-seed standard error separates *seed-to-seed training variability* from measurement noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ..records.rounds import CHUNKED, INTERLEAVED, RoundsRecord
from .intervals import Interval, t_interval


def round_log_ratios(rounds: RoundsRecord, lam: float, domain: str) -> list[float]:
    """log(joules per sample at ``lam`` / joules per sample at lambda 0), one per round where both were measured
    and positive (per sample: both windows ran the same fixed batch)."""
    out = []
    for one in rounds.rounds:
        at, base = one.window(lam), one.window(0.0)
        if at is None or base is None:
            continue
        a, b = at.energy_j_per_workload(domain), base.energy_j_per_workload(domain)
        if a is not None and b is not None and a > 0 and b > 0:
            out.append(math.log(a / b))
    return out


def interval_width(values: Sequence[float]) -> float:
    """Full width of the 95% t interval of the mean of ``values`` (log units; inf below 2 values)."""
    interval = t_interval(values)
    if interval.low is None or interval.high is None:
        return math.inf
    return interval.high - interval.low


def compared_domains(rounds: RoundsRecord) -> list[str]:
    """The domains measured in every window of the rounds (sorted)."""
    windows = [w for r in rounds.rounds for w in r.windows]
    if not windows:
        return []
    common = set(windows[0].energy_j)
    for w in windows[1:]:
        common &= set(w.energy_j)
    return sorted(common)


@dataclass(frozen=True)
class SeedComparison:
    """One seed's lambda against its own lambda = 0 network, paired by round.

    Attributes:
        seed: The seed.
        rounds: Rounds paired.
        mean_log_ratio: Interval of the mean log ratio over rounds (its width is measurement noise alone).
        median_log_ratio: The median over rounds (robust to a disturbed round).
    """

    seed: int
    rounds: int
    mean_log_ratio: Interval
    median_log_ratio: float


@dataclass(frozen=True)
class PairedComparison:
    """One comparison (group x lambda vs 0 x domain) of inference energy per sample, paired by round.

    Attributes:
        model, dataset, activation_energy_kind, lam, domain, provenance: Which comparison.
        seeds: Each seed's comparison over its rounds.
        across_seeds: Interval of the mean of the seeds' mean log ratios over seeds.
        measurement_se: Root-mean-square of the seeds' within-round standard errors (log units).
        seed_sd: Standard deviation of the seeds' mean log ratios (log units; training variability plus
            what measurement noise adds to it).
        design: ``"interleaved rounds, N rounds, M seeds"``.
    """

    model: str
    dataset: str
    activation_energy_kind: str
    lam: float
    domain: str
    provenance: str
    seeds: tuple[SeedComparison, ...]
    across_seeds: Interval
    measurement_se: float | None
    seed_sd: float | None
    design: str

    @property
    def ratio(self) -> float:
        """exp(mean log ratio): lambda's joules per sample over lambda 0's."""
        return math.exp(self.across_seeds.mean)

    def width_log(self, seed: int | None = None) -> float:
        """Full width of the interval over seeds (or of one seed's over rounds), log units."""
        interval = self.across_seeds if seed is None else next(s.mean_log_ratio for s in self.seeds if s.seed == seed)
        return math.inf if interval.low is None or interval.high is None else interval.high - interval.low

    def to_dict(self) -> dict[str, Any]:
        def iv(i: Interval) -> dict[str, Any]:
            return {"n": i.n, "mean": i.mean, "low": i.low, "high": i.high, "method": i.method}

        return {"model": self.model, "dataset": self.dataset, "activation_energy_kind": self.activation_energy_kind,
                "lambda": self.lam, "domain": self.domain, "provenance": self.provenance, "design": self.design,
                "across_seeds_log_ratio": iv(self.across_seeds), "measurement_se_log": self.measurement_se,
                "seed_sd_log": self.seed_sd,
                "seeds": [{"seed": s.seed, "rounds": s.rounds, "mean_log_ratio": iv(s.mean_log_ratio),
                           "median_log_ratio": s.median_log_ratio} for s in self.seeds]}


def describe_design(records: Sequence[RoundsRecord]) -> str:
    """``"interleaved rounds, N rounds, M seeds"`` or ``"chunked training, N epochs per network in balanced
    rounds, M seeds"`` (N the fewest and most when they differ)."""
    counts = sorted({len(r.rounds) for r in records})
    shown = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    seeds = len({r.seed for r in records})
    if records and records[0].design == CHUNKED:
        return f"chunked training, {shown} epochs per network in balanced rounds, {seeds} seeds"
    return f"interleaved rounds, {shown} rounds, {seeds} seeds"


def of_design(records: Iterable[RoundsRecord], design: str = INTERLEAVED) -> list[RoundsRecord]:
    """The records of one design (``INTERLEAVED`` inference rounds or ``CHUNKED`` training)."""
    return [r for r in records if r.design == design]


def paired_comparisons(all_rounds: Iterable[RoundsRecord]) -> list[PairedComparison]:
    """Every (group, lambda > 0, domain) comparison with at least one seed's rounds holding lambda 0 (the records
    given should be of one design: see ``of_design``)."""
    by_group: dict[tuple[str, str, str], list[RoundsRecord]] = {}
    for rounds in all_rounds:
        if 0.0 in rounds.lambdas:
            by_group.setdefault(rounds.group, []).append(rounds)
    out = []
    for group, records in sorted(by_group.items()):
        records.sort(key=lambda r: r.seed)
        design = describe_design(records)
        lambdas = sorted({lam for r in records for lam in r.lambdas if lam > 0})
        domains = sorted({d for r in records for d in compared_domains(r)})
        for lam in lambdas:
            for domain in domains:
                comparison = _compare(group, lam, domain, records, design)
                if comparison is not None:
                    out.append(comparison)
    return out


def _compare(group: tuple[str, str, str], lam: float, domain: str, records: Sequence[RoundsRecord],
             design: str) -> PairedComparison | None:
    seeds = []
    for rounds in records:
        ratios = round_log_ratios(rounds, lam, domain)
        if ratios:
            seeds.append(SeedComparison(rounds.seed, len(ratios), t_interval(ratios), float(np.median(ratios))))
    if not seeds:
        return None
    ses = [(s.mean_log_ratio.high - s.mean_log_ratio.mean) / _t975(s.rounds) for s in seeds
           if s.mean_log_ratio.high is not None]
    means = [s.mean_log_ratio.mean for s in seeds]
    provenance = next((r.provenance.get(domain, "") for r in records if domain in r.provenance), "")
    return PairedComparison(*group, lam, domain, provenance, tuple(seeds), t_interval(means),
                            math.sqrt(float(np.mean(np.square(ses)))) if ses else None,
                            float(np.std(means, ddof=1)) if len(means) > 1 else None, design)


def _t975(n: int) -> float:
    from scipy import stats

    return float(stats.t.ppf(0.975, n - 1))


def paired_to_dict(comparisons: Sequence[PairedComparison]) -> list[Mapping[str, Any]]:
    """JSON-safe form of every comparison (``report.json``'s ``inference_rounds``)."""
    return [c.to_dict() for c in comparisons]
