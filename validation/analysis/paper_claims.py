"""The paper's claims and its untested premise, each registered as one function of the figures and tables.

Registration order is the order a report lists them. Each function reads the ``Figures`` and ``Tables``
that ``analyse`` made once; none recomputes a figure. The sentences and verdict rules are in ``claims``.
"""

from __future__ import annotations

import math
from typing import Any

from ..records.record import RunRecord
from . import claims as paper
from .claim_registry import claim
from .claims import Claim
from .figures import Figures
from .intervals import accuracy_interval
from .stats import INCONCLUSIVE, StatResult, cost_to_target, efficiency_gain, make_result
from .tables import LambdaRow, Tables, groups
from .training_length import levelled_off


def _subject(row: LambdaRow) -> dict[str, Any]:
    return {"model": row.model, "dataset": row.dataset, "activation_energy_kind": row.activation_energy_kind,
            "lambda": row.lam}


def _compared(tables: Tables) -> list[LambdaRow]:
    """The lambda table's rows that compare a lambda > 0 with lambda = 0."""
    return [row for row in tables.lambda_rows if row.lam != 0.0]


def _level_unknown(series: tuple[float | None, ...]) -> bool:
    """Whether a recorded per-epoch ratio cannot tell if it levelled off (records without one keep the old rule)."""
    return bool(series) and levelled_off(series) is None


@claim("e_reduction")
def e_reduction(figures: Figures, tables: Tables) -> list[Claim]:
    """E(0) / E(lambda) under the definition trained with, against the paper's about 1000x, with the part a pure
    rescaling explains and whether the ratio was still rising at the last epoch."""
    return [paper.e_reduction(_subject(row), row.e_ratio, still_rising=row.still_rising,
                              scale_free=_scale_free(row, row.activation_energy_kind),
                              level_unknown=_level_unknown(row.e_ratio_by_epoch))
            for row in _compared(tables) if row.e_ratio is not None]


@claim("e_reduction_by_definition")
def e_reduction_by_definition(figures: Figures, tables: Tables) -> list[Claim]:
    """The same ratio with E measured under each other definition (l2, l1, l0, l2/l1-scale-free)."""
    return [paper.e_reduction({**_subject(row), "measured_as": f"{measure}/sum"}, ratio,
                              still_rising=row.still_rising_by_kind.get(measure, False),
                              scale_free=_scale_free(row, measure),
                              level_unknown=_level_unknown(row.e_ratio_by_epoch_by_kind.get(measure, ())))
            for row in _compared(tables) for measure, ratio in sorted(row.e_ratio_by_kind.items())
            if f"{measure}/sum" != row.activation_energy_kind]  # the trained definition is e_reduction's


def _scale_free(row: LambdaRow, kind: str) -> StatResult | None:
    """The scale-free counterpart's ratio of a definition (``l2`` -> ``l2-scale-free``), where recorded."""
    return row.e_ratio_by_kind.get(f"{kind.split('/')[0]}-scale-free")


@claim("accuracy_change")
def accuracy_change(figures: Figures, tables: Tables) -> list[Claim]:
    """The paper's "under 0.5 pp lost", per lambda."""
    return [paper.accuracy(_subject(row), row.accuracy_change_pp) for row in _compared(tables)
            if row.accuracy_change_pp is not None]


@claim("energy_tracking")
def energy_tracking(figures: Figures, tables: Tables) -> list[Claim]:
    """The premise: whether each energy figure falls as E falls, per lambda."""
    return [paper.energy_tracking(_subject(row), fid, change, row.elasticity.get(fid), tables.sesoi)
            for row in _compared(tables) for fid, change in sorted(row.energy_change.items(), key=lambda i: i[0].label)]


@claim("energy_saving")
def energy_saving(figures: Figures, tables: Tables) -> list[Claim]:
    """Whether each lambda saves at least the smallest change of interest of each energy figure."""
    return [paper.energy_saving(_subject(row), fid, change, tables.sesoi)
            for row in _compared(tables) for fid, change in sorted(row.energy_change.items(), key=lambda i: i[0].label)]


@claim("joint")
def joint(figures: Figures, tables: Tables) -> list[Claim]:
    """Per group: how far E fell at the largest lambda whose accuracy loss is shown to be under the bound."""
    out = []
    for (model, dataset, kind) in groups(figures.records):
        kept = [r for r in tables.lambda_rows
                if (r.model, r.dataset, r.activation_energy_kind) == (model, dataset, kind) and r.lam > 0
                and r.accuracy_change_pp is not None and r.accuracy_change_pp.verdict == "holds"]
        best = max(kept, key=lambda r: r.lam, default=None)
        out.append(paper.joint({"model": model, "dataset": dataset, "activation_energy_kind": kind},
                               None if best is None else best.lam, None if best is None else best.e_ratio))
    return out


