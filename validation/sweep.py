"""The sweep loop: check the output directory, run every unfinished run in the recorded order, append each record.

The process that calls ``run_sweep`` is the only writer of ``results.jsonl`` (under an exclusive lock
on the directory), whatever executes the runs: in this process (``local``) or as tasks elsewhere.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

from . import store
from .config import (ACTIVATION_ENERGY_KINDS, SweepConfig, SweepError, check_config, describe_activation_energy,
                     key_of)
from .progress import Progress
from .record import RunRecord

Run = tuple[str, str, float, int, str]


@dataclass
class SweepOutcome:
    """What a sweep did.

    Attributes:
        ran: Runs finished in this invocation.
        skipped: Runs already finished (``--resume``).
        interrupted: True when Ctrl-C stopped it.
        records: The records written by this invocation.
    """

    ran: int = 0
    skipped: int = 0
    interrupted: bool = False
    records: list[RunRecord] = field(default_factory=list)


class Executor(Protocol):
    """Runs a sweep's pending runs and yields each finished record (in any order)."""

    def run(self, config: SweepConfig, pending: list[tuple[int, Run]], reference_reps: int) -> Iterator[RunRecord]:
        ...  # pragma: no cover


_datasets: dict[tuple[str, str | None, bool], Any] = {}


def dataset(name: str, root: str | None, download: bool) -> Any:
    """A dataset, loaded once per process."""
    from energymeter.models import load_dataset

    key = (name, root, download)
    if key not in _datasets:
        _datasets[key] = load_dataset(name, root=root, download=download)
    return _datasets[key]


def energy_backends(config: SweepConfig) -> list[str]:
    """The energy backends a run's meter opens: the ones named, else every available one (never FLOPs or simulators)."""
    from energymeter import backends

    if config.backends is not None:
        return [b for b in config.backends
                if backends.backend_class(b).kind in (backends.HARDWARE_COUNTER, backends.MODEL)]
    return backends.energy_names()


class LocalExecutor:
    """Runs every run in this process, one after another, on one Meter."""

    def __init__(self, meter: Any = None) -> None:
        self._meter = meter

    def run(self, config: SweepConfig, pending: list[tuple[int, Run]], reference_reps: int) -> Iterator[RunRecord]:
        from energymeter import Meter

        from .protocol import one_run

        meter = self._meter or Meter(energy_backends(config))
        try:
            for index, run in pending:
                yield one_run(config, run, dataset(run[1], config.root, config.download), meter, reference_reps, index)
        finally:
            if self._meter is None:
                meter.close()


def prepare(out: Path, config: SweepConfig, resume: bool) -> tuple[set[str], dict[str, Any] | None]:
    """Check the output directory against this sweep; return the finished keys and the existing sweep.json.

    Raises:
        SweepError: unwritable directory, another sweep's files, results without sweep.json, or finished
            runs without ``--resume``.
    """
    try:
        existing = store.read_sweep(out)  # the caller has made the directory and proved it writable
    except store.StoreError as exc:
        raise SweepError(str(exc)) from exc
    records, _ = store.read_records(out)
    if existing is None and (out / store.RESULTS_FILE).exists():
        raise SweepError(f"{out} holds {store.RESULTS_FILE} but no {store.SWEEP_FILE}, so which sweep it belongs "
                         "to is unknown; choose another --out")
    if existing is not None and existing.get("fingerprint") != config.fingerprint():
        raise SweepError(f"{out} holds a different sweep (fingerprint {existing.get('fingerprint')}, this one "
                         f"{config.fingerprint()}); choose another --out")
    done = store.keys(records)
    if done and not resume:
        raise SweepError(f"{out} already holds {len(done)} finished run(s) of this sweep: pass --resume to continue "
                         "it, or choose another --out")
    return done, existing


def run_sweep(config: SweepConfig, out: Path, *, resume: bool = False, quiet: bool = False,
              on_record: Callable[[RunRecord], None] | None = None, executor: Executor | None = None) -> SweepOutcome:
    """Run every unfinished run of the sweep in its recorded order, appending a record after each.

    Raises:
        SweepError: bad settings or output directory (nothing is run or written then), or a write that failed.
        DatasetError: a dataset that cannot be loaded.
    """
    check_config(config)
    with contextlib.ExitStack() as held:
        try:
            store.check_writable(out)
            held.enter_context(store.lock(out))  # held for the whole sweep; released on any exit
        except store.StoreError as exc:
            raise SweepError(str(exc)) from exc
        try:
            return _run_locked(config, out, resume, quiet, on_record, executor)
        except store.StoreError as exc:
            raise SweepError(str(exc)) from exc


def _run_locked(config: SweepConfig, out: Path, resume: bool, quiet: bool,
                on_record: Callable[[RunRecord], None] | None, executor: Executor | None) -> SweepOutcome:
    """The sweep itself, with the directory locked."""
    from energymeter import backends

    from .metadata import collect
    from .protocol import calibrate_reference

    done, existing = prepare(out, config, resume)
    for name in config.datasets:  # fail on a missing dataset before anything runs
        dataset(name, config.root, config.download)
    runs = config.runs()
    pending = [(i, r) for i, r in enumerate(runs) if key_of(r) not in done]
    outcome = SweepOutcome(skipped=len(runs) - len(pending))
    reference_reps = int(existing["reference_reps"]) if existing else calibrate_reference(config.reference_s)
    if existing is None:
        store.write_json_atomic(out / store.SWEEP_FILE, {
            "fingerprint": config.fingerprint(), "config": config.to_dict(),
            "activation_energy_definitions": {k: describe_activation_energy(k) for k in ACTIVATION_ENERGY_KINDS},
            "energy_backends": energy_backends(config), "reference_reps": reference_reps,
            "run_order": [key_of(r) for r in runs], "metadata": collect(backends.available()),
        })
    progress = Progress(len(pending), quiet)
    try:
        for record in (executor or LocalExecutor()).run(config, pending, reference_reps):
            store.append_record(out, record)
            outcome.ran += 1
            outcome.records.append(record)
            progress.update(f"{record.model} {record.dataset} lambda={record.lam:g} seed={record.seed}")
            if on_record is not None:
                on_record(record)
    except KeyboardInterrupt:
        outcome.interrupted = True
        progress.interrupted()
    return outcome
