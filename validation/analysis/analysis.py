"""One ``Analysis`` of a sweep, computed from its run records: every figure a report shows, and the claims.

``analyse(records, ...)`` is the only place figures are computed: it builds each run's figures once
(``figures.build_figures``), every table once (``tables.build_tables``), then runs every registered claim
(``claim_registry``) on those; every report format renders the ``Analysis`` and nothing else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, is_dataclass, replace
from typing import Any, Mapping, Sequence

from energymeter.window_parts import frozen_domains

from ..records.manifest import SweepManifest
from ..records.record import RunRecord
from ..records.rounds import CHUNKED, RoundsRecord
from . import claims as paper
from . import paper_claims  # noqa: F401 - registers the paper's claims
from .claim_registry import evaluate
from .claims import Claim
from .multiplicity import METHODS, FamilyControl, control
from .questions import QuestionSummary, summarise
from .drift import fit_drift
from .figures import INFERENCE, TRAINING, FigureId, Figures, build_figures, csv_row
from .rounds import PairedComparison, describe_design, of_design, paired_comparisons
from .stats import DRIFTING, ENERGY_SESOI, MIN_ELASTICITY, NEGLIGIBLE_R, NULL_ELASTICITY, TRACKS_R, StatResult
from .stats_core import UNRESOLVED_PERCENT_WIDTH, UNRESOLVED_POINTS_WIDTH, UNRESOLVED_RATIO_SPAN
from .tables import CarbonRow, Correlation, LambdaRow, LoihiRow, Tables, build_tables
from .training_length import level_rule

Point = tuple[float, float, float, str]
#: The inference design of a sweep without interleaved rounds.
PER_RUN_DESIGN = "per-run windows (unprotected against drift)"
#: The training design of a sweep without training chunks.
SEQUENTIAL_DESIGN = "one run after another (unprotected against drift)"


@dataclass(frozen=True)
class Analysis:
    """Everything a report shows.

    Attributes:
        runs: Runs analysed.
        measured_domains: Labels of the energy figures read from hardware (measured or integrated).
        tables: The lambda, Loihi, CO2e, correlation and ANOVA tables.
        claims: Every claim with its verdict and sentence, in the claim registry's order.
        drift: The reference workload's drift over the sweep (None without references).
        drift_corrected: Whether energies were divided by the reference factors.
        busy_runs: Keys of runs that shared the machine with other work.
        warnings: Plain-language warnings (busy machine, negative net energies, drift).
        problems: Lines of results.jsonl that could not be read.
        points: Figure -> (E, joules, lambda, model/dataset) per run, for plots.
        rows: report.csv's rows.
        sweep: The sweep's manifest (sweep.json: settings and metadata; empty when there is none).
        families: How each family of verdicts was controlled for its size (``multiplicity``).
        questions: The summary: one entry per question the sweep asked, with its claims (``questions``).
    """

    runs: int
    measured_domains: tuple[str, ...]
    tables: Tables
    claims: tuple[Claim, ...]
    drift: StatResult | None
    drift_corrected: bool
    busy_runs: tuple[str, ...]
    warnings: tuple[str, ...]
    problems: tuple[str, ...]
    points: Mapping[FigureId, tuple[Point, ...]] = field(default_factory=dict)
    rows: tuple[Mapping[str, Any], ...] = ()
    sweep: SweepManifest = field(default_factory=SweepManifest)
    families: tuple[FamilyControl, ...] = ()
    inference_rounds: tuple[PairedComparison, ...] = ()
    inference_design: str = PER_RUN_DESIGN
    training_rounds: tuple[PairedComparison, ...] = ()
    training_design: str = SEQUENTIAL_DESIGN
    questions: tuple[QuestionSummary, ...] = ()

    @property
    def lambda_rows(self) -> tuple[LambdaRow, ...]:
        return self.tables.lambda_rows

    @property
    def loihi_rows(self) -> tuple[LoihiRow, ...]:
        return self.tables.loihi_rows

    @property
    def carbon_rows(self) -> tuple[CarbonRow, ...]:
        return self.tables.carbon_rows

    @property
    def carbon_source(self) -> str | None:
        """The carbon intensity used (None without ``--country``)."""
        return self.tables.carbon_source

    @property
    def correlations(self) -> tuple[Correlation, ...]:
        """(proxy, figure, provenance, result) within groups (cluster bootstrap)."""
        return self.tables.correlations

    @property
    def anova_accuracy(self) -> tuple[Mapping[str, Any], ...] | None:
        """ANOVA rows of accuracy (None with one level of each factor)."""
        return None if self.tables.anova_accuracy is None else self.tables.anova_accuracy.rows

    @property
    def anova_energy(self) -> tuple[Mapping[str, Any], ...] | None:
        """ANOVA rows of log inference energy (None with one level of each factor)."""
        return None if self.tables.anova_energy is None else self.tables.anova_energy.rows

    @property
    def anova_skipped(self) -> dict[str, str]:
        """Why an ANOVA could not be computed on this design, by table (``accuracy``, ``energy``)."""
        tables = {"accuracy": self.tables.anova_accuracy, "energy": self.tables.anova_energy}
        return {name: t.skipped for name, t in tables.items() if t is not None and t.skipped}

    @property
    def headline(self) -> str:
        """The first thing a report says: whether any figure was read from hardware."""
        if self.measured_domains:
            return f"Energy read from hardware (measured or integrated): {', '.join(self.measured_domains)}."
        statuses = self.sweep.metadata.get("backends") or ()
        unread = [f"{b.get('name')}: {b.get('reason')}" for b in statuses if isinstance(b, Mapping)
                  and b.get("provenance") in ("measured", "integrated") and not b.get("available")]
        why = (f" The hardware counters looked for, and why none was read: {'; '.join(unread)}." if unread else "")
        return ("No energy was read from hardware in this sweep: every energy figure below is modeled (CPU time x TDP "
                "share, Loihi pJ-per-operation tables) or counted (FLOPs, spikes, synaptic operations). They show "
                f"what the models predict, not what the hardware drew.{why}")

    def _repr_html_(self) -> str:
        """Headline, claims and warnings as escaped HTML, for Jupyter (``validation.analysis.notebook``)."""
        from .notebook import analysis_html

        return analysis_html(self)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary (``report.json``): ``summary`` first, one entry per question, then every claim with
        the key of the question it answers."""
        question = {i: q.key for q in self.questions for i in q.indices}
        return _json_safe({
            "headline": self.headline, "runs": self.runs, "measured_domains": list(self.measured_domains),
            "summary": [q.to_dict() for q in self.questions],
            "claims": [{**c.to_dict(), "question": question.get(i)} for i, c in enumerate(self.claims)],
            "lambda_table": _plain(self.lambda_rows),
            "loihi_table": _plain(self.loihi_rows), "carbon": _plain(self.carbon_rows),
            "carbon_source": self.carbon_source,
            "correlations": [{"proxy": p, "target": t.label, "provenance": v, **s.to_dict()}
                             for p, t, v, s in self.correlations],
            "anova_accuracy": _plain(self.anova_accuracy), "anova_energy": _plain(self.anova_energy),
            "anova_skipped": self.anova_skipped,
            "drift": None if self.drift is None else self.drift.to_dict(), "drift_corrected": self.drift_corrected,
            "busy_runs": list(self.busy_runs), "warnings": list(self.warnings), "problems": list(self.problems),
            "thresholds": {"energy_sesoi": self.tables.sesoi, "tracks_r": TRACKS_R, "negligible_r": NEGLIGIBLE_R,
                           "min_elasticity": MIN_ELASTICITY, "null_elasticity": NULL_ELASTICITY,
                           "paper_e_ratio_v2": paper.PAPER_E_RATIO_V2, "e_ratio_level_rule": level_rule(),
                           "paper_max_acc_loss_pp": paper.PAPER_MAX_ACC_LOSS_PP,
                           "paper_efficiency_gain": list(paper.PAPER_EFFICIENCY_GAIN), "paper_eta2": paper.PAPER_ETA2,
                           "unresolved_ratio_span": UNRESOLVED_RATIO_SPAN,
                           "unresolved_percent_width": UNRESOLVED_PERCENT_WIDTH,
                           "unresolved_points_width": UNRESOLVED_POINTS_WIDTH},
            "sweep": self.sweep.to_dict(), "multiplicity": [f.to_dict() for f in self.families],
            "inference_design": self.inference_design,
            "inference_rounds": [c.to_dict() for c in self.inference_rounds],
            "training_design": self.training_design,
            "training_rounds": [c.to_dict() for c in self.training_rounds],
        })


