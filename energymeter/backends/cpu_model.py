"""Modeled CPU energy: CPU seconds this process (and its waited-for children) used x power per busy thread.

Power per thread is the CPU's TDP divided over its hardware threads, from ``hardware_profiles/cpu.json``
matched on the words of the model string in ``/proc/cpuinfo`` (no regular expressions, so a profile
cannot make matching slow). Equivalently: TDP x utilisation x wall time, with
utilisation = CPU seconds / (wall seconds x threads). Provenance ``modeled``: it is an estimate of the
share of a TDP, never a measurement, and a meter only adds it where no measured CPU domain exists.
"""

from __future__ import annotations

import os
import platform
import threading
import time
from typing import Callable

from ..domains import CPU, PROCESS, Domain
from ..errors import ProfileError
from ..measurement import MODELED
from ..profiles import CpuPower, cpu_power
from .base import MODEL, Backend, BackendStatus, EnergySession, Reading

DOMAIN = "cpu:model"


def process_cpu_time_s() -> float:
    """User + system CPU seconds of this process and of its children that were waited for."""
    # process_time() has nanosecond resolution; os.times() ticks at 10 ms but is the only source for children.
    t = os.times()
    return time.process_time() + t.children_user + t.children_system


def read_cpu_model(cpuinfo_path: str = "/proc/cpuinfo") -> str:
    """The CPU model string (``model name`` in /proc/cpuinfo, else ``platform.processor()``)."""
    try:
        with open(cpuinfo_path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


class CpuModelBackend(Backend):
    """CPU time x per-thread power.

    Args:
        cpu_model_string: Overrides the detected CPU model string.
        cpu_profile: Bundled profile name or JSON path (default ``"cpu"``).
        cpu_time: Returns cumulative CPU seconds (default: this process and waited-for children).
        threads: Logical CPUs used with the profile's default entry (default ``os.cpu_count()``).
    """

    name = "cpu-model"
    kind = MODEL
    covers = ("cpu",)
    options = ("cpu_model_string", "cpu_profile", "cpu_time", "threads")

    def __init__(self, cpu_model_string: str | None = None, cpu_profile: str = "cpu",
                 cpu_time: Callable[[], float] | None = None, threads: int | None = None) -> None:
        super().__init__()
        self._model_string = cpu_model_string
        self._profile = cpu_profile
        self._cpu_time = cpu_time or process_cpu_time_s
        self._threads = threads or os.cpu_count() or 1
        self.power: CpuPower | None = None

    def _probe(self) -> BackendStatus:
        model = self._model_string or read_cpu_model()
        try:
            self.power = cpu_power(model, self._threads, self._profile)
        except ProfileError as exc:
            return BackendStatus(self.name, False, str(exc), (DOMAIN,), MODELED)
        p = self.power
        return BackendStatus(self.name, True, f"{model}: {p.tdp_w:g} W TDP / {p.threads} threads = "
                             f"{p.power_per_thread_w:.2f} W per busy thread ({p.source})", (DOMAIN,), MODELED)

    def _open(self) -> "CpuModelSession":
        assert self.power is not None  # set by a successful probe
        return CpuModelSession(self.power.power_per_thread_w, self._cpu_time)


class CpuModelSession(EnergySession):
    """Cumulative modeled joules = CPU seconds since opening x watts per thread."""

    def __init__(self, power_per_thread_w: float, cpu_time: Callable[[], float]) -> None:
        # This process's own CPU seconds: scope process (ranks on one host each have their own).
        self.domains = {DOMAIN: Domain(DOMAIN, CPU, PROCESS, MODELED, MODEL)}
        self.power_per_thread_w = power_per_thread_w
        self._cpu_time = cpu_time
        self._lock = threading.Lock()
        self._start_s = cpu_time()

    def read(self) -> Reading:
        """Modeled joules since the session opened."""
        with self._lock:
            return Reading({DOMAIN: (self._cpu_time() - self._start_s) * self.power_per_thread_w})
