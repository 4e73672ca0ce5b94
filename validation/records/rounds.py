"""The typed record of a group's interleaved inference rounds: every window of every round, in its order.

After the networks of one group (model x dataset x E definition x seed, every lambda) are trained, the sweep
measures their inference in rounds: each round runs every network once, in a fresh balanced order, each window
the same fixed batch repeated to a minimum count and a minimum duration. ``rounds.jsonl`` holds one
``RoundsRecord`` per group; sweeps written before it have none and are read as before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from .record_parts import RecordError, _floats, _freeze, real, whole
from .spec import check_lambda

ROUNDS_SCHEMA_VERSION = 1
#: The designs a rounds record measured: a group's inference in interleaved rounds, or its training in chunks
#: (one epoch of every network per round; a "workload" is then one epoch).
INTERLEAVED = "interleaved"
CHUNKED = "chunked-training"


@dataclass(frozen=True)
class RoundWindow:
    """One network's window in one round.

    Attributes:
        lam: Which network of the group (its lambda).
        energy_j: Raw joules per domain over the window (failed domains absent).
        duration_s: The window's seconds.
        workloads: Repetitions of the fixed batch inside the window.
    """

    lam: float
    energy_j: Mapping[str, float]
    duration_s: float
    workloads: int

    def __post_init__(self) -> None:
        _freeze(self, "energy_j")
        if self.workloads < 1:
            raise RecordError(f"a round window holds at least one workload, got {self.workloads}")

    def energy_j_per_workload(self, domain: str) -> float | None:
        """Raw joules of one repetition of the batch (None: the domain failed in this window)."""
        joules = self.energy_j.get(domain)
        return None if joules is None else joules / self.workloads

    def to_dict(self) -> dict[str, Any]:
        return {"lambda": self.lam, "energy_j": dict(self.energy_j), "duration_s": self.duration_s,
                "workloads": self.workloads}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "RoundWindow":
        if not isinstance(d, Mapping):
            raise TypeError("a round window is a JSON object")
        return cls(check_lambda(real(d["lambda"], "lambda")), _floats(d.get("energy_j")),
                   real(d["duration_s"], "duration_s"), whole(d["workloads"], "workloads"))


@dataclass(frozen=True)
class InferenceRound:
    """One round: every network once, in ``windows``' order (the order it ran)."""

    index: int
    windows: tuple[RoundWindow, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "windows", tuple(self.windows))

    @property
    def order(self) -> tuple[float, ...]:
        """The lambdas in the order they ran."""
        return tuple(w.lam for w in self.windows)

    def window(self, lam: float) -> RoundWindow | None:
        return next((w for w in self.windows if w.lam == lam), None)

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "windows": [w.to_dict() for w in self.windows]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "InferenceRound":
        return cls(whole(d["index"], "index"), tuple(RoundWindow.from_dict(w) for w in d.get("windows") or ()))


@dataclass(frozen=True)
class RoundsRecord:
    """A group's interleaved inference rounds.

    Attributes:
        model, dataset, activation_energy_kind, seed: The group (every lambda of it is in each round).
        lambdas: The networks measured.
        samples_per_workload: Samples in the fixed batch.
        provenance: Domain -> provenance of its joules.
        rounds: Every round, in the order they ran.
        min_window_s, min_workloads: Each window's minimum duration (s) and repetitions.
        order_seed: Seed of the rounds' balanced orders.
        target_width: The rounds stopped once every comparison's 95% interval of the mean log ratio was narrower
            than this (log units), ...
        budget_s: ... or when this many seconds were spent on them, ...
        max_rounds: ... or at this many rounds.
        stop_reason: Which of the three stopped them (a sentence).
        design: ``interleaved`` (inference rounds) or ``chunked-training`` (training epochs).
    """

    model: str
    dataset: str
    activation_energy_kind: str
    seed: int
    lambdas: tuple[float, ...]
    samples_per_workload: int
    provenance: Mapping[str, str] = field(default_factory=dict)
    rounds: tuple[InferenceRound, ...] = ()
    min_window_s: float = 0.0
    min_workloads: int = 1
    order_seed: int = 0
    target_width: float = 0.0
    budget_s: float = 0.0
    max_rounds: int = 0
    stop_reason: str = ""
    design: str = INTERLEAVED

    def __post_init__(self) -> None:
        _freeze(self, "provenance")
        object.__setattr__(self, "lambdas", tuple(self.lambdas))
        object.__setattr__(self, "rounds", tuple(self.rounds))

    @property
    def group(self) -> tuple[str, str, str]:
        """(model, dataset, E definition), as ``RunRecord.group``."""
        return (self.model, self.dataset, self.activation_energy_kind)

    @property
    def key(self) -> str:
        """The group and seed (and the design, for training chunks): one rounds record each."""
        key = f"{self.model}|{self.dataset}|{self.activation_energy_kind}|seed={self.seed}"
        return key if self.design == INTERLEAVED else f"{key}|{self.design}"

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": ROUNDS_SCHEMA_VERSION, "key": self.key, "design": self.design,
                "model": self.model, "dataset": self.dataset, "activation_energy_kind": self.activation_energy_kind,
                "seed": self.seed, "lambdas": list(self.lambdas), "samples_per_workload": self.samples_per_workload,
                "provenance": dict(self.provenance), "rounds": [r.to_dict() for r in self.rounds],
                "min_window_s": self.min_window_s, "min_workloads": self.min_workloads,
                "order_seed": self.order_seed, "target_width": self.target_width, "budget_s": self.budget_s,
                "max_rounds": self.max_rounds, "stop_reason": self.stop_reason}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "RoundsRecord":
        """Read ``to_dict``'s form.

        Raises:
            RecordError: another schema version or a malformed field (named).
        """
        if not isinstance(d, Mapping):
            raise RecordError(f"a rounds record is a JSON object, not {type(d).__name__}")
        if d.get("design", INTERLEAVED) not in (INTERLEAVED, CHUNKED):
            raise RecordError(f"rounds record of an unknown design {d.get('design')!r}; known: {INTERLEAVED}, "
                              f"{CHUNKED}")
        if d.get("schema_version") != ROUNDS_SCHEMA_VERSION:
            raise RecordError(f"rounds record schema {d.get('schema_version')!r}; this version reads "
                              f"{ROUNDS_SCHEMA_VERSION}")
        try:
            return cls(
                str(d["model"]), str(d["dataset"]), str(d["activation_energy_kind"]), whole(d["seed"], "seed"),
                tuple(check_lambda(real(v, "lambdas")) for v in d.get("lambdas") or ()),
                whole(d["samples_per_workload"], "samples_per_workload"),
                {str(k): str(v) for k, v in (d.get("provenance") or {}).items()},
                tuple(InferenceRound.from_dict(r) for r in d.get("rounds") or ()),
                real(d.get("min_window_s", 0.0), "min_window_s"), whole(d.get("min_workloads", 1), "min_workloads"),
                whole(d.get("order_seed", 0), "order_seed"), real(d.get("target_width", 0.0), "target_width"),
                real(d.get("budget_s", 0.0), "budget_s"), whole(d.get("max_rounds", 0), "max_rounds"),
                str(d.get("stop_reason", "")), str(d.get("design", INTERLEAVED)))
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise RecordError(f"malformed rounds record ({type(exc).__name__}: {exc})") from None
