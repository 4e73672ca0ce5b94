"""Progress over a sweep's runs on stderr: a one-line bar with ETA on a terminal, one plain line per finished
run otherwise (a log, CI, ``make run > file``), nothing when asked."""

from __future__ import annotations

import sys
import time


class Progress:
    """Progress over ``total`` runs.

    Args:
        total: Runs to do.
        quiet: Print nothing.
    """

    def __init__(self, total: int, quiet: bool) -> None:
        self.total = total
        self.done = 0
        self.enabled = not quiet
        self.bar = self.enabled and sys.stderr.isatty()
        self.start = time.monotonic()
        if self.bar and total:
            sys.stderr.write(f"[{'.' * 24}] 0/{total} ETA    ? s")
            sys.stderr.flush()

    def update(self, label: str) -> None:
        """Advance by one finished run."""
        self.done += 1
        if not self.enabled:
            return
        elapsed = time.monotonic() - self.start
        eta = elapsed / self.done * (self.total - self.done)
        if not self.bar:
            sys.stderr.write(f"run {self.done}/{self.total} done ({label}); {elapsed:.0f} s so far, about "
                             f"{eta:.0f} s to go\n")
            sys.stderr.flush()
            return
        width = 24
        filled = int(width * self.done / max(self.total, 1))
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} "
                         f"ETA {eta:4.0f} s  {label[:40]:<40}")
        sys.stderr.flush()
        if self.done == self.total:
            sys.stderr.write("\n")

    def interrupted(self) -> None:
        """End the bar's line after Ctrl-C."""
        if self.bar:
            sys.stderr.write("\n")
