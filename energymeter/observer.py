"""The process-wide ledger of the meter's own work that may land inside windows' joules: FLOP shadow passes.

A shadow pass (``energymeter.backends.flops``) runs after its own window's closing reading, but any other
window open at that moment, of this meter or another (an epoch ``Meter()`` around per-step
``measure(model=net)`` windows), has it inside its joules: host-wide counters see every thread. Each pass
adds its seconds here; a window notes the total when it opens and says, when it closes, how many seconds
of counting ran meanwhile (less its own).
"""

from __future__ import annotations

import threading

_lock = threading.Lock()
_total_s = 0.0


def add_counting_s(seconds: float) -> None:
    """Record ``seconds`` of counting work (a shadow pass) done in this process."""
    global _total_s
    with _lock:
        _total_s += seconds


def counting_s() -> float:
    """Seconds of counting work done in this process so far (read without a lock: one float)."""
    return _total_s
