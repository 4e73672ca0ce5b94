"""Tables of a sweep, computed once from its figures: the lambda table, Loihi, CO2e, correlations, ANOVA.

Everything is paired by seed within a group (model, dataset, E definition): a lambda's run is compared
with the lambda = 0 run of the same seed. Ratios and energy changes are on the log scale (see ``stats_paired``).
``build_tables`` makes every table once; the claims and the reports read the ``Tables``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from ..records.record import RunRecord
from .figures import INFERENCE, LOIHI, PROXIES, Figure, FigureId, Figures, sort_key
from .intervals import NON_NEGATIVE, AnovaSkipped, Interval, accuracy_interval, anova, t_interval
from .stats import (ENERGY_SESOI, INCONCLUSIVE, StatResult, accuracy_change, elasticity, elasticity_verdict,
                    energy_change, make_result, within_group_correlation)
from .stats_paired import paired_ratio
from .training_length import levelled_off, ratio_by_epoch, still_rising

Group = tuple[str, str, str]


@dataclass(frozen=True)
class LambdaRow:
    """One lambda of one group, relative to lambda = 0 with the same seed.

    Attributes:
        model, dataset, activation_energy_kind, lam: Which row.
        seeds: Seeds paired with lambda = 0.
        accuracy_pct: Test accuracy (percent) over seeds.
        activation_energy: E per test sample over seeds (arbitrary units).
        e_ratio: E(lambda = 0) / E(lambda), geometric mean over seeds with its interval (log scale).
        accuracy_change_pp: Accuracy change (pp) with the verdict against the paper's bound.
        energy_change: Figure -> ratio of energy at lambda to lambda = 0 with its tracking verdict.
        elasticity: Figure -> log-log slope of energy on E (lambda and 0, within seed).
        energy_j: Figure -> joules over seeds.
        provenance: Figure -> provenance.
        negative_net: Figures with a negative net figure in some run (left out of that figure's change).
        e_ratio_by_kind: The same ratio with E measured under each definition (l2, l1, l0, and the scale-free
            l2-scale-free and l1-scale-free that no per-layer rescaling moves).
        e_ratio_by_epoch: E(0) / E(lambda) on the test split after each epoch, under the definition trained
            with (geometric mean over seeds); empty where the records hold no per-epoch test E.
        levelled_off: Whether that ratio had levelled off by the last epoch (``training_length.level_rule``);
            None where it cannot be told.
        still_rising: The ratio was still rising at the last epoch (more than the rule's tolerance).
        e_ratio_by_epoch_by_kind: The per-epoch ratio under every definition recorded per epoch.
        still_rising_by_kind: Definition -> whether its ratio was still rising at the last epoch.
    """

    model: str
    dataset: str
    activation_energy_kind: str
    lam: float
    seeds: int
    accuracy_pct: Interval
    activation_energy: Interval
    e_ratio: StatResult | None
    accuracy_change_pp: StatResult | None
    energy_change: Mapping[FigureId, StatResult] = field(default_factory=dict)
    elasticity: Mapping[FigureId, StatResult] = field(default_factory=dict)
    energy_j: Mapping[FigureId, Interval] = field(default_factory=dict)
    provenance: Mapping[FigureId, str] = field(default_factory=dict)
    negative_net: tuple[FigureId, ...] = ()
    e_ratio_by_kind: Mapping[str, StatResult] = field(default_factory=dict)
    e_ratio_by_epoch: tuple[float | None, ...] = ()
    levelled_off: bool | None = None
    still_rising: bool = False
    e_ratio_by_epoch_by_kind: Mapping[str, tuple[float | None, ...]] = field(default_factory=dict)
    still_rising_by_kind: Mapping[str, bool] = field(default_factory=dict)


def groups(records: Iterable[RunRecord]) -> dict[Group, dict[float, dict[int, RunRecord]]]:
    """Records by group, then lambda, then seed."""
    out: dict[Group, dict[float, dict[int, RunRecord]]] = {}
    for r in records:
        out.setdefault(r.group, {}).setdefault(r.lam, {})[r.seed] = r
    return dict(sorted(out.items()))


def e_ratio(at_lambda: list[float], at_baseline: list[float]) -> StatResult | None:
    """E(0) / E(lambda) paired by seed: the reciprocal of the geometric-mean ratio E(lambda) / E(0), with its
    interval (log scale), so "E fell 22x" reads directly."""
    pairs = [(a, b) for a, b in zip(at_lambda, at_baseline) if a > 0 and b > 0]
    if not pairs:
        return None
    fall = paired_ratio([a for a, _ in pairs], [b for _, b in pairs], "E(lambda) / E(0)")
    inv = (lambda v: None if v is None or v == 0 else 1.0 / v)
    return replace(fall, quantity="E(lambda=0) / E(lambda), times", estimate=inv(fall.estimate),
                   low=inv(fall.high), high=inv(fall.low),
                   method=fall.method + "; reported as its reciprocal E(0) / E(lambda)")


def _unusable(reason: str, n: int) -> StatResult:
    return make_result("energy ratio, lambda vs 0", n, None, (None, None), "not computed", INCONCLUSIVE, reason)


def _safe(compute: Callable[[], StatResult], n: int) -> StatResult:
    """``compute()``, or, where the figure cannot be computed (overflow, a singular fit, a value out of range),
    an inconclusive result saying why: one figure fails, the table and the report stand."""
    try:
        return compute()
    except (ArithmeticError, ValueError, np.linalg.LinAlgError) as exc:
        return _unusable(f"not computable ({type(exc).__name__}: {exc})", n)


def lambda_rows(figures: Figures, sesoi: float = ENERGY_SESOI) -> list[LambdaRow]:
    """The lambda table (energies as the figures hold them: drift-corrected when asked); energy changes are
    judged against ``sesoi``, the smallest change of interest (a fraction)."""
    per_run = {r.record.key: r.figures for r in figures.runs}
    rows = []
    for (model, dataset, kind), by_lam in groups(figures.records).items():
        base = by_lam.get(0.0, {})
        for lam in sorted(by_lam):
            runs = by_lam[lam]
            seeds = [s for s in sorted(runs) if s in base]
            names = sorted({t for r in runs.values() for t in per_run[r.key]}, key=sort_key)
            ratio = e_ratio([runs[s].activation_energy for s in seeds], [base[s].activation_energy for s in seeds])
            proxy_fell = ratio is not None and ratio.low is not None and ratio.low > 1.0
            change: dict[FigureId, StatResult] = {}
            slopes: dict[FigureId, StatResult] = {}
            joules: dict[FigureId, Interval] = {}
            provenance: dict[FigureId, str] = {}
            negative: list[FigureId] = []
            for name in names:
                pairs: list[tuple[Figure, Figure, int]] = [
                    (per_run[runs[s].key][name], per_run[base[s].key][name], s) for s in seeds
                    if name in per_run[runs[s].key] and name in per_run[base[s].key]]
                provenance[name] = next(per_run[r.key][name].provenance for r in runs.values() if name in per_run[r.key])
                joules[name] = t_interval(per_run[r.key][name].energy_j for r in runs.values() if name in per_run[r.key])
                if lam == 0.0 or not pairs:
                    continue  # lambda = 0 is the baseline itself: no change to compute
                if any(a.negative or b.negative for a, b, _ in pairs):
                    negative.append(name)
                    bad = sum(a.negative or b.negative for a, b, _ in pairs)
                    change[name] = _unusable(f"{bad} of {len(pairs)} seed pairs have a negative net energy (the idle "
                                             "baseline exceeded the loaded window): no net change computed; see the "
                                             "raw figures", len(pairs))
                    continue
                zero = sum(not (a.energy_j > 0 and b.energy_j > 0) for a, b, _ in pairs)
                if zero:
                    change[name] = _unusable(f"{zero} of {len(pairs)} seed pairs have no positive energy (a counter "
                                             "that did not move over the window?): no ratio computed", len(pairs))
                    continue
                change[name] = _safe(lambda: energy_change([a.energy_j for a, _, _ in pairs],
                                                           [b.energy_j for _, b, _ in pairs], proxy_fell=proxy_fell,
                                                           sesoi=sesoi),
                                     len(pairs))
                if len(pairs) >= 2:
                    es = [runs[s].activation_energy for _, _, s in pairs] + [base[s].activation_energy for _, _, s in pairs]
                    js = [a.energy_j for a, _, _ in pairs] + [b.energy_j for _, b, _ in pairs]
                    if all(e > 0 for e in es):
                        slopes[name] = _safe(lambda: elasticity_verdict(elasticity(js, es, [s for _, _, s in pairs] * 2)),
                                             len(pairs))
            by_kind = {}
            for measure in sorted({k for r in runs.values() for k in r.activation_energy_by_kind}):
                pairs_e = [(runs[s].activation_energy_by_kind.get(measure), base[s].activation_energy_by_kind.get(measure))
                           for s in seeds]
                pairs_e = [(a, b) for a, b in pairs_e if a is not None and b is not None]
                if lam != 0.0 and pairs_e:
                    result = e_ratio([a for a, _ in pairs_e], [b for _, b in pairs_e])
                    if result is not None:
                        by_kind[measure] = result
            rows.append(LambdaRow(
                model, dataset, kind, lam, len(seeds),
                accuracy_interval(r.test_accuracy * 100 for r in runs.values()),
                t_interval((r.activation_energy for r in runs.values()), NON_NEGATIVE),
                ratio if lam != 0.0 else None,
                accuracy_change([runs[s].test_accuracy * 100 for s in seeds],
                                [base[s].test_accuracy * 100 for s in seeds]) if lam != 0.0 and seeds else None,
                change, slopes, joules, provenance, tuple(negative), by_kind, *_by_epoch(runs, base, seeds, kind, lam)))
    return rows


def _by_epoch(runs: Mapping[int, RunRecord], base: Mapping[int, RunRecord], seeds: list[int], kind: str,
              lam: float) -> tuple[Any, ...]:
    """The per-epoch ratios: under the trained definition (per-epoch E is recorded with reduction sum only),
    whether it levelled off and was still rising, and the same per recorded definition."""
    if lam == 0.0:
        return (), None, False, {}, {}
    measures = sorted({k for s in seeds for h in runs[s].history for k in h.test_activation_energy_by_kind})
    by_kind = {m: ratio_by_epoch(runs, base, seeds, m) for m in measures}
    by_kind = {m: series for m, series in by_kind.items() if series}
    measure, _, reduction = kind.partition("/")
    series = by_kind.get(measure, ()) if reduction in ("", "sum") else ()
    return (series, levelled_off(series), still_rising(series), by_kind,
            {m: still_rising(v) for m, v in by_kind.items()})


@dataclass(frozen=True)
class LoihiRow:
    """Simulated Loihi of one group and lambda, over seeds (energies modeled, counts counted)."""

    model: str
    dataset: str
    activation_energy_kind: str
    lam: float
    samples: int
    timesteps: int
    accuracy_pct: Interval
    source_accuracy_pct: Interval
    spikes_per_sample: Interval
    synops_per_sample: Interval
    energy_j_per_sample: Mapping[str, Interval]


def loihi_rows(records: list[RunRecord]) -> list[LoihiRow]:
    """Means with t intervals over seeds of the spiking simulations."""
    rows = []
    for (model, dataset, kind), by_lam in groups(records).items():
        for lam in sorted(by_lam):
            sims = [r.loihi for r in by_lam[lam].values() if r.loihi is not None and r.loihi.error is None]
            if not sims:
                continue
            pct = (lambda xs: (100 * x for x in xs if x is not None))
            profiles = sorted({p for s in sims for p in s.energy_j_per_sample})
            rows.append(LoihiRow(model, dataset, kind, lam, sims[0].samples, sims[0].timesteps,
                                 accuracy_interval(pct(s.accuracy for s in sims)),
                                 accuracy_interval(pct(s.source_accuracy for s in sims)),
                                 t_interval((s.spikes_per_sample for s in sims), NON_NEGATIVE),
                                 t_interval((s.synops_per_sample for s in sims), NON_NEGATIVE),
                                 {p: t_interval((s.energy_j_per_sample.get(p) for s in sims), NON_NEGATIVE)
                                  for p in profiles}))
    return rows


@dataclass(frozen=True)
class CarbonRow:
    """CO2e of one energy figure per run (modeled: joules x the grid's carbon intensity)."""

    target: FigureId
    provenance: str
    energy_j: Interval
    co2e_g: Interval


def carbon_rows(figures: Figures, country: str) -> tuple[list[CarbonRow], str]:
    """Per figure, joules and grams of CO2e per run over every run (before any drift correction), and the
    intensity's source."""
    from .carbon import J_PER_KWH, intensity_g_per_kwh

    intensity, source = intensity_g_per_kwh(country)
    rows = []
    for fid in figures.ids():
        values = [r.figures[fid].uncorrected_energy_j for r in figures.runs if fid in r.figures]
        rows.append(CarbonRow(fid, fid.provenance, t_interval(values),
                              t_interval(v / J_PER_KWH * intensity for v in values)))
    return rows, f"{country.upper()}: {intensity:g} gCO2e/kWh ({source})"


Correlation = tuple[str, FigureId, str, StatResult]
#: The proxies simulated Loihi energy is computed from (pJ per spike and per synaptic operation).
IDENTITY_PROXIES = ("spikes", "synops")


def correlations(figures: Figures) -> list[Correlation]:
    """(proxy, figure, provenance, result): each proxy's correlation with each energy figure within groups
    (cluster bootstrap over seeds)."""
    out = []
    for fid in figures.ids():
        for proxy in PROXIES:
            if fid.phase == LOIHI and proxy in IDENTITY_PROXIES:
                continue  # simulated Loihi energy is priced from these counts: an identity, never a finding
            rows = [(r.proxies[proxy], r.figures[fid].energy_j, r.record.group, r.record.seed) for r in figures.runs
                    if fid in r.figures and r.proxies[proxy] is not None and math.isfinite(r.proxies[proxy])
                    and not r.figures[fid].negative]
            if len(rows) < 3 or len({x for x, *_ in rows}) < 2:
                continue  # a proxy constant over the sweep (FLOPs do not depend on lambda) has no correlation
            result = within_group_correlation([x for x, *_ in rows], [y for _, y, *_ in rows],
                                              [g for *_, g, _ in rows], [s for *_, s in rows])
            out.append((proxy, fid, fid.provenance, result))
    return out


@dataclass(frozen=True)
class AnovaTable:
    """A two-way ANOVA (model x dataset, lambda blocking) of one response.

    Attributes:
        response: What was analysed (``"accuracy"``, ``"log inference cpu:model (net J per workload)"``).
        rows: One dict per term: term, df, F, p, partial_eta_sq, n (empty where ``skipped``).
        skipped: Why the ANOVA could not be computed on this design, or None.
    """

    response: str
    rows: tuple[Mapping[str, Any], ...]
    skipped: str | None = None


def anova_tables(figures: Figures) -> tuple[AnovaTable | None, AnovaTable | None]:
    """The ANOVA of accuracy and of the first positive inference energy figure (None with one level of each
    factor, or no such figure)."""
    records = figures.records
    if len({r.model for r in records}) <= 1 and len({r.dataset for r in records}) <= 1:
        return None, None
    try:
        table = anova([r.model for r in records], [r.dataset for r in records], [r.test_accuracy for r in records],
                      [r.lam for r in records])
        accuracy = None if table is None else AnovaTable("accuracy", tuple({**row, "n": len(records)} for row in table))
    except AnovaSkipped as exc:
        accuracy = AnovaTable("accuracy", (), str(exc))
    hardware = [(r.record, f) for r in figures.runs for f in r.figures.values()
                if f.id.phase == INFERENCE and f.energy_j > 0]
    first = sorted({f.id for _, f in hardware}, key=sort_key)[:1]
    chosen = [(r, f) for r, f in hardware if f.id in first]
    if not chosen:
        return accuracy, None
    try:
        table = anova([r.model for r, _ in chosen], [r.dataset for r, _ in chosen],
                      [math.log(f.energy_j) for _, f in chosen], [r.lam for r, _ in chosen])
    except AnovaSkipped as exc:
        return accuracy, AnovaTable(f"log {first[0].label}", (), str(exc))
    if not table:
        return accuracy, None
    return accuracy, AnovaTable(f"log {first[0].label}", tuple({**row, "n": len(chosen)} for row in table))


@dataclass(frozen=True)
class Tables:
    """Every table of a sweep, made once; the claims and the reports read them."""

    lambda_rows: tuple[LambdaRow, ...]
    loihi_rows: tuple[LoihiRow, ...]
    carbon_rows: tuple[CarbonRow, ...]
    carbon_source: str | None
    correlations: tuple[Correlation, ...]
    anova_accuracy: AnovaTable | None
    anova_energy: AnovaTable | None
    #: The smallest energy change of interest the lambda table's verdicts use (a fraction).
    sesoi: float = ENERGY_SESOI


def build_tables(figures: Figures, country: str | None = None, sesoi: float = ENERGY_SESOI) -> Tables:
    """The tables of a sweep's figures (CO2e only with ``country``; energy changes against ``sesoi``)."""
    carbon: list[CarbonRow] = []
    source = None
    if country:
        carbon, source = carbon_rows(figures, country)
    acc, energy = anova_tables(figures)
    return Tables(tuple(lambda_rows(figures, sesoi)), tuple(loihi_rows(figures.records)), tuple(carbon), source,
                  tuple(correlations(figures)), acc, energy, sesoi)
