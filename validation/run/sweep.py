"""The sweep loop: check the output directory, run every unfinished run in the recorded order, append each record.

``__all__`` keeps the executors importable from here (``sweep.LocalExecutor``), where they were first.

The process that calls ``run_sweep`` is the only writer of ``results.jsonl`` (under an exclusive lock
on the directory), whatever executes the runs: in this process (``local``) or as tasks elsewhere.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from ..records import store
from ..records.characterisation import SweepCharacterisation
from ..records.manifest import SweepManifest, read_manifest, write_manifest
from ..records.record import RunRecord
from ..records.rounds import RoundsRecord
from .config import ACTIVATION_ENERGY_KINDS, SweepConfig, SweepError, check_config, describe_activation_energy
from .executors import Executor, LocalExecutor, dataset, energy_backends
from .progress import Progress

__all__ = ["Executor", "LocalExecutor", "SweepOutcome", "dataset", "energy_backends", "prepare", "run_sweep"]

#: The longest a sweep polls each backend's counters when it (re)starts (s; ``energymeter.characterise``).
CHARACTERISE_S = 1.0


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


def prepare(out: Path, config: SweepConfig, resume: bool) -> tuple[set[str], SweepManifest | None]:
    """Check the output directory against this sweep; return the finished keys and the existing manifest.

    Raises:
        SweepError: unwritable directory, another sweep's files, results without sweep.json, or finished
            runs without ``--resume``.
    """
    try:
        existing = read_manifest(out)  # the caller has made the directory and proved it writable
    except store.StoreError as exc:
        raise SweepError(str(exc)) from exc
    records, _ = store.read_records(out)
    if existing is None and (out / store.RESULTS_FILE).exists():
        raise SweepError(f"{out} holds {store.RESULTS_FILE} but no {store.SWEEP_FILE}, so which sweep it belongs "
                         "to is unknown; choose another --out")
    if existing is not None and existing.fingerprint != config.fingerprint():
        raise SweepError(f"{out} holds a different sweep (fingerprint {existing.fingerprint}, this one "
                         f"{config.fingerprint()}); choose another --out")
    done = store.keys(records)
    if done and not resume:
        raise SweepError(f"{out} already holds {len(done)} finished run(s) of this sweep: pass --resume to continue "
                         "it, or choose another --out")
    return done, existing


def run_sweep(config: SweepConfig, out: Path, *, resume: bool = False, quiet: bool = False,
              on_record: Callable[[RunRecord], None] | None = None, executor: Executor | None = None,
              allow_backend_change: bool = False, characterise_s: float = CHARACTERISE_S) -> SweepOutcome:
    """Run every unfinished run of the sweep in its recorded order, appending a record after each.

    First the hardware counters are characterised (for up to ``characterise_s`` per backend; 0: their
    published figures are taken): each run's inference window lasts at least ``MIN_WINDOW_UPDATES`` x
    the slowest counter's update period, and at least the sweep's ``min_window_s``. The figures are kept
    in ``sweep.json`` (one entry per start and resume) and in each record.

    On ``--resume`` the energy backends found now must be those the sweep began with (a sweep modeled at
    first and measured later would mix the two without a word); ``allow_backend_change`` continues anyway
    and records the change in ``sweep.json``, which the report states.

    Raises:
        SweepError: bad settings or output directory (nothing is run or written then), or a write that failed.
        DatasetError: a dataset that cannot be loaded.
    """
    check_config(config)
    if config.grouped and not getattr(executor, "runs_groups", True):
        # An executor of one task per run (Ray) measures each run alone: the sweep records the designs it ran.
        config = replace(config, inference_design="per-run", training_design="sequential")
    with contextlib.ExitStack() as held:
        try:
            store.check_writable(out)
            held.enter_context(store.lock(out))  # held for the whole sweep; released on any exit
        except store.StoreError as exc:
            raise SweepError(str(exc)) from exc
        try:
            return _run_locked(config, out, resume, quiet, on_record, executor, allow_backend_change, characterise_s)
        except store.StoreError as exc:
            raise SweepError(str(exc)) from exc
        finally:
            if not (out / store.SWEEP_FILE).exists() and not (out / store.RESULTS_FILE).exists():
                # A start that failed (or was interrupted) before its first run leaves no lock file behind
                # either; it is removed while still held, so no other sweep can hold the same file.
                with contextlib.suppress(OSError):
                    (out / store.LOCK_FILE).unlink()


def _run_locked(config: SweepConfig, out: Path, resume: bool, quiet: bool,
                on_record: Callable[[RunRecord], None] | None, executor: Executor | None,
                allow_backend_change: bool = False, characterise_s: float = CHARACTERISE_S) -> SweepOutcome:
    """The sweep itself, with the directory locked."""
    from energymeter import backends

    from .metadata import collect
    from .protocol import calibrate_reference

    done, existing = prepare(out, config, resume)
    found = tuple(energy_backends(config))
    if existing is not None and existing.energy_backends and tuple(existing.energy_backends) != found:
        change = (f"{out} began on energy backends {', '.join(existing.energy_backends)}; this machine now finds "
                  f"{', '.join(found) or 'none'}")
        if not allow_backend_change:
            raise SweepError(f"{change}: the two would mix in one sweep; resume where the same backends are found, "
                             "or pass --allow-backend-change to continue (recorded in sweep.json and the report)")
        existing = replace(existing, backend_changes=(*existing.backend_changes, {
            "from": list(existing.energy_backends), "to": list(found), "after_runs": len(done)}))
    for name in config.datasets:  # fail on a missing dataset before anything runs
        dataset(name, config.root, config.download)
    runs = config.runs()
    pending = [(i, r) for i, r in enumerate(runs) if r.key not in done]
    outcome = SweepOutcome(skipped=len(runs) - len(pending))
    if existing is not None and existing.reference_reps is not None:
        reference_reps = existing.reference_reps  # fixed for the whole sweep, resumed or not
    else:
        reference_reps = calibrate_reference(config.reference_s, config.device)
    counters = characterise(found, config.min_window_s, len(done), characterise_s)
    if existing is None:
        write_manifest(out, SweepManifest(
            config.fingerprint(), config.to_dict(),
            {k: describe_activation_energy(k) for k in ACTIVATION_ENERGY_KINDS}, found,
            reference_reps, tuple(r.key for r in runs), collect(backends.available()), (), (counters,)))
    else:
        write_manifest(out, replace(existing, characterisations=(*existing.characterisations, counters)))
    progress = Progress(len(pending), quiet)
    try:
        # The runs see the minimum window the counters need; the fingerprint keeps the sweep's own setting.
        # The rounds' windows too, where the counters need more than the sweep asked for.
        floor_s = counters.min_window_s if counters.min_window_s > counters.asked_min_window_s else 0.0
        runs_config = replace(config, min_window_s=counters.min_window_s,
                              round_min_window_s=max(config.round_min_window_s, floor_s))
        for record in (executor or LocalExecutor()).run(runs_config, pending, reference_reps):
            if isinstance(record, RoundsRecord):
                store.append_rounds(out, record)
                continue
            record = replace(record, characterisation=counters)
            store.append_record(out, record)
            outcome.ran += 1
            outcome.records.append(record)
            progress.update(f"{record.model} {record.dataset} lambda={record.lam:g} seed={record.seed}")
            if on_record is not None:
                on_record(record)
    except KeyboardInterrupt:
        outcome.interrupted = True
        progress.interrupted()
        # An interrupt may land between a record's write and its count: what is on disk decides.
        finished = {r.key for r in store.read_records(out)[0]}
        outcome.ran = sum(1 for _, spec in pending if spec.key in finished)
        if existing is None and not finished:
            _forget_manifest(out)
    except BaseException:
        if existing is None and not (out / store.RESULTS_FILE).exists():
            _forget_manifest(out)  # a sweep that failed before its first run leaves nothing behind
        raise
    return outcome


def characterise(energy_backends: tuple[str, ...], asked_min_window_s: float, after_runs: int,
                 max_duration_s: float) -> SweepCharacterisation:
    """The hardware counters among ``energy_backends`` characterised now, and the minimum window they need."""
    from energymeter.characterise import characterise_backends
    from energymeter.counters import min_window_s

    found = tuple(characterise_backends(energy_backends, max_duration_s=max_duration_s).values())
    return SweepCharacterisation(found, min_window_s(found, asked_min_window_s), asked_min_window_s, after_runs,
                                 time.time())


def _forget_manifest(out: Path) -> None:
    """Remove the sweep.json this sweep wrote, so a failed start does not claim the directory."""
    with contextlib.suppress(OSError):
        (out / store.SWEEP_FILE).unlink()
