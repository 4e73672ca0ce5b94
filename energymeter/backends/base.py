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

from ..domains import Domain
from ..errors import BackendUnavailable

# What a backend is, declared as data on its class (``Backend.kind``). The default selection and the
# no-double-counting rule read it; nothing keeps a hand-made list of names.
from ..kinds import HARDWARE_COUNTER, KINDS, MODEL, OPERATION_COUNTER, SIMULATOR  # noqa: E402,F401


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
        fault_reasons: Domain to the reason of its latest recovered fault (the one that last raised its
            epoch), so the window that spans it can say which fault it was.
    """

    energy_j: Mapping[str, float]
    failed: Mapping[str, str] = field(default_factory=dict)
    epochs: Mapping[str, int] = field(default_factory=dict)
    fault_reasons: Mapping[str, str] = field(default_factory=dict)


class EnergySession(abc.ABC):
    """An opened energy backend. Sessions are used from several threads and lock themselves.

    A session says what it measures when it opens: ``domains``, one ``Domain`` declaration per domain
    (device class, scope, device id, containment, provenance, kind). ``provenance`` and ``devices`` are
    then derived from it. A session that sets only ``provenance`` (and ``devices``), as sessions did
    before declarations existed, still works: the meter infers its declarations from the domain names
    and the backend's ``kind`` and ``covers``.
    """

    _session_domains: Mapping[str, Domain] = {}
    _session_provenance: Mapping[str, str] = {}
    _session_devices: Mapping[str, str] = {}

    @property
    def domains(self) -> Mapping[str, Domain]:
        """Domain name to its declaration, fixed when the session opens (empty: none declared)."""
        return self._session_domains

    @domains.setter
    def domains(self, value: Mapping[str, Domain]) -> None:
        self._session_domains = dict(value)

    @property
    def provenance(self) -> Mapping[str, str]:
        """Domain to provenance label: from ``domains`` where declared, else as the session set it."""
        if self._session_domains:
            return {n: d.provenance for n, d in self._session_domains.items()}
        return self._session_provenance

    @provenance.setter
    def provenance(self, value: Mapping[str, str]) -> None:
        self._session_provenance = dict(value)

    @property
    def devices(self) -> Mapping[str, str]:
        """Domain to a stable hardware identity (a GPU's UUID, a RAPL zone's path), where one exists."""
        if self._session_domains:
            return {n: d.device_id for n, d in self._session_domains.items() if d.device_id}
        return self._session_devices

    @devices.setter
    def devices(self, value: Mapping[str, str]) -> None:
        self._session_devices = dict(value)

    #: An optional fast read for the meter's window path, or None. Where set, it returns either a
    #: ``Reading`` (whenever a domain failed) or ``(state, values_uj)``: ``state`` is ``(epochs,
    #: fault_reasons, offsets_uj)``, and a domain's cumulative total is ``values_uj[i] + offsets_uj[i]``
    #: integer microjoules, in the order of ``domains``. The session replaces ``state`` whenever an
    #: offset changes and ``epochs`` at every recovered fault, so two readings holding the same ``state``
    #: differ by their values alone, and two with the same ``epochs`` span no fault. Lists handed out
    #: are never changed afterwards.
    read_fast: "Callable[[], Any] | None" = None
    #: The lock ``read_fast`` takes, and ``read_fast_locked``, the same read for a caller that holds it;
    #: a meter with this one session shares the lock, so each window edge takes one lock. None: no pair.
    lock: "Any | None" = None
    read_fast_locked: "Callable[[], Any] | None" = None

    @abc.abstractmethod
    def read(self) -> Reading:
        """Cumulative joules per domain now. Never raises for a hardware fault: it marks the domain failed."""

    def activate(self) -> None:
        """Called when the first window opens: start any background poller."""

    def deactivate(self) -> None:
        """Called when the last window closes: stop any background poller."""

    def window_warnings(self, duration_s: float) -> "list[str] | tuple[str, ...]":
        """Caveats for a window of ``duration_s`` seconds (e.g. shorter than a counter's update period)."""
        return ()

    def close(self) -> None:
        """Release hardware handles."""


def step_allowance_s(elapsed_s: float, allowance_s: float, burst_s: float) -> float:
    """Seconds at a domain's power ceiling a counter step may carry beyond the ``elapsed_s`` it spans.

    A counter advances in bursts (``burst_s``: about 1 ms for RAPL, 10-100 ms for NVML's energy counter), so a
    step may carry up to a burst more energy than its elapsed time explains. The allowance grows with the
    step, from one burst up to ``allowance_s`` (the power-limits profile's ``step_allowance_s``): a step of a
    microsecond can carry a burst's worth of energy at the ceiling, never a second's.
    """
    return min(allowance_s, max(burst_s, elapsed_s))


class WindowCounter(abc.ABC):
    """An opened operation counter (``Backend.kind == OPERATION_COUNTER``): it counts each window itself.

    Unlike an energy session it reports no cumulative joules: the meter calls ``begin`` after a window's
    opening energy readings and ``end`` after its closing ones, so counting work stays outside the joules.
    """

    #: The warning a window gets when it could not be counted because it named no model (see ``begin``).
    not_counted_without_model: ClassVar[str] = "not counted: the window named no model"
    #: A lock a meter of this counter alone may share, calling ``begin_locked`` and ``end_fast_locked`` under
    #: it (one lock per window edge); None: the meter keeps its own and calls ``begin`` and ``end_fast``.
    lock: Any = None

    @abc.abstractmethod
    def begin(self, model: Any = None) -> Any:
        """Start counting a window in the calling thread; returns the token ``end`` takes.

        Args:
            model: The module the window runs (counted after the window), or None to count inline
                (which the meter asks only when it measures no energy).
        """

    @abc.abstractmethod
    def end(self, token: Any) -> Any:
        """Close a window; returns a result with ``flops`` (int or None), ``uncounted_ops``, ``warnings``
        and ``shadow_s`` (seconds of counting work done here, after the window's closing energy reading)."""

    def end_fast(self, token: Any) -> Any:
        """Close a window whose count is at hand (cached, no warnings, no counting work left) and return its
        result, or return None and leave the window open for ``end``. The default has nothing at hand."""
        return None

    def begin_locked(self, model: Any) -> Any:
        """``begin(model)`` for a caller holding ``lock``, or None where it cannot begin without taking the lock
        itself (the caller then calls ``begin``)."""
        return None

    def end_fast_locked(self, token: Any) -> Any:
        """``end_fast`` for a caller holding ``lock``."""
        return None

    def counts_on_end(self, token: Any) -> bool:
        """Whether closing the window will do counting work (a shadow pass): a caller with a longer window
        open around it can pause that one first. The default cannot tell, so it says yes."""
        return True

    def close(self) -> None:
        """Release what the counter holds (hooks)."""


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
    #: True when its domains may duplicate or contain other hardware counters' (a whole-system meter, a socket
    #: counter that RAPL reads too): a default selection takes it only where no other hardware counter is
    #: available. Named explicitly, it is always used.
    overlaps: ClassVar[bool] = False
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
    """Calls ``fn`` about every ``period_s`` seconds, but only while started (i.e. while a window is open).

    Every poller in the process shares one daemon scheduler thread, created on the first ``start()``:
    a meter (or a ``measure()`` block) adds no thread of its own, and opening and closing a window costs
    a flag under a lock. ``stop()`` only clears the flag; the scheduler drops a stopped poller when its
    next poll falls due, so back-to-back windows never wake the scheduler. A poll may therefore come
    earlier than ``period_s`` after a ``start()``, never later (give or take the scheduler's latency and
    the other pollers' calls, which run one at a time). ``close()`` returns once no call of ``fn`` is
    running.
    """

    import time as _time  # a class attribute: the rest of base.py has no use for it

    _monotonic = staticmethod(_time.monotonic)
    #: The shared scheduler's state, guarded by ``_cond``.
    _cond = threading.Condition()
    _thread: "threading.Thread | None" = None
    _due: "dict[Poller, float]" = {}  # scheduled pollers -> monotonic time of their next poll
    _wake_s = float("inf")  # when the scheduler next wakes by itself (inf: only on a notify)
    _calling: "Poller | None" = None  # the poller whose fn runs now

    def __init__(self, fn: Callable[[], None], period_s: float, name: str) -> None:
        self._fn = fn
        self.period_s = period_s
        self.name = name
        self._active = False
        self._closed = False
        #: The exception ``fn`` raised, which stopped this poller; None while it has not.
        self.error: BaseException | None = None
        self._error_taken = False

    @property
    def running(self) -> bool:
        """True while polling (between ``start()`` and ``stop()``)."""
        thread = Poller._thread
        return self._active and thread is not None and thread.is_alive()

    def start(self) -> None:
        """Begin polling (idempotent).

        While the poller is still scheduled since an earlier start (no poll fell due since its ``stop()``),
        this sets a flag and takes no lock: the scheduler, which drops a stopped poller under its lock,
        looks at the flag again after dropping it and polls at once where it was set meanwhile.
        """
        if self._closed:
            return
        self._active = True
        cls = Poller
        if self in cls._due:
            return  # still scheduled: its next poll comes early, which is safe
        with cls._cond:
            if self._closed:
                self._active = False
                return
            if self in cls._due:
                return
            due_s = cls._monotonic() + self.period_s
            cls._due[self] = due_s
            if cls._thread is None or not cls._thread.is_alive():
                cls._thread = threading.Thread(target=cls._run, name="energymeter-poller", daemon=True)
                cls._thread.start()
            elif due_s < cls._wake_s:
                cls._cond.notify_all()

    def stop(self) -> None:
        """Stop polling (idempotent); nothing wakes the scheduler.

        No lock: the scheduler reads the flag under its lock, and a poll that starts just before the flag
        clears is one early poll, which is harmless.
        """
        self._active = False

    def close(self) -> None:
        """Stop polling for good; waits for a call of ``fn`` that is running now (unless called from it)."""
        cls = Poller
        with cls._cond:
            self._active = False
            self._closed = True
            cls._due.pop(self, None)
            while cls._calling is self and threading.current_thread() is not cls._thread:
                cls._cond.wait()

    @classmethod
    def _run(cls) -> None:
        cond = cls._cond
        while True:
            with cond:
                while True:
                    now_s = cls._monotonic()
                    poller = None
                    for candidate, due_s in list(cls._due.items()):
                        if due_s > now_s:
                            continue
                        if candidate._active:
                            poller = candidate
                            break
                        del cls._due[candidate]  # stopped since its last start: unschedule
                        if candidate._active:  # started again meanwhile (start() sets the flag unlocked): poll now
                            poller = candidate
                            break
                    if poller is not None:
                        break
                    cls._wake_s = min(cls._due.values(), default=float("inf"))
                    cond.wait(None if cls._wake_s == float("inf") else cls._wake_s - now_s)
                cls._wake_s = float("-inf")  # busy: a start() need not notify
                cls._due[poller] = now_s + poller.period_s
                cls._calling = poller
            try:
                poller._fn()
            except Exception as exc:  # noqa: BLE001 - reported, and only this poller stops
                poller._fail(exc)
            finally:
                with cond:
                    cls._calling = None
                    cond.notify_all()

    def take_error(self) -> str | None:
        """The error that stopped this poller, in words, the first time it is asked for; else None.

        A session calls it on each read and fails the domains that depended on the poller once.
        """
        if self.error is None:
            return None  # the common case, without the scheduler's lock (a read before the error sees it next time)
        with Poller._cond:
            if self._error_taken:
                return None
            self._error_taken = True
            return f"{type(self.error).__name__}: {self.error}"

    def _fail(self, exc: BaseException) -> None:
        """Stop a poller whose ``fn`` raised, and report it as an uncaught thread exception would be."""
        with Poller._cond:
            self._active = False
            self._closed = True
            Poller._due.pop(self, None)
        self.error = exc
        threading.excepthook(threading.ExceptHookArgs((type(exc), exc, exc.__traceback__, Poller._thread)))
