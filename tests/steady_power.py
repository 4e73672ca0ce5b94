"""A fake powercap tree whose counters advance at a steady power, written by a thread that knows the truth.

Each counter is rewritten in place with one ``pwrite`` of fixed-width text (no truncation), so a reader's
``pread`` sees the old value or the new one, never an empty file.
"""

from __future__ import annotations

import os
import threading
import time

from energymeter.testing import FakePowercap

#: Zone -> watts.
WATTS = {"intel-rapl:0": 20.0, "intel-rapl:0:0": 5.0}
_WIDTH = 20


class SteadyPower:
    """Counters that advance at ``watts`` while running (``with SteadyPower(root) as power: ...``).

    Attributes:
        tree: The fake tree (package 0 with DRAM).
    """

    def __init__(self, root: str | os.PathLike[str], watts: dict[str, float] | None = None,
                 period_s: float = 0.002) -> None:
        self.watts = dict(watts or WATTS)
        self.tree = FakePowercap(root)
        self.tree.add_package(0, dram=True)
        self.period_s = period_s
        self._uj = {zone: 1_000_000 for zone in self.watts}
        self._fds = {zone: os.open(self.tree.root / zone / "energy_uj", os.O_WRONLY) for zone in self.watts}
        self._lock = threading.Lock()
        self._running = False
        self._thread: threading.Thread | None = None
        for zone in self.watts:
            self._write(zone)

    def _write(self, zone: str) -> None:
        os.pwrite(self._fds[zone], f"{self._uj[zone]:0{_WIDTH}d}\n".encode(), 0)

    def add_j(self, zone: str, joules: float) -> None:
        """Advance one counter by ``joules`` now."""
        with self._lock:
            self._uj[zone] += round(joules * 1e6)
            self._write(zone)

    def energy_j(self, zone: str) -> float:
        """The counter's value as written (J)."""
        with self._lock:
            return self._uj[zone] / 1e6

    def _run(self) -> None:
        last_s = time.monotonic()
        while self._running:
            time.sleep(self.period_s)
            now_s = time.monotonic()
            with self._lock:
                for zone, watts in self.watts.items():
                    self._uj[zone] += round(watts * (now_s - last_s) * 1e6)
                    self._write(zone)
            last_s = now_s

    def __enter__(self) -> "SteadyPower":
        self._running = True
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._running = False
        if self._thread is not None:
            self._thread.join()

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
