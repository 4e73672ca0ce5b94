"""One ``Analysis`` of a sweep, computed from its run records: every figure a report shows, and the claims.

``analyse(records, ...)`` is the only place figures are computed; every report format renders the
``Analysis`` and nothing else.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from . import claims as paper
from .claims import Claim
from .figures import csv_row, proxies, targets
from .intervals import anova
from .machine_load import is_busy
from .record import RunRecord
from .stats import (DRIFTING, ENERGY_SESOI, NEGLIGIBLE_R, TRACKS_R, StatResult, cost_to_target,
                    drift_correction_factors, efficiency_gain, reference_drift, within_group_correlation)
from .tables import CarbonRow, LambdaRow, LoihiRow, carbon_rows, groups, lambda_rows, loihi_rows

PROXIES = ("E", "FLOPs", "synops", "spikes")


@dataclass(frozen=True)
class Analysis:
    """Everything a report shows.

    Attributes:
        runs: Runs analysed.
        measured_domains: Energy targets read from hardware (measured or integrated).
        lambda_rows, loihi_rows, carbon_rows: The tables.
        carbon_source: The carbon intensity used (None without ``--country``).
        correlations: Proxy x target correlations within groups (cluster bootstrap).
        claims: Every claim with its verdict and sentence.
        anova_accuracy, anova_energy: ANOVA tables (None with one level of each factor).
        drift: The reference workload's drift over the sweep (None without references).
        drift_corrected: Whether energies were divided by the reference factors.
        busy_runs: Keys of runs that shared the machine with other work.
        warnings: Plain-language warnings (busy machine, negative net energies, drift).
        problems: Lines of results.jsonl that could not be read.
        points: Target -> (E, joules, lambda, model/dataset) per run, for plots.
        rows: report.csv's rows.
        sweep: sweep.json (settings and metadata).
    """

    runs: int
    measured_domains: tuple[str, ...]
    lambda_rows: tuple[LambdaRow, ...]
    loihi_rows: tuple[LoihiRow, ...]
    carbon_rows: tuple[CarbonRow, ...]
    carbon_source: str | None
    correlations: tuple[tuple[str, str, str, StatResult], ...]
    claims: tuple[Claim, ...]
    anova_accuracy: tuple[dict[str, Any], ...] | None
    anova_energy: tuple[dict[str, Any], ...] | None
    drift: StatResult | None
    drift_corrected: bool
    busy_runs: tuple[str, ...]
    warnings: tuple[str, ...]
    problems: tuple[str, ...]
    points: Mapping[str, tuple[tuple[float, float, float, str], ...]] = field(default_factory=dict)
    rows: tuple[Mapping[str, Any], ...] = ()
    sweep: Mapping[str, Any] = field(default_factory=dict)

    @property
    def headline(self) -> str:
        """The first thing a report says: whether any figure was read from hardware."""
        if self.measured_domains:
            return f"Energy read from hardware (measured or integrated): {', '.join(self.measured_domains)}."
        return ("No measured energy domain exists on this machine (no RAPL counters, no NVIDIA GPU): every energy "
                "figure below is modeled (CPU time x TDP share, Loihi pJ-per-operation tables) or counted (FLOPs, "
                "spikes, synaptic operations). They show what the models predict, not what the hardware drew.")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary (``report.json``)."""
        def row(r: Any) -> dict[str, Any]:
            out = asdict(r)
            for name in ("e_ratio", "accuracy_change_pp"):
                if hasattr(r, name):
                    out[name] = None if getattr(r, name) is None else getattr(r, name).to_dict()
            for name in ("energy_change", "elasticity", "e_ratio_by_kind"):
                if hasattr(r, name):
                    out[name] = {k: v.to_dict() for k, v in getattr(r, name).items()}
            return out
        return _json_safe({
            "headline": self.headline, "runs": self.runs, "measured_domains": list(self.measured_domains),
            "claims": [c.to_dict() for c in self.claims], "lambda_table": [row(r) for r in self.lambda_rows],
            "loihi_table": [asdict(r) for r in self.loihi_rows], "carbon": [asdict(r) for r in self.carbon_rows],
            "carbon_source": self.carbon_source,
            "correlations": [{"proxy": p, "target": t, "provenance": v, **s.to_dict()} for p, t, v, s in self.correlations],
            "anova_accuracy": self.anova_accuracy, "anova_energy": self.anova_energy,
            "drift": None if self.drift is None else self.drift.to_dict(), "drift_corrected": self.drift_corrected,
            "busy_runs": list(self.busy_runs), "warnings": list(self.warnings), "problems": list(self.problems),
            "thresholds": {"energy_sesoi": ENERGY_SESOI, "tracks_r": TRACKS_R, "negligible_r": NEGLIGIBLE_R,
                           "paper_e_ratio_v2": paper.PAPER_E_RATIO_V2, "paper_e_ratio_v1": paper.PAPER_E_RATIO_V1,
                           "paper_max_acc_loss_pp": paper.PAPER_MAX_ACC_LOSS_PP,
                           "paper_efficiency_gain": list(paper.PAPER_EFFICIENCY_GAIN), "paper_eta2": paper.PAPER_ETA2},
            "sweep": dict(self.sweep),
        })


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _correlations(records: list[RunRecord], factors: Mapping[str, float]) -> list[tuple[str, str, str, StatResult]]:
    per_run = [(r, targets(r, factors.get(r.key, 1.0)), proxies(r)) for r in records]
    names = sorted({(t.name, t.provenance) for _, ts, _ in per_run for t in ts.values()})
    out = []
    for name, provenance in names:
        for proxy in PROXIES:
            rows = [(p[proxy], ts[name].energy_j, r.group, r.seed) for r, ts, p in per_run
                    if name in ts and p[proxy] is not None and math.isfinite(p[proxy]) and not ts[name].negative]
            if len(rows) < 3 or len({x for x, *_ in rows}) < 2:
                continue  # a proxy constant over the sweep (FLOPs do not depend on lambda) has no correlation
            result = within_group_correlation([x for x, *_ in rows], [y for _, y, *_ in rows],
                                              [g for *_, g, _ in rows], [s for *_, s in rows])
            out.append((proxy, name, provenance, result))
    return out