def _plain(value: Any) -> Any:
    """Rows as JSON: a figure id as its label, a stat result as its dict, dataclasses as dicts of fields."""
    if isinstance(value, FigureId):
        return value.label
    if isinstance(value, StatResult):
        return value.to_dict()
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Mapping):
        return {str(_plain(k)): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def analyse(records: list[RunRecord], sweep: SweepManifest | Mapping[str, Any] | None = None,
            problems: list[str] | None = None, country: str | None = None, drift_correction: bool = False,
            sesoi: float = ENERGY_SESOI, multiplicity: str = "holm",
            rounds: Sequence[RoundsRecord] = ()) -> Analysis:
    """Every figure, table and claim of a sweep's records (claims: every one in ``claim_registry.CLAIMS``).

    Args:
        records: The runs.
        sweep: The sweep's manifest (or sweep.json's object).
        problems: Lines of results.jsonl that could not be read.
        country: ISO 3166-1 alpha-3 code for the CO2e table (None: none).
        drift_correction: Divide each run's energies by its reference workload's drift factor.
        sesoi: The smallest energy change of interest, a fraction (default 0.10; ``--sesoi`` in percent).
        multiplicity: How each family of verdicts is controlled for its size: ``holm`` or ``bh``
            (see ``multiplicity``).
        rounds: The interleaved inference rounds of the sweep (``rounds.jsonl``; none for older sweeps): their
            comparisons paired by round, and the design each inference claim names.

    Raises:
        ValueError: ``sesoi`` is not a fraction in (0, 1), or ``multiplicity`` is not a known method.
    """
    if not 0 < sesoi < 1:  # checked here: inside the tables a bad one would only turn every figure inconclusive
        raise ValueError(f"sesoi is a fraction in (0, 1), got {sesoi!r}")
    if multiplicity not in METHODS:
        raise ValueError(f"multiplicity method {multiplicity!r}: choose one of {', '.join(METHODS)}")
    if sweep is not None and not isinstance(sweep, SweepManifest):
        sweep = SweepManifest.from_dict(sweep)
    records = sorted(records, key=lambda r: (r.run_index if r.run_index is not None else 1 << 30, r.key))
    device = str((sweep.config if sweep is not None else {}).get("device") or "cpu")
    fit = fit_drift(records, drift_correction, gpu_reference=device.startswith("cuda"))
    drift, factors, drift_notes = fit.drift, fit.factors, list(fit.notes)
    figures = build_figures(records, factors)
    tables = build_tables(figures, country, sesoi)
    failed_claims: list[str] = []
    claim_list, families = control(evaluate(figures, tables, failed_claims), multiplicity)
    busy = tuple(r.key for r in records if r.load is not None and r.load.busy)
    warnings = _warnings(records, tables, busy, drift, bool(factors)) + drift_notes + failed_claims
    for change in (sweep.backend_changes if sweep is not None else ()):  # --allow-backend-change: which runs how
        warnings.append(f"The sweep began on energy backends {', '.join(change.get('from', ()))} and continued after "
                        f"{change.get('after_runs', '?')} run(s) on {', '.join(change.get('to', ())) or 'none'} "
                        "(--allow-backend-change): figures of the two sets are not comparable; compare runs within "
                        "one set (each record's measurement names its domains)")
    measured = sorted({fid.label for fid in figures.ids() if fid.provenance in ("measured", "integrated")})
    inference_rounds, chunks = of_design(rounds), of_design(rounds, CHUNKED)
    design = describe_design(inference_rounds) if inference_rounds else PER_RUN_DESIGN
    training = describe_design(chunks) if chunks else SEQUENTIAL_DESIGN
    claim_list = [_with_design(c, design, training) for c in claim_list]
    sweep = sweep or SweepManifest()
    questions = summarise(claim_list, families, tables, sweep, _absent(tables),
                          (f"inference: {design}", f"training: {training}"))
    paired_inference = _paired(inference_rounds, "inference", warnings)
    paired_training = _paired(chunks, "training", warnings)
    return Analysis(len(records), tuple(measured), tables, tuple(claim_list), drift, bool(factors), busy,
                    tuple(warnings), tuple(problems or ()), _points(figures), tuple(csv_row(r) for r in records),
                    sweep, tuple(families), paired_inference, design, paired_training, training, questions)


def _paired(rounds: list[RoundsRecord], what: str, warnings: list[str]) -> tuple[PairedComparison, ...]:
    """The comparisons paired by round, or none and a warning where they cannot be computed (the report stays)."""
    try:
        return tuple(paired_comparisons(rounds))
    except Exception as exc:  # noqa: BLE001 - one figure that cannot be computed fails alone
        warnings.append(f"The {what} comparisons paired by round could not be computed ({type(exc).__name__}: "
                        f"{exc}); every other figure stands.")
        return ()


def _with_design(claim: Claim, inference: str, training: str) -> Claim:
    """The claim with the design its figure was measured under, at the end of its sentence."""
    if claim.figure.startswith(INFERENCE):
        return replace(claim, sentence=f"{claim.sentence} [inference: {inference}]")
    if claim.figure.startswith(TRAINING):
        return replace(claim, sentence=f"{claim.sentence} [training: {training}]")
    return claim


def _absent(tables: Tables) -> dict[str, str]:
    """Why a question may have no claims on this sweep, where the tables know."""
    out = {}
    if not any(r.lam != 0.0 for r in tables.lambda_rows):
        out.update(dict.fromkeys(("tracking", "saving", "e_reduction", "accuracy", "efficiency"),
                                 "no lambda > 0 paired with lambda = 0"))
    anova = tables.anova_accuracy
    out["anova"] = ("one model and one dataset (needs two levels of a factor; `--preset paper`)" if anova is None
                    else f"skipped: {anova.skipped}" if anova.skipped else "no ANOVA term")
    if not tables.correlations:
        out["correlation"] = "no proxy varies with energy over 3 runs or more"
    return out


def _points(figures: Figures) -> dict[FigureId, tuple[Point, ...]]:
    points: dict[FigureId, list[Point]] = {}
    for run in figures.runs:
        r = run.record
        for fid, f in run.figures.items():
            points.setdefault(fid, []).append((r.activation_energy, f.energy_j, r.lam, f"{r.model}/{r.dataset}"))
    return {k: tuple(v) for k, v in points.items()}


def _warnings(records: list[RunRecord], tables: Tables, busy: tuple[str, ...], drift: StatResult | None,
              corrected: bool) -> list[str]:
    warnings = []
    if busy:
        warnings.append(f"The machine was busy during {len(busy)} of {len(records)} runs (other processes used "
                        "CPU time or the load average was high): their energy includes contention; the verdicts "
                        "below are weaker for it.")
    negatives = sorted({(row.model, row.dataset, t.label) for row in tables.lambda_rows for t in row.negative_net})
    for model, dataset, target in negatives:
        warnings.append(f"{model} on {dataset}: {target} came out negative in some runs (the idle baseline exceeded "
                        "the loaded window): that target's change is not computed at the lambdas concerned "
                        "(inconclusive, with the count), and the raw figures are kept.")
    frozen: dict[str, list[str]] = {}
    for r in records:
        for window in (r.inference, r.train):
            for domain in frozen_domains(window.measurement.warnings) if window is not None else ():
                frozen.setdefault(domain, []).append(r.key)
    for domain, keys in sorted(frozen.items()):
        runs = sorted(set(keys))
        warnings.append(f"{domain}: the counter did not advance over the windows of {len(runs)} run(s) (a frozen "
                        f"counter, as some VMs expose: {', '.join(runs[:3])}{' ...' if len(runs) > 3 else ''}): "
                        "those windows' figures for it are not measurements and are left out.")
    if drift is not None and drift.verdict == DRIFTING:
        warnings.append(f"The reference workload's energy drifted over the sweep ({drift.reason}); "
                        + ("the energies below are corrected by it." if corrected else "pass --drift-correction to "
                           "divide each run's energies by its drift factor."))
    return warnings
