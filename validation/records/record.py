"""The typed run record: one finished (model, dataset, lambda, seed, E definition) of a sweep.

``RunRecord`` is the only code that knows the layout of a line of ``results.jsonl``: the sweep builds
records, the store writes ``to_dict()`` and reads ``from_dict()``, the analysis takes a list of them.
Schema 2 is written; schema 1 lines (energymeter 0.1's untyped dicts) are converted on reading;
anything else is refused with a ``RecordError`` naming the version.

Units are in the names: joules ``_j``, watts ``_w``, seconds ``_s``. E (the activation energy, a
proxy in arbitrary units) is ``activation_energy``, never ``energy``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from energymeter.measurement import Measurement, SchemaError

from .characterisation import SweepCharacterisation
from .record_parts import (EpochRecord, LoihiRecord, MachineLoad, RecordError, WindowRecord, _floats, _freeze,
                           _opt_float, net_energy_j, real, whole)
from .spec import RunSpec, SpecError, check_lambda, run_key

__all__ = ["READABLE_VERSIONS", "RECORD_SCHEMA_VERSION", "EpochRecord", "LoihiRecord", "MachineLoad", "RecordError",
           "RunRecord", "RunSpec", "WindowRecord", "net_energy_j", "run_key"]

RECORD_SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)


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
        characterisation: The hardware counters' figures in force when it ran, and the minimum window
            taken from them (``sweep.json`` keeps every one; None in records older than them).
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
    characterisation: SweepCharacterisation | None = None

    def __post_init__(self) -> None:
        _freeze(self, "activation_energy_per_layer", "activation_energy_by_kind", "uncounted_ops", "cross_checks")
        object.__setattr__(self, "history", tuple(self.history))
        try:
            check_lambda(self.lam)
        except SpecError as exc:
            raise RecordError(str(exc)) from None

    @property
    def key(self) -> str:
        """The run's identity (model, dataset, lambda, seed, E definition)."""
        return run_key(self.model, self.dataset, self.lam, self.seed, self.activation_energy_kind)

    @property
    def spec(self) -> RunSpec:
        """The grid entry this run measured."""
        return RunSpec(self.model, self.dataset, self.lam, self.seed, self.activation_energy_kind.split("/")[0])

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
            "characterisation": None if self.characterisation is None else self.characterisation.to_dict(),
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


def _from_v2(d: Mapping[str, Any]) -> RunRecord:
    return RunRecord(
        model=str(d["model"]), dataset=str(d["dataset"]), lam=float(d["lambda"]),
        seed=whole(d["seed"], "seed"),
        test_accuracy=real(d["test_accuracy"], "test_accuracy"),
        activation_energy=real(d["activation_energy"], "activation_energy"),
        inference=WindowRecord.from_dict(d["inference"]),
        activation_energy_kind=str(d.get("activation_energy_kind", "l2/sum")),
        epochs=whole(d.get("epochs", 0), "epochs"),
        activation_energy_per_layer=_floats(d.get("activation_energy_per_layer")),
        activation_energy_by_kind=_floats(d.get("activation_energy_by_kind")),
        activation_sparsity=real(d.get("activation_sparsity", 0.0), "activation_sparsity"),
        history=tuple(EpochRecord.from_dict(h) for h in d.get("history", ())),
        train_duration_s=real(d.get("train_duration_s", 0.0), "train_duration_s"),
        train=None if d.get("train") is None else WindowRecord.from_dict(d["train"]),
        reference=None if d.get("reference") is None else WindowRecord.from_dict(d["reference"]),
        inference_flops_per_sample=_opt_float(d.get("inference_flops_per_sample")),
        train_flops_per_sample=_opt_float(d.get("train_flops_per_sample")),
        uncounted_ops={str(k): whole(v, f"uncounted_ops.{k}") for k, v in (d.get("uncounted_ops") or {}).items()},
        loihi=None if d.get("loihi") is None else LoihiRecord.from_dict(d["loihi"]),
        cross_checks=dict(d.get("cross_checks") or {}),
        load=None if d.get("load") is None else MachineLoad.from_dict(d["load"]),
        host=str(d.get("host", "")),
        run_index=None if d.get("run_index") is None else whole(d["run_index"], "run_index"),
        finished_at=real(d.get("finished_at", 0.0), "finished_at"),
        characterisation=None if d.get("characterisation") is None
        else SweepCharacterisation.from_dict(d["characterisation"]))


def _from_v1(d: Mapping[str, Any]) -> RunRecord:
    """energymeter 0.1's layout: one idle baseline per sweep, E called ``energy`` in the history."""
    idle = _floats(d.get("idle_power_w"))
    inference = d["inference"]
    train = d.get("train") or {}
    return RunRecord(
        model=str(d["model"]), dataset=str(d["dataset"]), lam=float(d["lambda"]),
        seed=whole(d["seed"], "seed"),
        test_accuracy=real(d["test_accuracy"], "test_accuracy"),
        activation_energy=real(d["activation_energy"], "activation_energy"),
        inference=WindowRecord(Measurement.from_dict(inference["measurement"]), idle,
                               whole(inference.get("repetitions", 1)),
                               whole(inference.get("samples_per_repetition", 0))),
        activation_energy_kind="l2/sum", epochs=whole(d.get("epochs", 0), "epochs"),
        activation_sparsity=real(d.get("activation_sparsity", 0.0), "activation_sparsity"),
        history=tuple(EpochRecord(whole(h["epoch"], "epoch"), real(h["loss"]), real(h["ce"]), real(h["energy"]),
                                  real(h["accuracy"])) for h in d.get("history", ())),
        train_duration_s=real(d.get("train_duration_s", 0.0), "train_duration_s"),
        train=None if not train.get("measurement") else WindowRecord(Measurement.from_dict(train["measurement"]), idle),
        inference_flops_per_sample=_opt_float(d.get("inference_flops_per_sample")),
        train_flops_per_sample=_opt_float(d.get("train_flops_per_sample")),
        uncounted_ops={str(k): whole(v, f"uncounted_ops.{k}") for k, v in (d.get("uncounted_ops") or {}).items()},
        loihi=None if d.get("loihi") is None else LoihiRecord.from_dict(d["loihi"]),
        cross_checks=dict(inference.get("cross_checks") or {}),
        finished_at=real(d.get("finished_at", 0.0), "finished_at"))