def _efficiency(records: list[RunRecord]) -> list[Claim]:
    """The paper's third claim: cost (raw training joules, FLOPs, seconds) to the lambda = 0 run's final accuracy
    minus 0.5 pp (same seed), lambda > 0 against lambda = 0."""
    out = []
    for (model, dataset, kind), by_lam in groups(records).items():
        base = by_lam.get(0.0, {})
        for lam in sorted(by_lam):
            if lam == 0.0:
                continue
            runs = by_lam[lam]
            seeds = [s for s in sorted(runs) if s in base and base[s].history and runs[s].history]
            for quantity in ("energy", "flops", "time"):
                costs_lam, costs_base, never = [], [], 0
                for s in seeds:
                    target = base[s].history[-1].test_accuracy
                    if target is None:
                        continue
                    target -= paper.PAPER_MAX_ACC_LOSS_PP / 100
                    pair = [_cost(r, quantity, target) for r in (runs[s], base[s])]
                    if pair[0] is None or pair[1] is None:
                        never += pair[0] is None
                        continue
                    costs_lam.append(pair[0])
                    costs_base.append(pair[1])
                if not costs_lam:
                    continue
                gain = efficiency_gain(costs_lam, costs_base, quantity=quantity)
                out.append(paper.training_efficiency({"model": model, "dataset": dataset,
                                                      "activation_energy_kind": kind, "lambda": lam},
                                                     quantity, gain, never))
    return out


