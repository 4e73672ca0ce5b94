"""The figures of one run record: its energy figures, its proxies, and its row of report.csv.

An *energy figure* is one energy a proxy may or may not track. Its identity is a ``FigureId`` of fields
(phase, domain, basis, per, provenance); its label is derived from them, never parsed back, and is named
so that a reader cannot confuse it with E: ``"inference cpu:model (net J per workload)"`` (and its ``raw``
twin), ``"training cpu:model (net J)"``, ``"loihi:sim loihi1 (modeled J per input)"``. ``FIGURE_KINDS`` gives
each kind (phase, basis, per) its unit, formatter and axis label. Net figures subtract the run's idle
baseline; a drift correction factor (``drift.fit_drift``: a fitted trend per device class) divides a run's figures when the
user asks for it. ``build_figures`` computes every run's figures once; every table and claim reads them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Iterable, Mapping

from energymeter.window_parts import frozen_domains

from ..records.record import RunRecord
from .domains import factor_for

INFERENCE = "inference"
TRAINING = "training"
LOIHI = "loihi:sim"
#: The proxies of a run, in the order the reports show them.
PROXIES = ("E", "FLOPs", "synops", "spikes")


@dataclass(frozen=True)
class FigureKind:
    """What every figure of one kind shares.

    Attributes:
        phase, basis, per: The kind (``inference``/``training``/``loihi:sim``; ``net``/``raw``;
            ``workload``/``run``/``input``).
        unit: The figure's unit (``J``).
        label_unit: What a label says in parentheses (e.g. ``"net J per workload"``).
        axis_label: A plot axis's label.
        spec: Format spec of one value in a table.
    """

    phase: str
    basis: str
    per: str
    unit: str
    label_unit: str
    axis_label: str
    spec: str = ".4g"

    def format(self, value: float) -> str:
        """One value as a table shows it."""
        return f"{value:{self.spec}}"


#: (phase, basis, per) -> its kind. ``register_kind`` refuses a second kind under one key.
FIGURE_KINDS: dict[tuple[str, str, str], FigureKind] = {}


def register_kind(kind: FigureKind) -> FigureKind:
    """Add a figure kind to ``FIGURE_KINDS``.

    Raises:
        ValueError: a kind with that (phase, basis, per) is already registered.
    """
    key = (kind.phase, kind.basis, kind.per)
    if key in FIGURE_KINDS:
        raise ValueError(f"figure kind {key} is already registered")
    FIGURE_KINDS[key] = kind
    return kind


register_kind(FigureKind(INFERENCE, "net", "workload", "J", "net J per workload", "net J per workload"))
register_kind(FigureKind(INFERENCE, "raw", "workload", "J", "raw J per workload", "raw J per workload"))
register_kind(FigureKind(TRAINING, "net", "run", "J", "net J", "net J per run"))
register_kind(FigureKind(LOIHI, "raw", "input", "J", "modeled J per input", "modeled J per input", ".3g"))


@dataclass(frozen=True, order=True)
class FigureId:
    """Which energy figure: the same across runs.

    Attributes:
        phase: ``inference``, ``training`` or ``loihi:sim``.
        domain: The energy domain (``cpu:0:package``) or, for Loihi, the energy profile (``loihi1``).
        basis: ``net`` (idle baseline subtracted) or ``raw``.
        per: What one figure covers: a ``workload`` repetition, the whole ``run``, one ``input``.
        provenance: ``measured``, ``integrated`` or ``modeled``.
    """

    phase: str
    domain: str
    basis: str
    per: str
    provenance: str

    def __post_init__(self) -> None:
        if (self.phase, self.basis, self.per) not in FIGURE_KINDS:
            raise ValueError(f"no figure kind {(self.phase, self.basis, self.per)}; known: {sorted(FIGURE_KINDS)}")

    @property
    def kind(self) -> FigureKind:
        """Its kind's unit, formatter and axis label."""
        return FIGURE_KINDS[(self.phase, self.basis, self.per)]

    @property
    def unit(self) -> str:
        """The figure's unit (from its kind)."""
        return self.kind.unit

    @property
    def label(self) -> str:
        """The name a report shows, derived from the fields."""
        return f"{self.phase} {self.domain} ({self.kind.label_unit})"

    def __str__(self) -> str:
        return self.label


