"""The typed run record: one finished (model, dataset, lambda, seed, E definition) of a sweep.

``RunRecord`` is the only code that knows the layout of a line of ``results.jsonl``: the sweep builds
records, the store writes ``to_dict()`` and reads ``from_dict()``, the analysis takes a list of them.
Schema 2 is written; schema 1 lines (energymeter 0.1's untyped dicts) are converted on reading;
anything else is refused with a ``RecordError`` naming the version.

Units are in the names: joules ``_j``, watts ``_w``, seconds ``_s``. E (the activation energy, a
proxy in arbitrary units) is ``activation_energy``, never ``energy``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, Mapping

from energymeter.measurement import Measurement, SchemaError

RECORD_SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)


class RecordError(ValueError):
    """A results line that is not a run record this code can read; the message says why."""


def _frozen_map(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(value or {}))


def _freeze(obj: Any, *names: str) -> None:
    for name in names:
        object.__setattr__(obj, name, _frozen_map(getattr(obj, name)))


def run_key(model: str, dataset: str, lam: float, seed: int, activation_energy_kind: str = "l2/sum") -> str:
    """The identity of one run in results.jsonl."""
    return f"{model}|{dataset}|{lam!r}|{seed}|{activation_energy_kind}"


def net_energy_j(measurement: Measurement, idle_power_w: Mapping[str, float]) -> dict[str, float]:
    """Joules per domain minus the idle baseline: raw - idle power (W) x window duration (s).

    A domain without a baseline keeps its raw figure. The result may be negative (idle power measured
    higher than the loaded window's): callers flag it, never drop it.
    """
    duration_s = measurement.duration_s
    return {d: j - idle_power_w.get(d, 0.0) * duration_s for d, j in measurement.energy_j.items()}


@dataclass(frozen=True)
class WindowRecord:
    """One measured window of a run, the idle baseline subtracted from it, and how much work it held.

    Attributes:
        measurement: The window's Measurement (raw joules per domain with provenance).
        idle_power_w: Idle power per domain (W) measured around this run; subtracted for ``net``.
        workloads: Repetitions of the workload inside the window (1 for training).
        samples_per_workload: Samples in one repetition.
    """

    measurement: Measurement
    idle_power_w: Mapping[str, float] = field(default_factory=dict)
    workloads: int = 1
    samples_per_workload: int = 0

    def __post_init__(self) -> None:
        _freeze(self, "idle_power_w")
        if self.workloads < 1:
            raise RecordError(f"a window holds at least one workload, got {self.workloads}")

    @property
    def net_energy_j(self) -> dict[str, float]:
        """Raw joules minus idle power x duration, per domain (may be negative: see ``negative_net``)."""
        return net_energy_j(self.measurement, self.idle_power_w)

    @property
    def net_energy_j_per_workload(self) -> dict[str, float]:
        """Net joules per repetition of the workload."""
        return {d: j / self.workloads for d, j in self.net_energy_j.items()}

    @property
    def raw_energy_j_per_workload(self) -> dict[str, float]:
        """Raw joules per repetition of the workload."""
        return {d: j / self.workloads for d, j in self.measurement.energy_j.items()}

    @property
    def duration_s_per_workload(self) -> float:
        """Window seconds per repetition."""
        return self.measurement.duration_s / self.workloads

    @property
    def negative_net(self) -> tuple[str, ...]:
        """Domains whose net energy came out below zero (the baseline exceeded the loaded window)."""
        return tuple(sorted(d for d, j in self.net_energy_j.items() if j < 0))

    def to_dict(self) -> dict[str, Any]:
        return {"measurement": self.measurement.to_dict(), "idle_power_w": dict(self.idle_power_w),
                "workloads": self.workloads, "samples_per_workload": self.samples_per_workload,
                # Derived, written for readers of the JSON; from_dict recomputes them.
                "net_energy_j": self.net_energy_j, "net_energy_j_per_workload": self.net_energy_j_per_workload,
                "duration_s_per_workload": self.duration_s_per_workload}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "WindowRecord":
        return cls(Measurement.from_dict(data["measurement"]), _floats(data.get("idle_power_w")),
                   int(data.get("workloads", 1)), int(data.get("samples_per_workload", 0)))


@dataclass(frozen=True)
class EpochRecord:
    """One training epoch: means over its batches, and cumulative cost at its end.

    Attributes:
        epoch: 1-based.
        loss, ce: Mean total loss (CE + lambda E) and cross-entropy.
        activation_energy: Mean E per training sample (arbitrary units).
        train_accuracy: Training accuracy over the epoch (0..1).
        test_accuracy: Test accuracy after the epoch (0..1), when evaluated.
        duration_s: Training seconds from the start to this epoch's end.
        energy_j: Raw joules per domain from the start to this epoch's end.
        flops: Training FLOPs from the start to this epoch's end (counted outside the energy window).
    """

    epoch: int
    loss: float
    ce: float
    activation_energy: float
    train_accuracy: float
    test_accuracy: float | None = None
    duration_s: float | None = None
    energy_j: Mapping[str, float] = field(default_factory=dict)
    flops: float | None = None

    def __post_init__(self) -> None:
        _freeze(self, "energy_j")

    def to_dict(self) -> dict[str, Any]:
        return {f.name: (dict(getattr(self, f.name)) if f.name == "energy_j" else getattr(self, f.name))
                for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "EpochRecord":
        return cls(int(data["epoch"]), float(data["loss"]), float(data["ce"]), float(data["activation_energy"]),
                   float(data["train_accuracy"]), _opt_float(data.get("test_accuracy")),
                   _opt_float(data.get("duration_s")), _floats(data.get("energy_j")), _opt_float(data.get("flops")))


@dataclass(frozen=True)
class LoihiRecord:
    """The run's network converted to a spiking one and simulated (energies modeled, counts counted).

    Attributes:
        timesteps, samples: Simulation size.
        accuracy: Spiking accuracy on those samples (0..1); ``source_accuracy`` the source network's on the same.
        spikes_per_sample, synops_per_sample, dense_synops_per_sample: Counted per input.
        activation_sparsity: Zeros / outputs of the hidden spiking layers.
        energy_j_per_sample: Profile name to modeled joules per input.
        notes: Approximations made by the conversion.
        error: Why there is no simulation (e.g. an unconvertible layer), else None.
    """

    timesteps: int = 0
    samples: int = 0
    accuracy: float | None = None
    source_accuracy: float | None = None
    spikes_per_sample: float | None = None
    synops_per_sample: float | None = None
    dense_synops_per_sample: float | None = None
    activation_sparsity: float | None = None
    energy_j_per_sample: Mapping[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    error: str | None = None

    def __post_init__(self) -> None:
        _freeze(self, "energy_j_per_sample")
        object.__setattr__(self, "notes", tuple(self.notes))

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["energy_j_per_sample"] = dict(self.energy_j_per_sample)
        out["notes"] = list(self.notes)
        out["provenance"] = "modeled"
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "LoihiRecord":
        if "error" in data and len(data) <= 2:
            return cls(error=str(data["error"]))
        return cls(int(data.get("timesteps", 0)), int(data.get("samples", 0)), _opt_float(data.get("accuracy")),
                   _opt_float(data.get("source_accuracy")), _opt_float(data.get("spikes_per_sample")),
                   _opt_float(data.get("synops_per_sample")), _opt_float(data.get("dense_synops_per_sample")),
                   _opt_float(data.get("activation_sparsity")), _floats(data.get("energy_j_per_sample")),
                   tuple(str(n) for n in data.get("notes", ())), data.get("error"))


@dataclass(frozen=True)
class MachineLoad:
    """How busy the machine was during a run (sampled while it ran).

    Attributes:
        load_avg_1m: Mean 1-minute load average (runnable tasks), or None where unreadable.
        other_cpu_share: Fraction (0..1) of the machine's CPU time used by other processes.
        cpu_freq_mhz: Mean current CPU frequency, or None where unreadable.
        logical_cpus: CPUs the fractions refer to.
        samples: Samples taken.
    """

    load_avg_1m: float | None = None
    other_cpu_share: float | None = None
    cpu_freq_mhz: float | None = None
    logical_cpus: int = 1
    samples: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "MachineLoad":
        return cls(_opt_float(data.get("load_avg_1m")), _opt_float(data.get("other_cpu_share")),
                   _opt_float(data.get("cpu_freq_mhz")), int(data.get("logical_cpus", 1)), int(data.get("samples", 0)))


@dataclass(frozen=True)
class RunRecord:
    """One finished run of a sweep.

    Attributes:
        model, dataset, lam, seed: Which run.
        activation_energy_kind: E's definition, ``"<kind>/<reduction>"`` (e.g. ``"l2/sum"``).
        epochs: Training epochs.
        test_accuracy: Test accuracy (0..1).
        activation_energy: Mean E per test sample (arbitrary units).
        activation_energy_per_layer: Each activation layer's share of E per test sample.
        activation_energy_by_kind: E per test sample under every definition (l2, l1, l0), whatever the
            penalty trained with: which definition of E gives which ratio.
        activation_sparsity: Fraction of zero activation outputs on the test split.
        history: One EpochRecord per epoch.
        train_duration_s: Wall seconds of the training loop.
        train: The training window (None when training was not measured).
        inference: The fixed inference workload's window.
        reference: A short fixed reference workload measured before the run (drift), or None.
        inference_flops_per_sample, train_flops_per_sample: Counted FLOPs per sample (None: not counted).
        uncounted_ops: Operators the FLOP counter had no formula for.
        loihi: The spiking simulation, or None when not run.
        cross_checks: Peer tools' readings of the inference window, or why each did not run.
        load: The machine's load during the run.
        host: The machine's host name.
        run_index: Position in the sweep's (randomised) run order.
        finished_at: Unix time the run finished.
    """

    model: str
    dataset: str
    lam: float
    seed: int
    test_accuracy: float
    activation_energy: float
    inference: WindowRecord
    activation_energy_kind: str = "l2/sum"
    epochs: int = 0
    activation_energy_per_layer: Mapping[str, float] = field(default_factory=dict)
    activation_energy_by_kind: Mapping[str, float] = field(default_factory=dict)
    activation_sparsity: float = 0.0
    history: tuple[EpochRecord, ...] = ()
    train_duration_s: float = 0.0
    train: WindowRecord | None = None
    reference: WindowRecord | None = None
    inference_flops_per_sample: float | None = None
    train_flops_per_sample: float | None = None
    uncounted_ops: Mapping[str, int] = field(default_factory=dict)
    loihi: LoihiRecord | None = None
    cross_checks: Mapping[str, Any] = field(default_factory=dict)
    load: MachineLoad | None = None
    host: str = ""
    run_index: int | None = None
    finished_at: float = 0.0

    def __post_init__(self) -> None:
        _freeze(self, "activation_energy_per_layer", "activation_energy_by_kind", "uncounted_ops", "cross_checks")
        object.__setattr__(self, "history", tuple(self.history))
        if not (math.isfinite(self.lam) and self.lam >= 0):
            raise RecordError(f"lambda must be a finite number >= 0, got {self.lam!r}")

    @property
    def key(self) -> str:
        """The run's identity (model, dataset, lambda, seed, E definition)."""
        return run_key(self.model, self.dataset, self.lam, self.seed, self.activation_energy_kind)

    @property
    def group(self) -> tuple[str, str, str]:
        """(model, dataset, E definition): runs compared across lambda and seed."""
        return (self.model, self.dataset, self.activation_energy_kind)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of one results.jsonl line (schema version 2)."""
        return {
            "schema_version": RECORD_SCHEMA_VERSION, "key": self.key, "model": self.model, "dataset": self.dataset,
            "lambda": self.lam, "seed": self.seed, "activation_energy_kind": self.activation_energy_kind,
            "epochs": self.epochs, "test_accuracy": self.test_accuracy, "activation_energy": self.activation_energy,
            "activation_energy_per_layer": dict(self.activation_energy_per_layer),
            "activation_energy_by_kind": dict(self.activation_energy_by_kind),
            "activation_sparsity": self.activation_sparsity, "history": [h.to_dict() for h in self.history],
            "train_duration_s": self.train_duration_s,
            "train": None if self.train is None else self.train.to_dict(),
            "inference": self.inference.to_dict(),
            "reference": None if self.reference is None else self.reference.to_dict(),
            "inference_flops_per_sample": self.inference_flops_per_sample,
            "train_flops_per_sample": self.train_flops_per_sample, "uncounted_ops": dict(self.uncounted_ops),
            "loihi": None if self.loihi is None else self.loihi.to_dict(),
            "cross_checks": dict(self.cross_checks), "load": None if self.load is None else self.load.to_dict(),
            "host": self.host, "run_index": self.run_index, "finished_at": self.finished_at,
        }

    @classmethod
    def from_dict(cls, data: Any) -> "RunRecord":
        """Read a results line's JSON object (schema 1 or 2).

        Raises:
            RecordError: not an object, an unreadable schema version, or a missing/malformed field
                (the message names it).
        """
        if not isinstance(data, Mapping):
            raise RecordError("not a JSON object")
        version = data.get("schema_version")
        if version not in READABLE_VERSIONS:
            raise RecordError(f"run record schema_version {version!r}; this energymeter reads "
                              f"{', '.join(map(str, READABLE_VERSIONS))}")
        try:
            return _from_v1(data) if version == 1 else _from_v2(data)
        except KeyError as exc:
            raise RecordError(f"run record without {exc.args[0]}") from None
        except (SchemaError, TypeError, ValueError, AttributeError) as exc:
            raise RecordError(f"malformed run record: {exc}") from None


def _floats(value: Any) -> dict[str, float]:
    return {str(k): float(v) for k, v in (value or {}).items()}


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _from_v2(d: Mapping[str, Any]) -> RunRecord:
    return RunRecord(
        model=str(d["model"]), dataset=str(d["dataset"]), lam=float(d["lambda"]), seed=int(d["seed"]),
        test_accuracy=float(d["test_accuracy"]), activation_energy=float(d["activation_energy"]),
        inference=WindowRecord.from_dict(d["inference"]),
        activation_energy_kind=str(d.get("activation_energy_kind", "l2/sum")), epochs=int(d.get("epochs", 0)),
        activation_energy_per_layer=_floats(d.get("activation_energy_per_layer")),
        activation_energy_by_kind=_floats(d.get("activation_energy_by_kind")),
        activation_sparsity=float(d.get("activation_sparsity", 0.0)),
        history=tuple(EpochRecord.from_dict(h) for h in d.get("history", ())),
        train_duration_s=float(d.get("train_duration_s", 0.0)),
        train=None if d.get("train") is None else WindowRecord.from_dict(d["train"]),
        reference=None if d.get("reference") is None else WindowRecord.from_dict(d["reference"]),
        inference_flops_per_sample=_opt_float(d.get("inference_flops_per_sample")),
        train_flops_per_sample=_opt_float(d.get("train_flops_per_sample")),
        uncounted_ops={str(k): int(v) for k, v in (d.get("uncounted_ops") or {}).items()},
        loihi=None if d.get("loihi") is None else LoihiRecord.from_dict(d["loihi"]),
        cross_checks=dict(d.get("cross_checks") or {}),
        load=None if d.get("load") is None else MachineLoad.from_dict(d["load"]),
        host=str(d.get("host", "")), run_index=None if d.get("run_index") is None else int(d["run_index"]),
        finished_at=float(d.get("finished_at", 0.0)))


def _from_v1(d: Mapping[str, Any]) -> RunRecord:
    """energymeter 0.1's layout: one idle baseline per sweep, E called ``energy`` in the history."""
    idle = _floats(d.get("idle_power_w"))
    inference = d["inference"]
    train = d.get("train") or {}
    return RunRecord(
        model=str(d["model"]), dataset=str(d["dataset"]), lam=float(d["lambda"]), seed=int(d["seed"]),
        test_accuracy=float(d["test_accuracy"]), activation_energy=float(d["activation_energy"]),
        inference=WindowRecord(Measurement.from_dict(inference["measurement"]), idle,
                               int(inference.get("repetitions", 1)), int(inference.get("samples_per_repetition", 0))),
        activation_energy_kind="l2/sum", epochs=int(d.get("epochs", 0)),
        activation_sparsity=float(d.get("activation_sparsity", 0.0)),
        history=tuple(EpochRecord(int(h["epoch"]), float(h["loss"]), float(h["ce"]), float(h["energy"]),
                                  float(h["accuracy"])) for h in d.get("history", ())),
        train_duration_s=float(d.get("train_duration_s", 0.0)),
        train=None if not train.get("measurement") else WindowRecord(Measurement.from_dict(train["measurement"]), idle),
        inference_flops_per_sample=_opt_float(d.get("inference_flops_per_sample")),
        train_flops_per_sample=_opt_float(d.get("train_flops_per_sample")),
        uncounted_ops={str(k): int(v) for k, v in (d.get("uncounted_ops") or {}).items()},
        loihi=None if d.get("loihi") is None else LoihiRecord.from_dict(d["loihi"]),
        cross_checks=dict(inference.get("cross_checks") or {}), finished_at=float(d.get("finished_at", 0.0)))