def _reference_domain(record: RunRecord) -> str | None:
    """The domain a run's reference workload (CPU matrix products) is read on: a CPU counter's package or
    psys where one exists, else the modeled CPU; None where the reference has no CPU figure."""
    energy = record.reference.measurement.energy_j if record.reference is not None else {}
    cpu = sorted(d for d in energy if d.split("/")[-1].startswith("cpu:"))
    for suffix in (":psys", ":package", "cpu:model"):
        chosen = [d for d in cpu if d.endswith(suffix)]
        if chosen:
            return chosen[0]
    return None


def _drift(records: list[RunRecord], correct: bool) -> tuple[StatResult | None, dict[str, float], list[str]]:
    """The reference workload's drift, fitted per host (in run order), and each run's correction factor.

    Returns the drift of the host with the most runs (the one the report shows), the factors by run key
    (only when ``correct``), and notes (e.g. other hosts' drift verdicts).
    """
    by_host: dict[str, list[tuple[RunRecord, float]]] = {}
    for r in records:
        domain = _reference_domain(r)
        if domain is None:
            continue
        joules = r.reference.raw_energy_j_per_workload.get(domain, math.nan)
        if joules > 0 and math.isfinite(joules):
            by_host.setdefault(r.host, []).append((r, joules))
    results: dict[str, StatResult] = {}
    factors: dict[str, float] = {}
    for host, series in by_host.items():
        if len(series) < 3:
            continue
        results[host] = reference_drift([j for _, j in series])
        if correct:
            factors.update(zip((r.key for r, _ in series), drift_correction_factors([j for _, j in series])))
    if not results:
        return None, factors, []
    main = max(results, key=lambda h: len(by_host[h]))
    notes = [f"Host {host}: reference drift {result.verdict} ({result.reason})." for host, result in results.items()
             if host != main]
    return results[main], factors, notes


def _cost(record: RunRecord, quantity: str, target: float) -> float | None:
    history = record.history
    accuracy = [h.test_accuracy for h in history]
    if any(a is None for a in accuracy):
        return None
    if quantity == "time":
        series = [h.duration_s for h in history]
    elif quantity == "flops":
        series = [h.flops for h in history]
    else:
        if record.train is None or not history[0].energy_j:
            return None
        # Gross (raw) joules to the target, as energy-to-accuracy is usually reported (the idle share is a
        # constant rate, so it scales both sides alike), summed over the run's total domains (the total rule).
        domains = record.train.measurement.total_domains
        if not domains:
            return None
        series = [math.fsum(h.energy_j.get(d, math.nan) for d in domains) for h in history]
    if any(v is None or not math.isfinite(v) for v in series) or any(b < a for a, b in zip(series, series[1:])):
        return None  # a failed or non-monotonic epoch window: no cost to target for this run
    return cost_to_target(series, accuracy, target).cost