@claim("correlation")
def correlation(figures: Figures, tables: Tables) -> list[Claim]:
    """E's correlation with each energy figure within groups (the other proxies are in the table only)."""
    n_groups = len(groups(figures.records))
    return [paper.correlation({"groups": n_groups}, proxy, fid, result)
            for proxy, fid, _, result in tables.correlations if proxy == "E"]


@claim("training_efficiency")
def training_efficiency(figures: Figures, tables: Tables) -> list[Claim]:
    """The paper's third claim: cost (raw training joules, FLOPs, seconds) to one target accuracy per group,
    the lambda = 0 runs' mean final accuracy across seeds minus 0.5 pp (with its interval), lambda > 0
    against lambda = 0, paired by seed; interpolated linearly within the epoch that reaches it."""
    out = []
    for (model, dataset, kind), by_lam in groups(figures.records).items():
        base = by_lam.get(0.0, {})
        finals = [r.history[-1].test_accuracy for r in base.values()
                  if r.history and r.history[-1].test_accuracy is not None]
        if not finals:
            continue
        reached = accuracy_interval(a * 100 for a in finals)  # the baseline's final accuracy, percent, across seeds
        target = sum(finals) / len(finals) - paper.PAPER_MAX_ACC_LOSS_PP / 100
        for lam in sorted(by_lam):
            if lam == 0.0:
                continue
            runs = by_lam[lam]
            seeds = [s for s in sorted(runs) if s in base and base[s].history and runs[s].history]
            same_flops = _same_flops_per_epoch([runs[s] for s in seeds], [base[s] for s in seeds])
            for quantity in ("energy", "flops", "time"):
                costs_lam, costs_base, never = [], [], 0
                for s in seeds:
                    pair = [_cost(r, quantity, target) for r in (runs[s], base[s])]
                    if pair[0] is None or pair[1] is None:
                        never += pair[0] is None
                        continue
                    costs_lam.append(pair[0])
                    costs_base.append(pair[1])
                if not costs_lam:
                    continue
                try:
                    gain = efficiency_gain(costs_lam, costs_base, quantity=quantity)
                except (ArithmeticError, ValueError) as exc:  # e.g. zero joules to target: a frozen counter
                    gain = make_result(f"{quantity} gain", len(costs_lam), None, (None, None), "not computed",
                                       INCONCLUSIVE, f"not computable ({type(exc).__name__}: {exc})")
                out.append(paper.training_efficiency({"model": model, "dataset": dataset,
                                                      "activation_energy_kind": kind, "lambda": lam},
                                                     quantity, gain, never, target * 100, reached, same_flops))
    return out


def _same_flops_per_epoch(runs: list[RunRecord], bases: list[RunRecord]) -> bool:
    """Whether every run does the same FLOPs per epoch as its baseline (then a gain is faster convergence)."""
    def per_epoch(r: RunRecord) -> float | None:
        h = r.history
        return None if not h or h[-1].cumulative_flops is None else h[-1].cumulative_flops / len(h)

    pairs = [(per_epoch(a), per_epoch(b)) for a, b in zip(runs, bases)]
    return bool(pairs) and all(a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9) for a, b in pairs)


def _cost(record: RunRecord, quantity: str, target: float) -> float | None:
    """A run's cumulative cost (seconds, FLOPs or raw joules) to ``target`` accuracy; None where unknown."""
    history = record.history
    accuracy = [h.test_accuracy for h in history]
    if any(a is None for a in accuracy):
        return None
    if quantity == "time":
        series = [h.cumulative_duration_s for h in history]
    elif quantity == "flops":
        series = [h.cumulative_flops for h in history]
    else:
        if record.train is None or not history[0].cumulative_energy_j:
            return None
        # Gross (raw) joules to the target, as energy-to-accuracy is usually reported (the idle share is a
        # constant rate, so it scales both sides alike), summed over the run's total domains (the total rule).
        domains = record.train.measurement.total_domains
        if not domains:
            return None
        series = [math.fsum(h.cumulative_energy_j.get(d, math.nan) for d in domains) for h in history]
    if any(v is None or not math.isfinite(v) for v in series) or any(b < a for a, b in zip(series, series[1:])):
        return None  # a failed or non-monotonic epoch window: no cost to target for this run
    return cost_to_target(series, accuracy, target).cost


@claim("architecture_anova")
def architecture_anova(figures: Figures, tables: Tables) -> list[Claim]:
    """The paper's first claim: ANOVA terms of accuracy (the paper's response) beside its partial eta^2."""
    table = tables.anova_accuracy
    if table is None or table.skipped:
        return []  # the report says why in the ANOVA's section
    return paper.architecture_anova(table.response, [dict(r) for r in table.rows])