def sort_key(figure_id: FigureId) -> tuple[str, str]:
    """Figures in the order of their labels (as reports list them)."""
    return (figure_id.label, figure_id.provenance)


@dataclass(frozen=True)
class Figure:
    """One energy figure of one run.

    Attributes:
        id: Which figure.
        energy_j: Joules (net of idle for inference and training; modeled per input for Loihi), divided by
            ``drift_factor``.
        duration_s: The window's seconds for that figure (None for Loihi).
        negative: True when the net figure came out below zero (idle baseline above the loaded window).
        drift_factor: The drift correction ``energy_j`` was divided by (1.0: none).
    """

    id: FigureId
    energy_j: float
    duration_s: float | None
    negative: bool = False
    drift_factor: float = 1.0

    @property
    def provenance(self) -> str:
        return self.id.provenance

    @property
    def uncorrected_energy_j(self) -> float:
        """Joules before the drift correction."""
        return self.energy_j * self.drift_factor


def run_figures(record: RunRecord, factor: Mapping[str, float] | float = 1.0) -> dict[FigureId, Figure]:
    """The run's energy figures (net and raw figures divided by the drift correction: ``factor``, or its entry
    for each domain's device class, ``domains.factor_for``)."""
    out: dict[FigureId, Figure] = {}
    inference = record.inference
    provenance = inference.measurement.provenance
    declared = {**(record.train.measurement.domains if record.train is not None else {}),
                **inference.measurement.domains}

    def add(fid: FigureId, joules: float, duration_s: float | None, scales: Mapping[str, float] | float) -> None:
        scale = factor_for(scales, declared.get(fid.domain))
        out[fid] = Figure(fid, joules / scale, duration_s, joules < 0, scale)

    # Net (idle subtracted) and raw: where the machine's power does not depend on the work, net energy is
    # about zero and unusable, while raw energy is power x time and shows whether anything changed.
    # A frozen counter's 0 J is no measurement: its figures are left out of the run (the report names it).
    frozen = frozen_domains(inference.measurement.warnings)
    for basis, energies in (("net", inference.net_energy_j_per_workload), ("raw", inference.raw_energy_j_per_workload)):
        for domain, joules in energies.items():
            if domain not in frozen:
                add(FigureId(INFERENCE, domain, basis, "workload", provenance[domain]), joules,
                    inference.duration_s_per_workload, factor)
    if record.train is not None:
        train = record.train
        frozen = frozen_domains(train.measurement.warnings)
        for domain, joules in train.net_energy_j.items():
            if domain not in frozen:
                add(FigureId(TRAINING, domain, "net", "run", train.measurement.provenance[domain]), joules,
                    train.measurement.duration_s, factor)
    if record.loihi is not None:
        for profile, joules in record.loihi.energy_j_per_sample.items():
            out[FigureId(LOIHI, profile, "raw", "input", "modeled")] = Figure(
                FigureId(LOIHI, profile, "raw", "input", "modeled"), joules, None)
    return out


@dataclass(frozen=True)
class RunFigures:
    """One run with its figures and proxies, computed once.

    Attributes:
        record: The run.
        figures: Its energy figures (drift-corrected when asked).
        proxies: E, FLOPs, synops, spikes (None where not counted).
    """

    record: RunRecord
    figures: Mapping[FigureId, Figure]
    proxies: Mapping[str, float | None]

    def __post_init__(self) -> None:
        object.__setattr__(self, "figures", MappingProxyType(dict(self.figures)))
        object.__setattr__(self, "proxies", MappingProxyType(dict(self.proxies)))


