"""The hardware a framework test trains on: a fake powercap tree whose writer knows the joules it added.

Each training step calls ``Hardware.step()``. In one process it adds ``PACKAGE_J`` and ``DRAM_J`` to the tree's
counters. Under torch.distributed every rank of the (one simulated) host shares the tree: between two barriers,
while every rank's step window is open, rank 0 adds them once, so the host's truth is one step's joules per
step, whatever the number of ranks.
"""

from __future__ import annotations

import os

from energymeter.testing import FakePowercap

PACKAGE_J, DRAM_J = 2.0, 0.5
STEP_J = PACKAGE_J + DRAM_J
ZONES = {"intel-rapl:0": PACKAGE_J, "intel-rapl:0:0": DRAM_J}


def build_tree(root: str | os.PathLike[str]) -> FakePowercap:
    """A one-socket tree with DRAM; its counters start away from zero."""
    tree = FakePowercap(root)
    tree.add_package(0, dram=True, energy_uj=5_000_000)
    return tree


class Hardware:
    """Adds one step's joules to the tree at ``root`` (see the module docstring); ``added_j`` is the truth."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.tree = FakePowercap(root)
        self.added_j = 0.0

    def step(self) -> None:
        import torch.distributed as dist

        ranks = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        if ranks > 1:
            dist.barrier()  # every rank's step window is open
        if ranks == 1 or dist.get_rank() == 0:
            for zone, joules in ZONES.items():
                self.tree.set_energy(zone, self.tree.energy(zone) + round(joules * 1e6))
        self.added_j += STEP_J
        if ranks > 1:
            dist.barrier()  # the counters have advanced before any rank closes its window
