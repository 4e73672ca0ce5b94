"""Where a sweep's runs execute: the ``Executor`` protocol and the ``LocalExecutor`` (this process, one Meter).

``ray_executor.RayExecutor`` is the other one. Each yields finished ``RunRecord`` objects; only the process that
calls ``sweep.run_sweep`` writes them.
"""

from __future__ import annotations

from typing import Any, Iterator, Protocol

from ..records.record import RunRecord
from ..records.spec import RunSpec
from .config import SweepConfig


class Executor(Protocol):
    """Runs a sweep's pending runs and yields each finished record (in any order)."""

    def run(self, config: SweepConfig, pending: list[tuple[int, RunSpec]], reference_reps: int) -> Iterator[RunRecord]:
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
    """Runs every run in this process on one Meter: one after another (``per-run`` inference, ``sequential``
    training), or group by group (``groups.run_groups``: chunked training, interleaved inference rounds; a group's
    ``RoundsRecord`` objects are yielded after its run records)."""

    def __init__(self, meter: Any = None) -> None:
        self._meter = meter

    def run(self, config: SweepConfig, pending: list[tuple[int, RunSpec]], reference_reps: int) -> Iterator[RunRecord]:
        from energymeter import Meter

        from .protocol import one_run

        meter = self._meter or Meter(energy_backends(config))
        try:
            if config.grouped:
                from .groups import run_groups

                yield from run_groups(config, pending, reference_reps, meter,
                                      lambda name: dataset(name, config.root, config.download))
                return
            for index, run in pending:
                data = dataset(run.dataset, config.root, config.download)
                yield one_run(config, run, data, meter, reference_reps, index)
        finally:
            if self._meter is None:
                meter.close()
