"""What every backend provides: a cached probe and, once opened, a session that reads its domains.

An energy backend's session reports *cumulative* joules per domain since the session opened. A
window's energy is the difference of two readings, so any number of nested, overlapping or
concurrent windows share one session and one set of hardware handles.
"""

from __future__ import annotations

import abc
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping

from ..errors import BackendUnavailable

#: What a backend is, declared as data on its class (``Backend.kind``). The default selection and the
#: no-double-counting rule read it; nothing keeps a hand-made list of names.
HARDWARE_COUNTER = "hardware-counter"  # reads this machine's energy from the hardware (RAPL, NVML)
MODEL = "model"  # estimates this machine's energy from a model (TDP x utilisation)
OPERATION_COUNTER = "operation-counter"  # counts operations (FLOPs), not joules
SIMULATOR = "simulator"  # prices operations of simulated hardware (Loihi); never this machine's energy
KINDS = (HARDWARE_COUNTER, MODEL, OPERATION_COUNTER, SIMULATOR)


@dataclass(frozen=True)
class BackendStatus:
    """Whether a backend can run here.

    Attributes:
        name: Registry name (``"rapl"``, ``"nvml"``, ...).
        available: True when the backend can be opened.
        reason: Why it is or is not available, in words a user can act on.
        domains: The domains it would report, e.g. ``("cpu:0:package", "cpu:0:dram")``.
        provenance: The provenance of those domains (``measured``, ``integrated``, ``modeled``,
            ``counted``).
    """

    name: str
    available: bool
    reason: str
    domains: tuple[str, ...] = ()
    provenance: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "name": self.name,
            "available": self.available,
            "reason": self.reason,
            "domains": list(self.domains),
            "provenance": self.provenance,
        }


@dataclass(frozen=True, slots=True)
class Reading:
    """One cumulative reading of an energy session.

    Attributes:
        energy_j: Domain to joules accumulated since the session opened.
        failed: Domain to the reason it has no reading now.
        epochs: Domain to a count the session raises each time that domain had a fault it recovered
            from (a transient read error, a gap in power sampling). A window whose two readings carry
            different epochs spans the fault: the meter fails the domain for that window only.
    """

    energy_j: Mapping[str, float]
    failed: Mapping[str, str] = field(default_factory=dict)
    epochs: Mapping[str, int] = field(default_factory=dict)


class EnergySession(abc.ABC):
    """An opened energy backend. Sessions are used from several threads and lock themselves."""

    #: Domain to provenance label, fixed when the session opens.
    provenance: Mapping[str, str]
    #: Domain to a stable hardware identity (a GPU's UUID, a RAPL zone's path), where one exists.
    devices: Mapping[str, str] = {}

    @abc.abstractmethod
    def read(self) -> Reading:
        """Cumulative joules per domain now. Never raises for a hardware fault: it marks the domain failed."""

    def activate(self) -> None:
        """Called when the first window opens: start any background poller."""

    def deactivate(self) -> None:
        """Called when the last window closes: stop any background poller."""

    def window_warnings(self, duration_s: float) -> list[str]:
        """Caveats for a window of ``duration_s`` seconds (e.g. shorter than a counter's update period)."""
        return []

    def close(self) -> None:
        """Release hardware handles."""


class Backend(abc.ABC):
    """A way of measuring: probed cheaply, opened into a session when a meter needs it.

    Subclasses take their options as keyword arguments in ``__init__`` and must not touch hardware
    there; ``probe()`` is the first place that may.
    """

    name: ClassVar[str]
    #: One of ``KINDS``: what this backend reports.
    kind: ClassVar[str]
    #: The device classes whose energy it reports (``"cpu"``, ``"gpu"``); a model backend is left out of
    #: a default selection when a hardware counter covers the same device class.
    covers: ClassVar[tuple[str, ...]] = ()
    #: Options this backend accepts, for the meter's unknown-option check.
    options: ClassVar[tuple[str, ...]] = ()

    def __init__(self) -> None:
        self._status: BackendStatus | None = None
        self._probe_lock = threading.Lock()

    def probe(self) -> BackendStatus:
        """Availability and reason, computed once per backend object."""
        with self._probe_lock:
            if self._status is None:
                self._status = self._probe()
            return self._status

    @abc.abstractmethod
    def _probe(self) -> BackendStatus:
        """Look at the hardware once and say what is there."""

    def open(self) -> Any:
        """Probe (cached), then open a session.

        Raises:
            BackendUnavailable: the probe found the backend unusable; the message says why.
        """
        status = self.probe()
        if not status.available:
            raise BackendUnavailable(f"{self.name}: {status.reason}")
        return self._open()

    @abc.abstractmethod
    def _open(self) -> Any:
        """Open a session after a successful probe (an ``EnergySession``, or a counter's own session)."""


class Poller:
    """Calls ``fn`` every ``period_s`` seconds, but only while started (i.e. while a window is open).

    One daemon thread is created on the first ``start()`` and then parked on a condition while no
    window is open, so opening and closing a window costs a notify, not a thread start and join.
    ``close()`` ends the thread.
    """

    def __init__(self, fn: Callable[[], None], period_s: float, name: str) -> None:
        self._fn = fn
        self.period_s = period_s
        self._name = name
        self._cond = threading.Condition()
        self._active = False
        self._closed = False
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """True while polling (between ``start()`` and ``stop()``)."""
        return self._active and self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Begin polling (idempotent)."""
        with self._cond:
            if self._active or self._closed:
                return
            self._active = True
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def stop(self) -> None:
        """Stop polling; the thread parks until the next ``start()`` (idempotent)."""
        with self._cond:
            if self._active:
                self._active = False
                self._cond.notify_all()

    def close(self) -> None:
        """Stop polling and end the thread."""
        with self._cond:
            self._active = False
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _run(self) -> None:
        with self._cond:
            while not self._closed:
                if not self._active:
                    self._cond.wait()
                    continue
                # A stop() or close() during the wait wakes us early and skips the call.
                if self._cond.wait_for(lambda: not self._active or self._closed, timeout=self.period_s):
                    continue
                self._cond.release()
                try:
                    self._fn()
                finally:
                    self._cond.acquire()
