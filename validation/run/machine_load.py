"""How busy the machine is while a run executes: load average, other processes' CPU share, CPU frequency.

A sampler thread wakes every ``period_s`` (default 0.5 s), reads ``/proc/loadavg`` and sleeps again; the
CPU frequency (one sysfs file per CPU) and ``/proc/stat`` are read only at the run's start and end. The
thread runs inside the measured windows, so its cost is stated: one sample took 12.5 us of CPU on the
development VM, about 0.003% of one core at two samples a second (measured by timing 5,000 ``_sample()``
calls on the thread's CPU clock). Where a file is unreadable
(not Linux) the figure is None.
"""

from __future__ import annotations

import glob
import os
import threading
import time
from typing import Callable

from ..records.record import MachineLoad


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            return handle.read()
    except OSError:
        return None


def _total_cpu_s() -> float | None:
    """Seconds of CPU the whole machine has used since boot (all CPUs, /proc/stat)."""
    text = _read("/proc/stat")
    if not text:
        return None
    fields = text.splitlines()[0].split()[1:]
    ticks = os.sysconf("SC_CLK_TCK")
    busy = sum(int(v) for i, v in enumerate(fields[:8]) if i not in (3, 4))  # all but idle and iowait
    return busy / ticks


def _own_cpu_s() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _load_avg_1m() -> float | None:
    text = _read("/proc/loadavg")
    return float(text.split()[0]) if text else None


def _cpu_freq_mhz() -> float | None:
    values = []
    for path in glob.glob("/sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_cur_freq"):
        text = _read(path)
        if text and text.strip().isdigit():
            values.append(int(text) / 1000.0)
    return sum(values) / len(values) if values else None


class LoadSampler:
    """Samples the machine's load while open: ``with LoadSampler() as s: ...`` then ``s.result``.

    Args:
        period_s: Seconds between samples.
        total_cpu_s, own_cpu_s, load_avg, cpu_freq: Injectable readers (tests).
    """

    def __init__(self, period_s: float = 0.5, total_cpu_s: Callable[[], float | None] = _total_cpu_s,
                 own_cpu_s: Callable[[], float] = _own_cpu_s, load_avg: Callable[[], float | None] = _load_avg_1m,
                 cpu_freq: Callable[[], float | None] = _cpu_freq_mhz) -> None:
        self.period_s = period_s
        self._total, self._own, self._load, self._freq = total_cpu_s, own_cpu_s, load_avg, cpu_freq
        self._stop = threading.Event()
        self._loads: list[float] = []
        self._freqs: list[float] = []
        self._thread: threading.Thread | None = None
        self.result: MachineLoad | None = None

    def _sample(self) -> None:
        load = self._load()
        if load is not None:
            self._loads.append(load)

    def _sample_freq(self) -> None:
        freq = self._freq()
        if freq is not None:
            self._freqs.append(freq)

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            self._sample()

    def __enter__(self) -> "LoadSampler":
        self._start_total, self._start_own, self._start_s = self._total(), self._own(), time.monotonic()
        self._sample()
        self._sample_freq()
        self._thread = threading.Thread(target=self._run, name="energymeter-load-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
        self._sample_freq()
        cpus = os.cpu_count() or 1
        wall_s = time.monotonic() - self._start_s
        end_total = self._total()
        other = None
        if end_total is not None and self._start_total is not None and wall_s > 0:
            other_cpu_s = (end_total - self._start_total) - (self._own() - self._start_own)
            other = min(max(other_cpu_s / (wall_s * cpus), 0.0), 1.0)
        mean = (lambda xs: sum(xs) / len(xs) if xs else None)
        self.result = MachineLoad(mean(self._loads), other, mean(self._freqs), cpus, len(self._loads))
