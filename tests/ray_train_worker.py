"""A Ray ``TorchTrainer`` of 2 CPU workers on a fake powercap tree, run by ``test_integrations_ray_train.py``.

Usage: ``python tests/ray_train_worker.py <out_dir> <powercap_root> <epochs> <steps>`` (in a process of its own:
Ray must be imported after ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`` is set, and not into the test process, where
the Ray sweep's tests start their own instance). It writes the trainer's result metrics (what Ray hands Tune,
worker 0's last report) to ``<out_dir>/result.json``.

Every worker trains a 784-32-10 MLP for ``epochs`` epochs of ``steps`` steps on its own data; every step runs
``Hardware.step()`` (rank 0 adds one step's joules to the host's fake tree while every rank's window is open),
and each epoch ends with ``EnergyReporter.report``. Each worker writes ``<out_dir>/rank<R>.json`` with the joules
its hardware added and what it reported.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
from torch import nn

from energymeter.integrations.ray_train import EnergyReporter
from training_hardware import Hardware


def checkpoint(out_dir: str, rank: int):
    """A checkpoint from rank 0 (Ray keeps the metrics reported with it in the trainer's result)."""
    import ray.train

    if rank != 0:
        return None
    folder = Path(out_dir, "checkpoint")
    folder.mkdir(exist_ok=True)
    (folder / "state.txt").write_text("tiny\n")
    return ray.train.Checkpoint.from_directory(str(folder))


def train_func(config: dict) -> None:
    import ray.train

    os.environ["ENERGYMETER_HOST_ID"] = config["host"]
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05)
    hardware = Hardware(config["powercap"])
    rank = ray.train.get_context().get_world_rank()
    reported = []
    with EnergyReporter(["rapl", "flops"], model=net, powercap_root=config["powercap"]) as energy:
        for _ in range(config["epochs"]):
            for _ in range(config["steps"]):
                x, y = torch.randn(32, 784), torch.randint(0, 10, (32,))
                loss = nn.functional.cross_entropy(net(x), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                hardware.step()
            reported.append(energy.report({"loss": float(loss)}, checkpoint=checkpoint(config["out"], rank)))

    Path(config["out"], f"rank{rank}.json").write_text(json.dumps({"added_j": hardware.added_j,
                                                                   "reported": reported}))


def main(out_dir: str, powercap_root: str, epochs: str, steps: str) -> None:
    os.environ.update(RAY_USAGE_STATS_ENABLED="0", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
             object_store_memory=128 * 2**20)
    try:
        config = {"host": "node-a", "powercap": powercap_root, "epochs": int(epochs), "steps": int(steps),
                  "out": out_dir}
        trainer = TorchTrainer(train_func, train_loop_config=config,
                               scaling_config=ScalingConfig(num_workers=2, use_gpu=False,
                                                            resources_per_worker={"CPU": 1}),
                               run_config=RunConfig(storage_path=str(Path(out_dir) / "ray"), name="energy"))
        result = trainer.fit()
    finally:
        ray.shutdown()
    Path(out_dir, "result.json").write_text(json.dumps(result.metrics))


if __name__ == "__main__":
    main(*sys.argv[1:5])