@dataclass(frozen=True)
class Figures:
    """Every run's figures, in run order: what the tables and claims read.

    Attributes:
        runs: One ``RunFigures`` per run.
        factors: Run key -> the drift correction factors its figures were divided by, per device class ({}: none).
    """

    runs: tuple[RunFigures, ...]
    factors: Mapping[str, Mapping[str, float] | float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "factors", MappingProxyType(dict(self.factors)))
        object.__setattr__(self, "_by_key", {r.record.key: r for r in self.runs})

    @property
    def records(self) -> list[RunRecord]:
        return [r.record for r in self.runs]

    def of(self, record: RunRecord) -> Mapping[FigureId, Figure]:
        """The figures of one run."""
        return self._by_key[record.key].figures  # type: ignore[attr-defined]

    def ids(self) -> list[FigureId]:
        """Every figure id over the runs, in label order."""
        return sorted({fid for r in self.runs for fid in r.figures}, key=sort_key)


def build_figures(records: Iterable[RunRecord],
                  factors: Mapping[str, Mapping[str, float] | float] | None = None) -> Figures:
    """Every run's figures and proxies (``factors``: run key -> its drift correction factor per device class)."""
    factors = dict(factors or {})
    return Figures(tuple(RunFigures(r, run_figures(r, factors.get(r.key, 1.0)), proxies(r)) for r in records), factors)


def proxies(record: RunRecord) -> dict[str, float | None]:
    """The proxy values of one run: E, FLOPs per inference sample, synaptic operations and spikes per input."""
    loihi = record.loihi
    return {"E": record.activation_energy, "FLOPs": record.inference_flops_per_sample,
            "synops": None if loihi is None else loihi.synops_per_sample,
            "spikes": None if loihi is None else loihi.spikes_per_sample}


def csv_row(record: RunRecord) -> dict[str, Any]:
    """One run as a flat row: durations, raw and net joules (per workload where a window held several),
    FLOPs, Loihi counts, load and the per-epoch history (as JSON)."""
    row: dict[str, Any] = {
        "key": record.key, "model": record.model, "dataset": record.dataset, "lambda": record.lam,
        "seed": record.seed, "activation_energy_kind": record.activation_energy_kind, "run_index": record.run_index,
        "host": record.host, "test_accuracy": record.test_accuracy,
        "activation_energy (E per test sample)": record.activation_energy,
        "activation_sparsity": record.activation_sparsity, "train_duration_s": record.train_duration_s,
        "train_flops_per_sample": record.train_flops_per_sample,
        "inference_flops_per_sample": record.inference_flops_per_sample,
    }
    if record.train is not None:
        m = record.train.measurement
        row["training window duration_s"] = m.duration_s
        for domain, joules in m.energy_j.items():
            row[f"training {domain} raw J"] = joules
            row[f"training {domain} net J"] = record.train.net_energy_j[domain]
            row[f"training {domain} provenance"] = m.provenance[domain]
            row[f"idle {domain} W"] = record.train.idle_power_w.get(domain)
    inference = record.inference
    n = inference.samples_per_workload
    row[f"inference duration_s per workload of {n} samples"] = inference.duration_s_per_workload
    row["inference workloads in window"] = inference.workloads
    for domain in inference.measurement.energy_j:
        row[f"inference {domain} raw J per workload of {n} samples"] = inference.raw_energy_j_per_workload[domain]
        row[f"inference {domain} net J per workload of {n} samples"] = inference.net_energy_j_per_workload[domain]
        row[f"inference {domain} provenance"] = inference.measurement.provenance[domain]
    if record.reference is not None:
        for domain, joules in record.reference.raw_energy_j_per_workload.items():
            row[f"reference {domain} raw J per repetition"] = joules
    if record.loihi is not None:
        for name in ("accuracy", "source_accuracy", "spikes_per_sample", "synops_per_sample"):
            row[f"loihi {name}"] = getattr(record.loihi, name)
        for profile, joules in record.loihi.energy_j_per_sample.items():
            row[f"loihi {profile} modeled J per input"] = joules
    if record.load is not None:
        row["load other_cpu_share"] = record.load.other_cpu_share
        row["load load_avg_1m"] = record.load.load_avg_1m
    history = json.dumps([h.to_dict() for h in record.history])
    row["history (JSON; cumulative_* keys count from the start of training)"] = history
    return row
