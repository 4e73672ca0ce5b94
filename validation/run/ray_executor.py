"""Runs a sweep's runs as Ray tasks; the process that calls ``run_sweep`` stays the only writer of results.jsonl.

Each run is one Ray task. The task builds its own Meter in the worker, loads the dataset once per worker
process, measures the run with ``protocol.one_run`` and returns ``RunRecord.to_dict()`` (a record's
mappings are read-only proxies, which do not pickle); the driver rebuilds the record and yields it to
``run_sweep``, which appends it (fsynced, one line per run). A worker that dies mid-run is retried by Ray
(``max_retries``); only a task's one returned value reaches the driver, so each run is written once.

Sharing is kept honest with Ray resources, not with a scheduler of our own:

- A run that measures a host-wide domain (RAPL package / dram / psys: any hardware counter that covers
  the CPU) asks for the custom resource ``energymeter_host`` (``HOST_RESOURCE``), of which every node
  holds 1, so no two such runs overlap on one host. A local instance registers it; an existing cluster
  is started with ``ray start ... --resources='{"energymeter_host": 1}'`` on every node (one Ray node per
  host), and a sweep that needs it refuses to start without it. With ``--backends`` unset the driver
  cannot see the workers' counters, so on an existing cluster every run is treated as host-wide.
- A run whose energy is only modeled (``cpu-model``: this process's CPU seconds x power per thread) reads
  no shared counter, so runs share a host: concurrent runs do not enter each other's figure, but they
  compete for the cores (longer wall time, and each Ray task gets 1 CPU, so torch runs one thread).
- A ``--device cuda`` run asks for ``num_gpus=1``: Ray sets ``CUDA_VISIBLE_DEVICES`` to that GPU, so the
  task trains on ``cuda:0`` and NVML's ``gpu:0`` is its GPU. A GPU task's worker exits after the run
  (``max_calls=1``): the visible GPU changes per task, and backends probe once per process.

Every record names its host (``RunRecord.host``) and the hardware it measured (``Measurement.devices``).
A local instance (no address) is ``ray start --head`` in a session of its own, recorded in the output
directory (``ray_head``, ``ray_session``); it listens on loopback only, without dashboard or usage statistics.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

from ..records.record import RunRecord
from ..records.spec import RunSpec
from .config import SweepConfig, SweepError
from .ray_head import LocalHead, start_head
from .ray_session import end_leftovers

#: Custom Ray resource, 1 per node: a run that measures a host-wide domain holds it for its whole run.
HOST_RESOURCE = "energymeter_host"
#: Object store of a local instance (bytes): records are small, datasets load in the workers.
LOCAL_OBJECT_STORE_BYTES = 128 * 2**20
#: Environment of a local instance and of the driver connecting to it: Ray reads the first when imported
#: (on Linux it otherwise takes the host's network address and listens on every interface), the second
#: stops its usage report, the third has the driver present the token ``ray start`` requires.
LOCAL_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token"}


def measure_run(config: SweepConfig, run: RunSpec, reference_reps: int, run_index: int) -> dict[str, Any]:
    """One run, in a Ray worker: its own Meter, the worker's cached dataset; returns the record as a dict."""
    from energymeter import Meter

    from .protocol import one_run
    from .executors import dataset, energy_backends

    if config.device.startswith("cuda"):
        config = dataclasses.replace(config, device="cuda:0")  # Ray made the task's GPU the only visible one
    meter = Meter(energy_backends(config))
    try:
        record = one_run(config, run, dataset(run.dataset, config.root, config.download), meter, reference_reps,
                         run_index)
    finally:
        meter.close()
    return record.to_dict()


