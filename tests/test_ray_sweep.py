"""The Ray executor: a sweep's runs as Ray tasks, the driver the only writer of results.jsonl.

The slow tests start a real local Ray instance (2 CPUs, loopback only) and kill one worker mid-run;
the others drive ``RayExecutor`` with a stand-in ``ray`` module to check what it asks of Ray.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from energymeter.validation.records import store
from energymeter.validation.run.config import SweepConfig, SweepError
from energymeter.validation.run.ray_executor import HOST_RESOURCE, LOCAL_ENV, RayExecutor, measures_host_wide
from energymeter.validation.run.ray_session import RECORD_FILE, TEMP_PREFIX
from energymeter.validation.run.sweep import run_sweep

TESTS = Path(__file__).resolve().parent
# One run after another, the designs a Ray task per run measures, so the in-process sweep compares run for run.
TINY = dict(lambdas=(0.0, 1e-2), seeds=2, epochs=1, min_window_s=0.05, idle_s=0.01, reference_s=0.01, snn_samples=0,
            inference_samples=32, inference_design="per-run", training_design="sequential")
#: Stands in for an amdsmi package that cannot load libamd_smi.so (it raises KeyError, not ImportError,
#: and Ray's AMD GPU probe lets that escape from ``import ray``); Ray then finds no AMD GPU, as it should.
AMDSMI_STUB = 'raise ImportError("amdsmi left out by the tests: libamd_smi.so is not installed")\n'


def _amdsmi_broken() -> bool:
    if importlib.util.find_spec("amdsmi") is None:
        return False
    try:
        import amdsmi  # noqa: F401
    except ImportError:
        return False
    except Exception:  # noqa: BLE001 - any other failure is the breakage this fixture works around
        return True
    return False


@pytest.fixture(scope="module")
def ray_workers(tmp_path_factory):
    """Ray importable here and in the workers a local instance starts; this folder on their path."""
    if importlib.util.find_spec("ray") is None:
        pytest.skip("Ray is not installed (pip install 'energymeter[ray]')")
    paths = [str(TESTS)]
    with pytest.MonkeyPatch.context() as mp:
        if _amdsmi_broken():
            stub = tmp_path_factory.mktemp("stub")
            (stub / "amdsmi.py").write_text(AMDSMI_STUB)
            paths.insert(0, str(stub))
            mp.setitem(sys.modules, "amdsmi", None)  # import amdsmi raises ImportError in this process
        mp.setenv("PYTHONPATH", os.pathsep.join(paths + [p for p in [os.environ.get("PYTHONPATH")] if p]))
        yield


def _kill_when_published(pid_file: Path, killed: list[int], timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pid_file.exists():
            pid = int(pid_file.read_text())
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            return
        time.sleep(0.02)


@pytest.mark.slow
def test_a_ray_sweep_with_a_worker_killed_mid_run_ends_with_the_in_process_runs_each_once(tmp_path, ray_workers):
    from ray_kill_helper import ATTEMPTS_FILE, VICTIM_FILE, RecordingTask

    config = SweepConfig(**TINY)
    local = run_sweep(config, tmp_path / "local", quiet=True)
    victim = config.runs()[0].key
    killed: list[int] = []
    killer = threading.Thread(target=_kill_when_published, args=(tmp_path / VICTIM_FILE, killed), daemon=True)
    killer.start()
    outcome = run_sweep(config, tmp_path / "ray", quiet=True,
                        executor=RayExecutor(num_cpus=2, max_retries=3, task=RecordingTask(str(tmp_path), victim)))
    killer.join(timeout=5)

    attempts = [json.loads(line) for line in (tmp_path / ATTEMPTS_FILE).read_text().splitlines()]
    victim_attempts = [a for a in attempts if a["key"] == victim]
    assert len(killed) == 1 and victim_attempts[0]["pid"] == killed[0]
    assert [a["victim"] for a in victim_attempts] == [True, False]  # killed once, then retried once
    assert victim_attempts[1]["pid"] != killed[0]
    records, problems = store.read_records(tmp_path / "ray")
    keys = [r.key for r in records]
    assert problems == [] and not outcome.interrupted and outcome.ran == len(config.runs())
    assert len(keys) == len(set(keys)) == len(config.runs())
    assert set(keys) == {run.key for run in config.runs()} == {r.key for r in local.records}
    assert {r.key: r.run_index for r in records} == {run.key: i for i, run in enumerate(config.runs())}
    assert {r.host for r in records} == {socket.gethostname()}
    by_key = {r.key: r for r in local.records}
    for record in records:  # the same domains and hardware as the in-process run measured
        measurement, in_process = record.inference.measurement, by_key[record.key].inference.measurement
        assert set(measurement.energy_j) == set(in_process.energy_j) and measurement.energy_j
        assert dict(measurement.devices) == dict(in_process.devices)
    # Loopback only; modeled CPU energy (this machine) shares the host: 1 CPU each, no host-wide hold.
    assert {a["node_ip"] for a in attempts} == {"127.0.0.1"}
    assert all(a["resources"] == {"CPU": 1.0} for a in attempts), attempts


@pytest.mark.slow
def test_an_interrupted_ray_sweep_stops_its_instance_and_resumes_with_each_run_once(tmp_path, ray_workers):
    config = SweepConfig(**TINY)
    environment = {name: os.environ.get(name) for name in LOCAL_ENV}
    seen: list[str] = []
    # Only this test's temporary directories count: a killed driver of another test may leave its own behind.
    temp_before = set(Path(tempfile.gettempdir()).glob(f"{TEMP_PREFIX}*"))

    def interrupt_after_two(record):
        seen.append(record.key)
        if len(seen) == 2:
            raise KeyboardInterrupt

    outcome = run_sweep(config, tmp_path, quiet=True, on_record=interrupt_after_two,
                        executor=RayExecutor(num_cpus=2, out=tmp_path))
    assert outcome.interrupted and outcome.ran == 2
    import ray  # only now: the executor imports it first, for a loopback-only instance

    assert not ray.is_initialized()  # the driver let go of the instance, and the instance is gone with its record
    assert not (tmp_path / RECORD_FILE).exists()
    assert set(Path(tempfile.gettempdir()).glob(f"{TEMP_PREFIX}*")) <= temp_before
    outcome = run_sweep(config, tmp_path, resume=True, quiet=True, executor=RayExecutor(num_cpus=2, out=tmp_path))
    assert outcome.skipped == 2 and outcome.ran == 2 and not set(seen) & {r.key for r in outcome.records}
    records, problems = store.read_records(tmp_path)
    assert problems == [] and sorted(r.run_index for r in records) == [0, 1, 2, 3]
    assert sorted(r.key for r in records) == sorted(run.key for run in config.runs())
    assert {name: os.environ.get(name) for name in LOCAL_ENV} == environment  # this process's env given back


class FakeRay:
    """Enough of ``ray`` for RayExecutor: records what it is asked; ``wait`` plays the given outcomes."""

    class RayError(Exception):
        pass

    class RayTaskError(RayError):
        pass

    def __init__(self, resources=None, initialized=False, on_wait=KeyboardInterrupt, get=None):
        self.resources = {"CPU": 2.0, HOST_RESOURCE: 1.0} if resources is None else resources
        self.initialized = initialized
        self.on_wait, self.get_result = on_wait, get
        self.inits, self.options, self.submitted, self.cancelled, self.shutdowns = [], [], [], [], 0
        self.exceptions = SimpleNamespace(RayError=self.RayError, RayTaskError=self.RayTaskError)
        self.util = SimpleNamespace(get_node_ip_address=lambda: "127.0.0.1")

    def is_initialized(self):
        return self.initialized

    def init(self, **kwargs):
        self.inits.append(kwargs)
        self.initialized = True

    def cluster_resources(self):
        return self.resources

    def remote(self, function):
        fake = self

        class Remote:
            def options(self, **options):
                fake.options.append(options)
                return self

            def remote(self, *args):
                fake.submitted.append(f"ref{len(fake.submitted)}")
                return fake.submitted[-1]

        return Remote()

    def wait(self, refs, num_returns, timeout):
        if self.on_wait is KeyboardInterrupt:
            raise KeyboardInterrupt  # Ctrl-C while the driver waits
        return refs[:1], refs[1:]

    def get(self, ref):
        raise self.get_result

    def cancel(self, ref, force):
        self.cancelled.append((ref, force))

    def shutdown(self):
        self.shutdowns += 1
        self.initialized = False


PENDING = list(enumerate(SweepConfig(**TINY).runs()))


def _drain(executor, fake, monkeypatch, config=None):
    monkeypatch.setitem(sys.modules, "ray", fake)
    return list(executor.run(config or SweepConfig(**TINY), PENDING, 3))


class FakeHead:
    """Stands in for ``ray_head.start_head``: records what the instance was asked for and whether it stopped."""

    address = "127.0.0.1:6390"

    def __init__(self):
        self.asked, self.stops = [], 0

    def __call__(self, **asked):
        self.asked.append(asked)
        return self

    def stop(self):
        self.stops += 1


def test_ctrl_c_cancels_every_outstanding_run_and_stops_the_local_instance_it_started(monkeypatch, tmp_path):
    fake, head = FakeRay(), FakeHead()
    with pytest.raises(KeyboardInterrupt):
        _drain(RayExecutor(num_cpus=2, out=tmp_path, head=head), fake, monkeypatch)
    assert fake.cancelled == [(f"ref{i}", True) for i in range(len(PENDING))] and fake.shutdowns == 1
    assert head.stops == 1  # after the driver let go of it
    (init,) = fake.inits
    assert init["address"] == FakeHead.address and init["_node_ip_address"] == "127.0.0.1"
    (asked,) = head.asked
    assert asked["out"] == tmp_path and asked["num_cpus"] == 2 and asked["resources"] == {HOST_RESOURCE: 1}
    assert asked["env"]["RAY_AUTH_MODE"] == "token"


def test_ctrl_c_cancels_the_runs_but_leaves_an_existing_cluster_running(monkeypatch):
    fake = FakeRay()
    with pytest.raises(KeyboardInterrupt):
        _drain(RayExecutor(address="127.0.0.1:6379"), fake, monkeypatch)
    assert [i["address"] for i in fake.inits] == ["127.0.0.1:6379"] and fake.shutdowns == 0
    assert len(fake.cancelled) == len(PENDING)


def test_a_worker_dead_more_often_than_the_retries_stops_the_sweep_naming_the_run(monkeypatch):
    fake = FakeRay(on_wait=None, get=FakeRay.RayError("worker died"))
    with pytest.raises(SweepError, match=r"mlp\|digits.*did not finish: RayError after 2 retries.*--resume"):
        _drain(RayExecutor(num_cpus=2, max_retries=2, head=FakeHead()), fake, monkeypatch)
    assert fake.options[0]["max_retries"] == 2
    assert len(fake.cancelled) == len(PENDING) - 1 and fake.shutdowns == 1


def test_a_runs_own_error_reaches_the_caller_unchanged(monkeypatch):
    error = FakeRay.RayTaskError("dataset missing")
    fake = FakeRay(on_wait=None, get=error)
    with pytest.raises(FakeRay.RayTaskError) as caught:
        _drain(RayExecutor(num_cpus=2, head=FakeHead()), fake, monkeypatch)
    assert caught.value is error


def test_cuda_runs_take_one_gpu_each_in_a_fresh_worker_and_need_a_gpu_in_the_cluster(monkeypatch):
    config = SweepConfig(**TINY, device="cuda:1", backends=("nvml",))
    fake = FakeRay(resources={"CPU": 2.0, "GPU": 2.0, HOST_RESOURCE: 1.0})
    with pytest.raises(KeyboardInterrupt):
        _drain(RayExecutor(head=FakeHead()), fake, monkeypatch, config)
    assert fake.options[0] == {"max_retries": 3, "num_cpus": 1, "num_gpus": 1, "max_calls": 1}  # no host hold
    with pytest.raises(SweepError, match="no GPU"):
        _drain(RayExecutor(head=FakeHead()), FakeRay(), monkeypatch, config)


def test_runs_that_read_rapl_hold_the_per_host_resource_and_a_cluster_without_it_is_refused(monkeypatch):
    config = SweepConfig(**TINY, backends=("rapl", "nvml"))
    fake = FakeRay()
    with pytest.raises(KeyboardInterrupt):
        _drain(RayExecutor(head=FakeHead()), fake, monkeypatch, config)
    assert fake.options[0]["resources"] == {HOST_RESOURCE: 1}
    refused = FakeRay(resources={"CPU": 8.0})
    with pytest.raises(SweepError, match=r"""--resources='\{"energymeter_host": 1\}'"""):
        _drain(RayExecutor(address="auto"), refused, monkeypatch, config)
    assert refused.submitted == []


def test_only_hardware_counters_on_the_cpu_are_host_wide():
    assert measures_host_wide(SweepConfig(backends=("rapl",)), local=True)
    assert not measures_host_wide(SweepConfig(backends=("cpu-model",)), local=False)
    assert not measures_host_wide(SweepConfig(backends=("nvml", "cpu-model")), local=False)
    # Unnamed backends: a cluster's workers may find RAPL that the driver lacks.
    assert measures_host_wide(SweepConfig(), local=False)


def test_a_ray_sweep_records_the_one_run_after_another_designs_it_ran(tmp_path, monkeypatch):
    from energymeter.validation.run import sweep as sweep_module

    seen = []

    class OneTaskPerRun:
        runs_groups = False

        def run(self, config, pending, reference_reps):
            seen.append((config.inference_design, config.training_design))
            return iter(())

    sweep_module.run_sweep(SweepConfig(lambdas=(0.0, 1e-2), seeds=1, epochs=1, snn_samples=0), tmp_path, quiet=True,
                           executor=OneTaskPerRun(), characterise_s=0.0)
    assert seen == [("per-run", "sequential")]
    config = json.loads((tmp_path / store.SWEEP_FILE).read_text())["config"]
    assert (config["inference_design"], config["training_design"]) == ("per-run", "sequential")


def test_without_ray_installed_the_sweep_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    environment = {name: os.environ.get(name) for name in LOCAL_ENV}
    with pytest.raises(SweepError) as caught:
        list(RayExecutor().run(SweepConfig(**TINY), PENDING, 3))
    assert str(caught.value) == "--executor ray needs Ray: pip install 'energymeter[ray]'"
    assert {name: os.environ.get(name) for name in LOCAL_ENV} == environment
