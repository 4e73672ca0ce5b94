"""The parts of a run record: a measured window, an epoch, a spiking simulation, the machine's load.

Each is a frozen dataclass with ``to_dict``/``from_dict``; ``record.RunRecord`` assembles them and is the
only code that knows a whole results line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, Mapping

from energymeter.errors import EnergymeterError
from energymeter.measurement import Measurement

#: A run is flagged "busy" when other processes used more than this share of the machine's CPU ...
BUSY_OTHER_CPU_SHARE = 0.10
#: ... or the 1-minute load average exceeded this many runnable tasks per logical CPU.
BUSY_LOAD_PER_CPU = 0.75


class RecordError(EnergymeterError, ValueError):
    """A results line that is not a run record this code can read; the message says why."""


def _frozen_map(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(value or {}))


def _freeze(obj: Any, *names: str) -> None:
    for name in names:
        object.__setattr__(obj, name, _frozen_map(getattr(obj, name)))


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
                   whole(data.get("workloads", 1), "workloads"),
                   whole(data.get("samples_per_workload", 0), "samples_per_workload"))


@dataclass(frozen=True)
class EpochRecord:
    """One training epoch: means over its batches, and the cost from the start of training to its end.

    Attributes:
        epoch: 1-based.
        loss, ce: Mean total loss (CE + lambda E) and cross-entropy.
        activation_energy: Mean E per training sample (arbitrary units).
        train_accuracy: Training accuracy over the epoch (0..1).
        test_accuracy: Test accuracy after the epoch (0..1), when evaluated.
        cumulative_duration_s: Training seconds from the start to this epoch's end.
        cumulative_energy_j: Raw joules per domain from the start to this epoch's end.
        cumulative_flops: Training FLOPs from the start to this epoch's end (counted outside the energy window).
        test_activation_energy_by_kind: E per test sample after this epoch under each definition (l2, l1, l0,
            l2-scale-free, l1-scale-free), evaluated from the epoch's kept parameters; empty in lines written
            before it was recorded (they still read).
    """

    epoch: int
    loss: float
    ce: float
    activation_energy: float
    train_accuracy: float
    test_accuracy: float | None = None
    cumulative_duration_s: float | None = None
    cumulative_energy_j: Mapping[str, float] = field(default_factory=dict)
    cumulative_flops: float | None = None
    test_activation_energy_by_kind: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _freeze(self, "cumulative_energy_j", "test_activation_energy_by_kind")

    def to_dict(self) -> dict[str, Any]:
        maps = ("cumulative_energy_j", "test_activation_energy_by_kind")
        return {f.name: (dict(getattr(self, f.name)) if f.name in maps else getattr(self, f.name))
                for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "EpochRecord":
        """Read an epoch; lines written before the cumulative names (``duration_s``, ``energy_j``, ``flops``,
        which held the same cumulative figures) still read."""
        def either(name: str) -> Any:
            return data.get(f"cumulative_{name}", data.get(name))

        return cls(whole(data["epoch"], "epoch"), real(data["loss"], "loss"), real(data["ce"], "ce"),
                   real(data["activation_energy"], "activation_energy"),
                   float(data["train_accuracy"]), _opt_float(data.get("test_accuracy")),
                   _opt_float(either("duration_s")), _floats(either("energy_j")), _opt_float(either("flops")),
                   _floats(data.get("test_activation_energy_by_kind")))


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
        return cls(whole(data.get("timesteps", 0), "timesteps"), whole(data.get("samples", 0), "samples"),
                   _opt_float(data.get("accuracy")),
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

    @property
    def busy(self) -> bool:
        """True when the run shared the machine with other work (``BUSY_*`` thresholds)."""
        if self.other_cpu_share is not None and self.other_cpu_share > BUSY_OTHER_CPU_SHARE:
            return True
        return self.load_avg_1m is not None and self.load_avg_1m > BUSY_LOAD_PER_CPU * self.logical_cpus + 1

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "MachineLoad":
        return cls(_opt_float(data.get("load_avg_1m")), _opt_float(data.get("other_cpu_share")),
                   _opt_float(data.get("cpu_freq_mhz")), whole(data.get("logical_cpus", 1), "logical_cpus"),
                   whole(data.get("samples", 0), "samples"))


def whole(value: Any, field: str = "a count") -> int:
    """An integer field: an int, or a float with no fraction (``1.0``); never ``1.5``, a bool or a string.

    Raises:
        ValueError: anything else (the message names the field).
    """
    if type(value) is int:
        return value
    if type(value) is float and value.is_integer():
        return int(value)
    raise ValueError(f"{field}: {value!r:.40} is not a whole number")


def real(value: Any, field: str = "a figure") -> float:
    """A number field: a finite int or float; never a bool, a string or NaN.

    Raises:
        ValueError: anything else (the message names the field).
    """
    if type(value) in (int, float) and math.isfinite(value):
        return float(value)
    raise ValueError(f"{field}: {value!r:.40} is not a finite number")


def _floats(value: Any) -> dict[str, float]:
    return {str(k): real(v, str(k)) for k, v in (value or {}).items()}


def _opt_float(value: Any) -> float | None:
    return None if value is None else real(value)