def _call(task: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """The Ray task itself: ``task`` may be any picklable callable (Ray wraps only functions and classes)."""
    return task(*args)


def measures_host_wide(config: SweepConfig, local: bool) -> bool:
    """Whether a run's meter reads a counter shared by the whole host (a hardware counter covering the CPU).

    Args:
        config: The sweep.
        local: The workers run on this host, so the backends found here are theirs.
    """
    from energymeter import backends

    from .executors import energy_backends

    if config.backends is None and not local:
        return True  # a worker may find RAPL where this driver does not
    return any(backends.backend_class(name).kind == backends.HARDWARE_COUNTER
               and "cpu" in backends.backend_class(name).covers for name in energy_backends(config))


def import_ray() -> Any:
    """Ray, or one clear SweepError saying why it cannot be used.

    Raises:
        SweepError: Ray is not installed, or fails while importing.
    """
    try:
        import ray
    except ImportError as exc:
        raise SweepError("--executor ray needs Ray: pip install 'energymeter[ray]'") from exc
    except Exception as exc:  # noqa: BLE001 - re-raised as one line naming the cause
        if _from_amdsmi(exc):
            raise SweepError("Ray cannot be imported: its AMD GPU probe imports the installed amdsmi package, "
                             "which fails without ROCm's libamd_smi.so (zeus installs amdsmi); "
                             "pip uninstall amdsmi, or install ROCm's amd-smi-lib") from exc
        raise SweepError(f"Ray cannot be imported: {type(exc).__name__}: {exc}") from exc
    return ray


def _from_amdsmi(exc: BaseException) -> bool:
    tb = exc.__traceback__
    while tb is not None:
        if "amdsmi" in tb.tb_frame.f_code.co_filename:
            return True
        tb = tb.tb_next
    return False


class RayExecutor:
    """Runs each run as a Ray task and yields records as tasks finish (``sweep.Executor``).

    Args:
        address: An existing Ray cluster (``ray://...`` or ``HOST:PORT``); None starts a local instance
            for the sweep and shuts it down after.
        max_retries: Times Ray reruns a task whose worker or node died (a run's own error is not retried).
        num_cpus: CPUs of a local instance (None: every core).
        task: What a worker runs for one run (default ``measure_run``); tests wrap it.
        out: The sweep's output directory, where a local instance is recorded (``ray_session.RECORD_FILE``)
            until it ends, so that a later start can end what a killed driver left (None: not recorded).
        head: Starts a local instance (default ``ray_head.start_head``); tests stand in for it.

    Each run is a task of its own, so the grouped designs (chunked training, interleaved inference rounds) cannot
    run here: ``run_sweep`` gives this executor the one-run-after-another designs and records them.
    """

    #: Whether this executor measures a group's networks together (``sweep.run_sweep`` reads it).
    runs_groups = False

    def __init__(self, address: str | None = None, max_retries: int = 3, *, num_cpus: int | None = None,
                 task: Callable[[SweepConfig, RunSpec, int, int], dict[str, Any]] = measure_run,
                 out: Path | None = None, head: Callable[..., LocalHead] = start_head) -> None:
        if max_retries < 0:
            raise SweepError(f"max_retries must be >= 0, got {max_retries}")
        self.address = address
        self.max_retries = max_retries
        self.num_cpus = num_cpus
        self.task = task
        self.out = out
        self.start_head = head

    def run(self, config: SweepConfig, pending: list[tuple[int, RunSpec]], reference_reps: int) -> Iterator[RunRecord]:
        """Submit every pending run in the recorded order; yield each record as its task finishes.

        Raises:
            SweepError: Ray missing, the cluster lacks the resources the runs need, or a run whose
                worker died more than ``max_retries`` times (the runs finished before it are kept).
        """
        if not pending:
            return
        if config.grouped:
            raise SweepError("the Ray executor runs each run as its own task: it needs --inference-design per-run "
                             "and --training-design sequential (the grouped designs run in this process; "
                             "run_sweep sets them)")
        ray, head = self._start()
        started = head is not None
        outstanding: dict[Any, RunSpec] = {}
        try:
            remote = ray.remote(_call).options(max_retries=self.max_retries,
                                               **self._resources(ray, config, local=started))
            for index, run in pending:
                outstanding[remote.remote(self.task, config, run, reference_reps, index)] = run
            while outstanding:
                # A bounded wait lets Ctrl-C reach this process between waits.
                ready, _ = ray.wait(list(outstanding), num_returns=1, timeout=1.0)
                for ref in ready:
                    run = outstanding.pop(ref)
                    yield RunRecord.from_dict(self._result(ray, ref, run))
        finally:
            for ref in outstanding:  # Ctrl-C, an error, or the writer stopping early: stop measuring
                ray.cancel(ref, force=True)
            if head is not None:
                try:
                    ray.shutdown()
                finally:
                    head.stop()

    def _start(self) -> tuple[Any, LocalHead | None]:
        """Ray, connected to the cluster or to a local instance it started (then returned with it)."""
        if self.address is not None:
            ray = import_ray()
            if not ray.is_initialized():
                try:
                    ray.init(address=self.address, log_to_driver=False, logging_level="WARNING")
                except Exception as exc:  # noqa: BLE001 - any failure to connect is one line for the user
                    raise SweepError(f"--ray-address {self.address}: Ray could not connect: "
                                     f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc
            return ray, None
        saved = {name: os.environ.get(name) for name in LOCAL_ENV}
        os.environ.update(LOCAL_ENV)  # read by Ray at import and inherited by the processes ray.init starts
        try:
            ray = import_ray()
            if ray.is_initialized():
                return ray, None  # the caller's own Ray session: use it, leave it running
            head = self._start_head()
            # Its own address: never an instance that RAY_ADDRESS or an earlier `ray start` left here.
            try:
                ray.init(address=head.address, _node_ip_address="127.0.0.1", log_to_driver=False,
                         logging_level="ERROR")
            except BaseException as exc:
                head.stop()
                if not isinstance(exc, Exception):
                    raise
                raise SweepError(f"the local Ray instance did not accept this driver: {type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0] if str(exc) else ''}") from exc
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
        address = ray.util.get_node_ip_address()
        if not address.startswith("127."):
            ray.shutdown()
            head.stop()
            raise SweepError(f"the local Ray instance took the network address {address}, not loopback: Ray was "
                             "imported before the executor could set RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0; set it "
                             "before starting Python")
        return ray, head

    def _start_head(self) -> LocalHead:
        """A new local instance; first ends one that a killed driver left recorded in ``out``."""
        if self.out is not None:
            left = end_leftovers(self.out)
            if left is not None:
                warnings.warn(left, stacklevel=3)
        return self.start_head(out=self.out, num_cpus=self.num_cpus, resources={HOST_RESOURCE: 1},
                               object_store_bytes=LOCAL_OBJECT_STORE_BYTES, env=LOCAL_ENV)

    def _resources(self, ray: Any, config: SweepConfig, local: bool) -> dict[str, Any]:
        """Task options for this sweep's runs; refuses a cluster that cannot hold them."""
        options: dict[str, Any] = {"num_cpus": 1}
        available = ray.cluster_resources()
        if config.device.startswith("cuda"):
            if available.get("GPU", 0) < 1:
                raise SweepError(f"--device {config.device}: the Ray cluster has no GPU")
            options.update(num_gpus=1, max_calls=1)
        if measures_host_wide(config, local):
            if available.get(HOST_RESOURCE, 0) < 1:
                raise SweepError(f"these runs measure host-wide domains (RAPL), which no two runs may share: "
                                 f"start every Ray node with --resources='{{\"{HOST_RESOURCE}\": 1}}'")
            options["resources"] = {HOST_RESOURCE: 1}
        return options

    def _result(self, ray: Any, ref: Any, run: RunSpec) -> dict[str, Any]:
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError:
            raise  # the run's own error (it is also an instance of the original exception's class)
        except ray.exceptions.RayError as exc:
            raise SweepError(f"run {run.key} did not finish: {type(exc).__name__} after "
                             f"{self.max_retries} retries; the runs finished so far are kept "
                             "(continue with --resume)") from exc