def analyse(records: list[RunRecord], sweep: Mapping[str, Any] | None = None, problems: list[str] | None = None,
            country: str | None = None, drift_correction: bool = False) -> Analysis:
    """Every figure and claim of a sweep's records."""
    records = sorted(records, key=lambda r: (r.run_index if r.run_index is not None else 1 << 30, r.key))
    drift, factors, drift_notes = _drift(records, drift_correction)
    rows = lambda_rows(records, factors)
    claim_list: list[Claim] = []
    for row in rows:
        subject = {"model": row.model, "dataset": row.dataset, "activation_energy_kind": row.activation_energy_kind,
                   "lambda": row.lam}
        if row.lam == 0.0:
            continue
        if row.e_ratio is not None:
            claim_list.append(paper.e_reduction(subject, row.e_ratio))
        for measure, ratio in sorted(row.e_ratio_by_kind.items()):
            if f"{measure}/sum" != row.activation_energy_kind:  # the trained definition is the claim above
                claim_list.append(paper.e_reduction({**subject, "measured_as": f"{measure}/sum"}, ratio))
        if row.accuracy_change_pp is not None:
            claim_list.append(paper.accuracy(subject, row.accuracy_change_pp))
        for target, change in sorted(row.energy_change.items()):
            claim_list.append(paper.energy_tracking(subject, target, row.provenance[target], change,
                                                    row.elasticity.get(target)))
    for (model, dataset, kind) in groups(records):
        rows_of = [r for r in rows if (r.model, r.dataset, r.activation_energy_kind) == (model, dataset, kind)
                   and r.lam > 0]
        kept = [r for r in rows_of if r.accuracy_change_pp is not None and r.accuracy_change_pp.verdict == "holds"]
        best = max(kept, key=lambda r: r.lam, default=None)
        claim_list.append(paper.joint({"model": model, "dataset": dataset, "activation_energy_kind": kind},
                                      None if best is None else best.lam, None if best is None else best.e_ratio))
    correlations = _correlations(records, factors)
    n_groups = len(groups(records))
    for proxy, target, provenance, result in correlations:
        if proxy == "E":
            claim_list.append(paper.correlation({"groups": n_groups}, proxy, target, provenance, result))
    claim_list += _efficiency(records)
    anova_acc = anova_energy = None
    if len({r.model for r in records}) > 1 or len({r.dataset for r in records}) > 1:
        anova_acc = anova([r.model for r in records], [r.dataset for r in records], [r.test_accuracy for r in records],
                          [r.lam for r in records])
        hardware = [(r, t) for r in records for t in targets(r, factors.get(r.key, 1.0)).values()
                    if t.name.startswith("inference") and t.energy_j > 0]
        first = sorted({t.name for _, t in hardware})[:1]
        chosen = [(r, t) for r, t in hardware if t.name in first]
        if chosen:
            anova_energy = anova([r.model for r, _ in chosen], [r.dataset for r, _ in chosen],
                                 [math.log(t.energy_j) for _, t in chosen], [r.lam for r, _ in chosen])
            if anova_energy:
                for row_ in anova_energy:
                    row_["n"] = len(chosen)
                claim_list += paper.architecture_anova(f"log {first[0]}", anova_energy)
    busy = tuple(r.key for r in records if is_busy(r.load))
    warnings = []
    if busy:
        warnings.append(f"The machine was busy during {len(busy)} of {len(records)} runs (other processes used "
                        "CPU time or the load average was high): their energy includes contention; the verdicts "
                        "below are weaker for it.")
    negatives = sorted({(row.model, row.dataset, t) for row in rows for t in row.negative_net})
    for model, dataset, target in negatives:
        warnings.append(f"{model} on {dataset}: {target} came out negative in some runs (the idle baseline exceeded "
                        "the loaded window): that target's change is not computed at the lambdas concerned "
                        "(inconclusive, with the count), and the raw figures are kept.")
    if drift is not None and drift.verdict == DRIFTING:
        warnings.append(f"The reference workload's energy drifted over the sweep ({drift.reason}); "
                        + ("the energies below are corrected by it." if factors else "pass --drift-correction to "
                           "divide each run's energies by its drift factor."))
    warnings += drift_notes
    measured = sorted({t.name for r in records for t in targets(r).values()
                       if t.provenance in ("measured", "integrated")})
    carbon: list[CarbonRow] = []
    carbon_source = None
    if country:
        carbon, carbon_source = carbon_rows(records, country)
    points = {}
    for r in records:
        for t in targets(r, factors.get(r.key, 1.0)).values():
            points.setdefault(t.name, []).append((r.activation_energy, t.energy_j, r.lam, f"{r.model}/{r.dataset}"))
    return Analysis(len(records), tuple(measured), tuple(rows), tuple(loihi_rows(records)), tuple(carbon),
                    carbon_source, tuple(correlations), tuple(claim_list),
                    None if anova_acc is None else tuple(anova_acc),
                    None if anova_energy is None else tuple(anova_energy), drift, bool(factors), busy,
                    tuple(warnings), tuple(problems or ()), {k: tuple(v) for k, v in points.items()},
                    tuple(csv_row(r) for r in records), dict(sweep or {}))
