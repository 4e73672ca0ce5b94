"""Who else uses a measured GPU: a GPU's energy counter is the whole device's, other processes' work included.

A GPU session lists the processes on each GPU it measures (NVML's ``nvmlDeviceGetComputeRunningProcesses``,
amdsmi's ``amdsmi_get_gpu_process_list``) when a window ends, and the window gets a warning naming how many
processes other than this one used it. The lists are taken at most once per ``CHECK_PERIOD_S`` (a window
ending within that time of the last check reuses its answer), so a process that came and went inside a
window, or between checks, is not seen.
"""

from __future__ import annotations

import os
from typing import Callable

#: Seconds a process check stays good for the windows that end after it.
CHECK_PERIOD_S = 1.0


class SharingWatch:
    """Turns process lists into warnings.

    Args:
        list_pids: Returns, per GPU domain, the pids using it now (None where the library cannot say).
        clock: Monotonic clock in seconds.
        own_pid: This process's pid (default ``os.getpid()``).
        period_s: How long one check stays good (s).
    """

    def __init__(self, list_pids: Callable[[], "dict[str, list[int] | None]"], clock: Callable[[], float],
                 own_pid: int | None = None, period_s: float = CHECK_PERIOD_S) -> None:
        self._list_pids = list_pids
        self._clock = clock
        self.own_pid = os.getpid() if own_pid is None else own_pid
        self.period_s = period_s
        self._checked_s: float | None = None
        self._warnings: list[str] = []

    def warnings(self) -> list[str]:
        """One warning per GPU that another process uses (the latest check, taken now when it is stale)."""
        now_s = self._clock()
        if self._checked_s is None or now_s - self._checked_s >= self.period_s:
            self._warnings = [w for domain, pids in self._list_pids().items()
                              if (w := shared_warning(domain, pids, self.own_pid))]
            self._checked_s = now_s
        return list(self._warnings)


def shared_warning(domain: str, pids: "list[int] | None", own_pid: int) -> str:
    """The warning for one GPU's process list, or ``""`` when no other process is on it.

    When this process's pid is not in the list (it has not touched the GPU, or it runs in a container: the
    libraries report host pids), every listed process counts as another and the warning says why.
    """
    if not pids:
        return ""
    others = sorted(set(pids) - {own_pid})
    if not others:
        return ""
    n = len(others)
    shown = ", ".join(str(p) for p in others[:8]) + (", ..." if n > 8 else "")
    what = f"{n} other process{'es' if n > 1 else ''} (pid {shown})"
    unsure = "" if own_pid in pids else (f"; this process (pid {own_pid}) is not among them: in a container the "
                                         "library reports host pids, so one of them may be this one")
    return (f"{domain}: {what} used this GPU at the window's end: its energy counter is the whole GPU's, so their "
            f"work is in these joules{unsure}")
