"""energymeter.integrations.ray_train: a real Ray TorchTrainer with 2 CPU workers (gloo) over a fake powercap
tree; the trainer's result (what Ray hands Tune: worker 0's reports) holds every worker's aggregate."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from energymeter.integrations.ray_train import EnergyReporter
from test_ray_sweep import ray_workers  # noqa: F401 - the fixture: Ray importable in the workers, tests on the path
from training_hardware import PACKAGE_J, STEP_J, build_tree

#: FLOPs of one sample through the 784-32-10 MLP, forward and backward (see test_integrations_lightning).
FLOPS_PER_SAMPLE = 2 * 2 * (784 * 32 + 32 * 10) + 2 * 32 * 10
EPOCHS, STEPS, BATCH = 2, 3, 32
TESTS = Path(__file__).resolve().parent


def test_report_adds_the_window_since_the_last_report_and_the_running_total(powercap):
    powercap.add_package(0)
    sent = []
    reporter = EnergyReporter(["rapl"], powercap_root=str(powercap.root), report=lambda m, **kw: sent.append((m, kw)))
    powercap.set_energy("intel-rapl:0", 3_000_000)
    first = reporter.report({"loss": 1.0}, checkpoint="c")
    powercap.set_energy("intel-rapl:0", 4_000_000)
    second = reporter.report({"loss": 0.5})
    reporter.close()
    assert sent == [(first, {"checkpoint": "c"}), (second, {})]
    assert first["energy/report/measured/cpu_0_package_j"] == pytest.approx(3.0) and first["loss"] == 1.0
    assert second["energy/report/measured/cpu_0_package_j"] == pytest.approx(1.0)
    assert second["energy/train/measured/total_j"] == pytest.approx(4.0)


@pytest.mark.slow
def test_two_torch_trainer_workers_report_the_aggregate_with_the_host_counted_once(tmp_path, ray_workers):  # noqa: F811
    tree = build_tree(tmp_path / "powercap")
    env = {k: v for k, v in os.environ.items() if k not in ("ENERGYMETER_HOST_ID", "CUDA_VISIBLE_DEVICES")}
    env["OMP_NUM_THREADS"] = "1"
    run = subprocess.run([sys.executable, str(TESTS / "ray_train_worker.py"), str(tmp_path), str(tree.root),
                          str(EPOCHS), str(STEPS)], env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    workers = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    truth_j = workers[0]["added_j"]  # rank 0 plays the host's hardware: one step's joules per step
    assert truth_j == EPOCHS * STEPS * STEP_J
    assert workers[0]["reported"] == workers[1]["reported"]  # every worker reported the same aggregate
    per_report = [r["energy/report/measured/total_j"] for r in workers[0]["reported"]]
    assert per_report == [pytest.approx(STEPS * STEP_J)] * EPOCHS
    assert math.fsum(per_report) == pytest.approx(truth_j, rel=0.01)
    metrics = json.loads((tmp_path / "result.json").read_text())  # what Ray forwards to Tune: worker 0's report
    assert metrics["energy/train/measured/total_j"] == pytest.approx(truth_j, rel=0.01)  # not 2x: one host
    assert metrics["energy/report/measured/node-a/cpu_0_package_j"] == pytest.approx(STEPS * PACKAGE_J)
    assert metrics["energy/train/counted/flops"] == 2 * EPOCHS * STEPS * BATCH * FLOPS_PER_SAMPLE  # both workers


def test_several_workers_without_a_process_group_are_refused_rather_than_reported_as_worker_0s(powercap,
                                                                                                 monkeypatch):
    import types

    from energymeter.distributed import DistributedError

    sent = []
    stub = types.ModuleType("ray.train")  # stands in for Ray Train in a worker of a non-torch trainer
    stub.get_context = lambda: types.SimpleNamespace(get_world_size=lambda: 4)
    stub.report = lambda metrics, **kwargs: sent.append(metrics)
    monkeypatch.setitem(sys.modules, "ray", types.ModuleType("ray"))
    monkeypatch.setitem(sys.modules, "ray.train", stub)
    monkeypatch.setattr(sys.modules["ray"], "train", stub, raising=False)
    powercap.add_package(0)
    with EnergyReporter(["rapl"], powercap_root=str(powercap.root)) as reporter:
        with pytest.raises(DistributedError, match="4 workers but no torch.distributed process group"):
            reporter.report({"loss": 1.0})
    assert sent == []
    stub.get_context = lambda: types.SimpleNamespace(get_world_size=lambda: 1)
    with EnergyReporter(["rapl"], powercap_root=str(powercap.root)) as reporter:
        reporter.report({"loss": 1.0})
    assert [m["loss"] for m in sent] == [1.0]
