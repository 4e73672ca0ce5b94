"""Builds a Linux powercap (RAPL) sysfs tree in a directory, for tests; optionally a writer that updates it."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path
from typing import Iterator

from energymeter.testing.counter_file import write_counter

#: A common max_energy_range_uj on Intel server parts (2^32 energy units of 61 uJ).
DEFAULT_MAX_RANGE_UJ = 262_143_328_850
#: How often ``running()`` writes when the tree has no update period of its own (s).
_DEFAULT_TICK_S = 0.001


class FakePowercap:
    """A fake ``/sys/class/powercap``.

    ``add_package(0, dram=True)`` creates ``intel-rapl:0`` (``package-0``) with a ``dram`` subzone;
    ``set_energy("intel-rapl:0", 123)`` writes a counter. Point a backend at ``root``.

    A counter that behaves like hardware: ``draw(zone, power_w)`` makes a zone draw power, and inside
    ``with tree.running():`` a writer thread advances every drawing zone's true energy and writes what a
    reader sees. With ``update_period_s`` the visible counter changes only once per update period and holds
    between updates; with ``resolution_uj`` it moves in whole steps of that many microjoules (the rest is
    carried to the next update), wrapping at the zone's range. ``true_energy_uj(zone)`` is what the zone
    really drew.

    Args:
        root: Directory to build the tree in (created if missing).
        update_period_s: Seconds between the visible counter's updates; 0 (the default): ``set_energy``
            writes at once, as it always did.
        resolution_uj: The counter's step (uJ); 1 by default.

    Raises:
        ValueError: a negative update period or a resolution below 1 uJ.
    """

    def __init__(self, root: str | os.PathLike[str], *, update_period_s: float = 0.0, resolution_uj: int = 1) -> None:
        if not update_period_s >= 0 or isinstance(resolution_uj, bool) or int(resolution_uj) < 1:
            raise ValueError(f"update_period_s must be >= 0 and resolution_uj >= 1, got {update_period_s!r}, "
                             f"{resolution_uj!r}")
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.update_period_s = float(update_period_s)
        self.resolution_uj = int(resolution_uj)
        self._lock = threading.Lock()
        self._true_uj: dict[str, float] = {}  # zone -> the energy it drew (uJ), as of the last update
        self._power_w: dict[str, float] = {}  # zone -> what it draws now (W)
        self._ranges: dict[str, int | None] = {}

    def add_zone(self, zone: str, name: str, energy_uj: int = 0,
                 max_range_uj: int | None = DEFAULT_MAX_RANGE_UJ) -> Path:
        """Create one zone directory with ``name``, ``energy_uj`` and (unless None) ``max_energy_range_uj``."""
        path = self.root / zone
        path.mkdir(parents=True, exist_ok=True)
        (path / "name").write_text(name + "\n")
        (path / "energy_uj").write_text(f"{energy_uj}\n")
        if max_range_uj is not None:
            (path / "max_energy_range_uj").write_text(f"{max_range_uj}\n")
        with self._lock:
            self._true_uj[zone] = float(energy_uj)
            self._ranges[zone] = max_range_uj
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
        """Set a zone's counter (microjoules): without an update period it is written at once, as given (in whole
        resolution steps; even above the range, to fake a wrong range file); else at the next update, wrapped."""
        with self._lock:
            self._true_uj[zone] = float(energy_uj)
            if self.update_period_s == 0:
                write_counter(self.root / zone / "energy_uj", self._steps_uj(zone))

    def energy(self, zone: str) -> int:
        """Read a zone's counter as a reader sees it (microjoules)."""
        return int((self.root / zone / "energy_uj").read_text())

    def true_energy_uj(self, zone: str) -> float:
        """The energy the zone drew (uJ), as of the writer's last update (what the counter shows, unrounded)."""
        with self._lock:
            return self._true_uj[zone]

    def draw(self, zone: str, power_w: float) -> None:
        """Make ``zone`` draw ``power_w`` watts from now on (its counter advances inside ``running()``)."""
        with self._lock:
            self._power_w[zone] = float(power_w)

    @contextlib.contextmanager
    def running(self) -> Iterator["FakePowercap"]:
        """Run the writer thread for the block: every update period (1 ms without one) it adds each drawing
        zone's power x the elapsed updates to its true energy and writes the visible counters."""
        stop = threading.Event()
        thread = threading.Thread(target=self._write_updates, args=(stop,), name="fake-powercap-writer", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join()

    def _write_updates(self, stop: threading.Event) -> None:
        period_s = self.update_period_s or _DEFAULT_TICK_S
        next_s = time.monotonic() + period_s
        while not stop.wait(max(next_s - time.monotonic(), 0.0)):
            now_s = time.monotonic()
            updates = int((now_s - next_s) // period_s) + 1  # a late writer catches up, as the hardware did meanwhile
            next_s += updates * period_s
            with self._lock:
                for zone, power_w in self._power_w.items():
                    self._true_uj[zone] += power_w * 1e6 * period_s * updates
                for zone in self._true_uj:
                    write_counter(self.root / zone / "energy_uj", self._visible_uj(zone))

    def _steps_uj(self, zone: str) -> int:
        """The true energy in whole resolution steps (call locked)."""
        return int(self._true_uj[zone] // self.resolution_uj) * self.resolution_uj

    def _visible_uj(self, zone: str) -> int:
        """The counter's value: the true energy in whole resolution steps, wrapped at the range (call locked)."""
        range_uj = self._ranges.get(zone)
        return self._steps_uj(zone) % range_uj if range_uj else self._steps_uj(zone)

