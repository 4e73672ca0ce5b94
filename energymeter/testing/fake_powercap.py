"""Builds a Linux powercap (RAPL) sysfs tree in a directory, for tests."""

from __future__ import annotations

import os
from pathlib import Path

#: A common max_energy_range_uj on Intel server parts (2^32 energy units of 61 uJ).
DEFAULT_MAX_RANGE_UJ = 262_143_328_850


class FakePowercap:
    """A fake ``/sys/class/powercap``.

    ``add_package(0, dram=True)`` creates ``intel-rapl:0`` (``package-0``) with a ``dram`` subzone;
    ``set_energy("intel-rapl:0", 123)`` writes a counter. Point a backend at ``root``.

    Args:
        root: Directory to build the tree in (created if missing).
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def add_zone(self, zone: str, name: str, energy_uj: int = 0,
                 max_range_uj: int | None = DEFAULT_MAX_RANGE_UJ) -> Path:
        """Create one zone directory with ``name``, ``energy_uj`` and (unless None) ``max_energy_range_uj``."""
        path = self.root / zone
        path.mkdir(parents=True, exist_ok=True)
        (path / "name").write_text(name + "\n")
        (path / "energy_uj").write_text(f"{energy_uj}\n")
        if max_range_uj is not None:
            (path / "max_energy_range_uj").write_text(f"{max_range_uj}\n")
        return path

    def add_package(self, socket: int, *, dram: bool = False, core: bool = False, energy_uj: int = 0,
                    max_range_uj: int | None = DEFAULT_MAX_RANGE_UJ, interface: str = "intel-rapl") -> str:
        """Create ``{interface}:{socket}`` named ``package-{socket}``, with optional subzones; returns its zone id."""
        zone = f"{interface}:{socket}"
        self.add_zone(zone, f"package-{socket}", energy_uj, max_range_uj)
        sub = 0
        for wanted, name in ((dram, "dram"), (core, "core")):
            if wanted:
                self.add_zone(f"{zone}:{sub}", name, 0, max_range_uj)
                sub += 1
        return zone

    def set_energy(self, zone: str, energy_uj: int) -> None:
        """Write a zone's counter (microjoules)."""
        (self.root / zone / "energy_uj").write_text(f"{energy_uj}\n")

    def energy(self, zone: str) -> int:
        """Read a zone's counter (microjoules)."""
        return int((self.root / zone / "energy_uj").read_text())
