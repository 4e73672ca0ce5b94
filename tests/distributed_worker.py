"""One rank of the simulated multi-host run that ``tests/test_distributed.py`` launches with torchrun.

Usage: ``torchrun --nproc-per-node=4 tests/distributed_worker.py <layout.json> <out_dir>``.

The layout (written by the test) gives each rank its simulated host, its host's fake powercap tree, the
directory of its host's fake GPU counters and the GPU UUIDs it sees (its ``CUDA_VISIBLE_DEVICES``), and,
per host, the joules each counter gains during the window. The first rank of each host plays the
hardware: between two barriers inside every rank's window it advances its host's counters. Each rank
writes its own window and the aggregate to ``<out_dir>/rank<R>.json``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch.distributed as dist

from energymeter import Meter
from energymeter.distributed import aggregate
from energymeter.testing import FakeGpu, FakeNVML, FakePowercap
from energymeter.testing.counter_file import write_counter


class FileNVML(FakeNVML):
    """A FakeNVML whose GPUs' energy counters live in files (``<dir>/<uuid>.mj``, millijoules), so that
    ranks in separate processes that see the same GPU read the same counter."""

    def __init__(self, counter_dir: str, uuids: list[str]) -> None:
        super().__init__([FakeGpu(uuid=u) for u in uuids])
        self.counter_dir = Path(counter_dir)

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: int) -> int:
        if isinstance(handle, int) and 0 <= handle < len(self.gpus):
            gpu = self.gpus[handle]
            gpu.energy_mj = int((self.counter_dir / f"{gpu.uuid}.mj").read_text())
        return super().nvmlDeviceGetTotalEnergyConsumption(handle)


def add_j(path: Path, joules: float, per_joule: int) -> None:
    """Advance a counter file (integer units of 1/per_joule J) by ``joules``."""
    write_counter(path, int(path.read_text()) + round(joules * per_joule))


def main(layout_path: str, out_dir: str) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    layout: dict[str, Any] = json.loads(Path(layout_path).read_text())
    me = layout["ranks"][rank]
    host = layout["hosts"][me["host"]]
    os.environ["ENERGYMETER_HOST_ID"] = me["host"]
    nvml = FileNVML(host["gpu_dir"], host["gpus"])
    meter = Meter(["rapl", "nvml"], powercap_root=host["powercap"], nvml_module=nvml,
                  visible_devices=",".join(me["visible"]), sync=False)
    with meter.window("step") as window:
        dist.barrier()  # every rank's window is open
        if me["plays_hardware"]:
            tree = FakePowercap(host["powercap"])
            for zone, joules in host["zone_j"].items():
                tree.set_energy(zone, tree.energy(zone) + round(joules * 1e6))
            for uuid, joules in host["gpu_j"].items():
                add_j(Path(host["gpu_dir"]) / f"{uuid}.mj", joules, 1000)
            # Hardware draws its joules over time: 40 J in a window of a few ms would break the RAPL
            # plausibility ceiling (1500 W) and fail the zone, as it should. Keep every window long enough.
            time.sleep(0.15)
        dist.barrier()  # every counter has advanced
    meter.close()
    total = aggregate(window.result)
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps({"own": window.result.to_dict(),
                                                             "aggregate": total.to_dict()}))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:3])
