"""Windows over a set of backends: ``Meter`` (begin/end by name); ``measure()`` lives in ``energymeter.shared``.

A meter opens each backend's session once. Every window reads every session at its start and end,
so windows may nest, overlap and run on several threads while sharing the same counters.

The meter keeps its own work out of the joules it reports:

* FLOPs are never counted inside an energy window. A window that names its module (``model=net``)
  records the module's calls through a recording ``forward`` and is counted on a shadow pass *after* the closing
  energy reading (see ``energymeter.backends.flops``); a window without ``model=`` is counted only by
  a meter that measures no energy. Where a shadow pass ran while another window was open (of any meter
  in the process: ``energymeter.observer``), that window's ``warnings`` say how many seconds of
  counting its joules contain.
* ``measure()`` takes its windows on a meter shared by every ``measure()`` with the same backends and
  options in the process (opened on first use, at most ``POOL_SIZE`` of them, closed at exit), so a
  ``with measure(...)`` block costs one window, not a meter. Background pollers share one scheduler
  thread (``energymeter.backends.base.Poller``): no thread is started per meter or per window.
* What can be done once (option checks, domain declarations) is done when the meter opens. A meter of one
  session that shares its lock (``EnergySession.lock``) and no counter is *lean*: each window edge takes
  that one lock, reads integer microjoules (``read_fast_locked``) and the window's joules are their
  difference, converted once. A meter of an operation counter alone hands each window to the counter, which
  returns a count it has at hand at once (``energymeter.meter_lean``).

An energy session (``EnergySession``) is read at both edges of every window and declares its domains
(``energymeter.domains.Domain``); an operation counter (``Backend.kind == OPERATION_COUNTER``, a
``WindowCounter``) counts each window itself, after the closing energy readings. Two sessions that
report one domain name are refused when the meter opens.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from types import MappingProxyType, MethodType
from typing import Any, Hashable, Iterator, Mapping, Sequence

from .backends.base import OPERATION_COUNTER, Backend, EnergySession, WindowCounter
from .characterise import characterise_plans
from .domains import Domain
from .measurement import Measurement
from .observer import counting_s
from .meter_lean import begin_counted, begin_lean, end_counted, end_lean
from .session_plans import SessionPlan, failed_reading, merged_declarations, read_plan
from .timeline import check_period, record_timelines
from .window_parts import NOT_COUNTED, Window, cuda_sync, finish, gpu_free_torch, lean_result
from .selection import MISSING_RAISE, MISSING_SKIP, _check_missing, _select  # noqa: F401 (re-exported)

_new_window = object.__new__
_wall, _monotonic = time.time, time.monotonic
_modules = sys.modules


class Meter:
    """Measures named windows over a set of backends.

    Args:
        backends: Backend names (see ``energymeter.backends.names()``); None means the default
            selection (``energymeter.backends.default_selection``): every available hardware counter,
            a model only where no counter covers its device, the FLOP counter; never a simulator.
        sync: Synchronise CUDA at window edges when torch has initialised CUDA.
        missing: For named backends that cannot run here: ``"raise"`` (BackendUnavailable) or
            ``"skip"`` (left out; ``skipped`` and every window's ``warnings`` say which and why).
        timeline_period_s: Keep each window's power over time, sampled about this often (s), in
            ``Measurement.timeline`` (see ``energymeter.timeline``); None (the default) keeps none.
        characterise: Time each hardware counter's updates once now (``energymeter.characterise``, up to ~2 s),
            keep the figures in ``characterisation`` and warn windows too short for them.
        **options: Backend options (``powercap_root``, ``nvml_module``, ``sample_period_s``, ...).

    Raises:
        UnknownBackend: a name that is not registered.
        BackendUnavailable: a named backend that cannot run here (the message says why), unless
            ``missing="skip"``.
        TypeError: an option no backend understands.
        ValueError: ``missing`` is neither ``"raise"`` nor ``"skip"``.
        DomainConflict: two backends report one domain name (the message names both and the domain);
            every session opened so far is closed.
    """

    def __init__(self, backends: Sequence[str] | None = None, *, sync: bool = True, missing: str = MISSING_RAISE,
                 timeline_period_s: float | None = None, characterise: bool = False, **options: Any) -> None:
        if isinstance(backends, str):
            backends = [backends]
        _check_missing(missing)
        timeline_period_s = None if timeline_period_s is None else check_period(timeline_period_s)
        self.sync = sync  # also sets _edge_sync
        #: The Backend objects this meter opened a session of, in order (the selection after ``missing=``).
        self.opened_backends, self.skipped = _select(backends, options, missing)
        self._energy: list[EnergySession] = []
        self._plans: list[SessionPlan] = []
        self._counter: WindowCounter | None = None
        self._lock = threading.Lock()
        self._windows: dict[Hashable, Any] = {}  # name -> Window (a lean meter: its tuple, see begin_window)
        self._open = 0  # windows open now, named or not
        self._closed = False
        # A counter's methods for a caller holding its lock, where the meter shares it (see begin_counted).
        self._counter_begin_locked: Any = None
        self._counter_end_fast_locked: Any = None
        self._base_warnings = tuple(f"{name}: skipped: {reason}" for name, reason in self.skipped.items())
        try:
            for backend in self.opened_backends:
                self._open_session(backend)
            declarations = merged_declarations(self._plans)
            #: Domain to its counter's figures (``energymeter.counters.CounterCharacter``); empty unless characterised.
            self.characterisation = characterise_plans(self._plans) if characterise else MappingProxyType({})
        except BaseException:
            self.close()
            raise
        self._single = self._plans[0] if len(self._plans) == 1 else None
        # One session sharing its lock and a read for a caller holding it: each window edge takes one lock.
        self._read_locked = None
        if self._single is not None and self._single.session.lock is not None:
            self._read_locked, self._lock = self._single.session.read_fast_locked, self._single.session.lock
            self._window_warnings = self._single.session.window_warnings
        self._lean = self._read_locked is not None and self._counter is None  # see the module docstring
        bind = MethodType
        if self._lean:  # the lean methods in place of the general ones: no test or call between
            self.begin_window, self.end_window = bind(begin_lean, self), bind(end_lean, self)  # type: ignore
        elif self._counter is not None and not self._energy:
            self._begin, self._end = bind(begin_counted, self), bind(end_counted, self)  # type: ignore
            if self._counter.lock is not None:  # the counter's lock is the meter's: one lock per window edge
                self._lock = self._counter.lock
                self._counter_begin_locked = self._counter.begin_locked
                self._counter_end_fast_locked = self._counter.end_fast_locked
        if len(self._energy) == 1:  # its own methods: one call fewer at every first window and last close
            self._activate, self._deactivate = self._energy[0].activate, self._energy[0].deactivate
        self._domains_proxy = MappingProxyType(declarations)
        self._provenance_proxy = MappingProxyType({n: d.provenance for n, d in declarations.items()})
        if timeline_period_s is not None:
            record_timelines(self, timeline_period_s)

    def _open_session(self, backend: Backend) -> None:
        """Open one backend's session and file it by the protocol its kind speaks."""
        session = backend.open()
        if backend.kind == OPERATION_COUNTER:
            if self._counter is not None:
                session.close()
                raise ValueError(f"{backend.name}: a meter runs one operation counter; "
                                 f"{type(self._counter).__name__} is already open")
            if not isinstance(session, WindowCounter):
                session.close()
                raise TypeError(f"{backend.name}: an operation counter's session must be a WindowCounter, "
                                f"not {type(session).__name__}")
            self._counter = session
            return
        self._energy.append(session)  # before its plan: close() must reach it if the plan is refused
        self._plans.append(SessionPlan(session, backend))

    @property
    def domains(self) -> Mapping[str, Domain]:
        """Domain to its declaration, over every energy session (read-only)."""
        return self._domains_proxy

    @property
    def provenance(self) -> dict[str, str]:
        """Domain to provenance over every open energy session."""
        return dict(self._provenance_proxy)

    # -- the window path: _begin / _end; the named API and measure() sit on top ----------------
    def _begin(self, name: Any, model: Any, register: bool = False) -> Window:
        """Open a window: one lock, the opening readings, then the FLOP window (after the readings).

        With one session whose lock the meter shares (``fused``), the readings are taken under that one lock.
        """
        window = _new_window(Window)
        window.start_mono_s = 0.0  # 0.0 until the opening readings are taken
        window.count_token = NOT_COUNTED  # the operation counter's token while it counts this window
        fused = self._read_locked
        if fused is not None and self._edge_sync:
            cuda_sync()  # outside the lock: it may wait long
        with self._lock:
            self._file_locked(name, window, register)
            if self._open == 0:
                self._activate()
            self._open += 1
            window.shadow_s = counting_s()
            if fused is not None:
                # Under the lock nobody sees the window until it is complete: the stores' order is free.
                window.start_wall_s = _wall()
                window.start_mono_s = _monotonic()
                try:
                    window.readings = fused()
                except Exception as exc:  # noqa: BLE001 - the session's domains fail for this window
                    window.readings = failed_reading(self._single.domains, exc)  # type: ignore[union-attr]
                except BaseException:
                    self._abandon_locked(name, register)
                    raise
                if self._counter is None:
                    return window
        try:
            if fused is None:
                if self._edge_sync:
                    cuda_sync()
                # The clock is read before the opening readings and after the closing ones, so the duration
                # spans everything the energy figures span (reads of several sessions take time).
                start_wall_s, start_mono_s = _wall(), _monotonic()
                window.readings = [read_plan(p) for p in self._plans] if self._plans else []
                window.start_wall_s = start_wall_s
                window.start_mono_s = start_mono_s  # set last: non-zero marks the window open (see end_window)
            if self._counter is not None and (model is not None or not self._plans):
                window.count_token = self._counter.begin(model)
        except BaseException:
            with self._lock:
                self._abandon_locked(name, register)
            raise
        return window

    def _file_locked(self, name: Any, window: Any, register: bool) -> None:
        """Refuse a closed meter; file a named window (``register``) unless its name is taken (lock held)."""
        if self._closed:
            raise RuntimeError("this Meter is closed")
        if register:
            if name in self._windows:
                raise ValueError(f"window {name!r} is already open")
            self._windows[name] = window  # start_mono_s 0.0 marks it as still opening

    def _abandon_locked(self, name: Any, register: bool) -> None:
        """Undo a window that failed to open (call with the lock held)."""
        if register:
            self._windows.pop(name, None)
        self._release_locked()

    def _release_locked(self) -> None:
        """One window fewer; park background pollers once none is open (call with the lock held)."""
        self._open -= 1
        if self._open == 0:
            self._deactivate()

    def _activate(self) -> None:
        """Start every session's background work (the first window opens; call with the lock held)."""
        for session in self._energy:
            session.activate()

    def _deactivate(self) -> None:
        """Park every session's background work (the last window closed; call with the lock held)."""
        for session in self._energy:
            session.deactivate()

    def _end(self, window: Window, name: Any) -> Measurement:
        """Close a window opened by ``_begin(register=False)``: the closing readings, then ``finish``."""
        fused = self._read_locked
        if self._edge_sync and "torch" in _modules:  # no torch imported: no CUDA work can be queued
            cuda_sync()
        if fused is not None:
            with self._lock:
                self._release_locked()  # first: an interrupt in the read below leaves the count right
                end = self._fused_read(fused)
                end_mono_s = _monotonic()
            if self._counter is None:
                return (lean_result(self, name, window.start_wall_s, window.start_mono_s, window.readings, end,
                                    end_mono_s) or finish(self, window, name, end, end_mono_s))
        else:
            try:
                end = [read_plan(p) for p in self._plans] if self._plans else []
                end_mono_s = _monotonic()
            finally:
                with self._lock:
                    self._release_locked()
        return finish(self, window, name, end, end_mono_s)

    def _fused_read(self, fused: Any) -> Any:
        try:
            return fused()
        except Exception as exc:  # noqa: BLE001 - the session's domains fail for this window
            return failed_reading(self._single.domains, exc)  # type: ignore[union-attr]

    def begin_window(self, name: str, *, model: Any = None) -> None:
        """Open a window.

        Args:
            name: Unique among this meter's open windows.
            model: The ``torch.nn.Module`` the window runs, for FLOP counting outside the window's joules.

        Raises:
            ValueError: a window of that name is already open.
            RuntimeError: the meter is closed.
        """
        self._begin(name, model, True)

    def end_window(self, name: str) -> Measurement:
        """Close a window and return what it measured.

        Raises:
            KeyError: no open window has that name.
        """
        fused = self._read_locked
        if self._edge_sync and "torch" in _modules:  # no torch imported: no CUDA work can be queued
            cuda_sync()
        with self._lock:
            # Claimed here, so two threads ending the same window cannot both read it.
            window = self._windows.pop(name, None)
            if window is None or window.start_mono_s == 0.0:
                if window is not None:  # still opening in another thread: put it back
                    self._windows[name] = window
                raise KeyError(f"no open window named {name!r}")
            self._open -= 1  # first: an interrupt in the read below leaves the count right
            if self._open == 0:
                self._deactivate()
            if fused is not None:
                try:
                    end = fused()
                except Exception as exc:  # noqa: BLE001 - the session's domains fail for this window
                    end = failed_reading(self._single.domains, exc)  # type: ignore[union-attr]
                end_mono_s = _monotonic()
        if fused is None:  # (a lean meter ends its windows in end_lean: here a counter is open or no lock is shared)
            end = [read_plan(p) for p in self._plans]
            end_mono_s = _monotonic()
        return finish(self, window, name, end, end_mono_s)

    def counts_on_end(self, name: str) -> bool:
        """Whether ending the open window ``name`` will count FLOPs on a shadow pass (a call of its model not
        counted before), so that a longer window open around it can be paused first.

        Raises:
            KeyError: no open window has that name.
        """
        window = self._windows.get(name)
        if window is None:
            raise KeyError(f"no open window named {name!r}")
        token = getattr(window, "count_token", NOT_COUNTED)  # a lean meter files tuples: it counts nothing
        return token is not NOT_COUNTED and self._counter is not None and self._counter.counts_on_end(token)

    @contextlib.contextmanager
    def window(self, name: str, *, model: Any = None) -> Iterator["WindowHandle"]:
        """``with meter.window("step") as w: ...``; afterwards ``w.result`` is the Measurement.

        The window is closed even when the block raises; the exception still propagates.
        """
        handle = WindowHandle()
        self.begin_window(name, model=model)
        try:
            yield handle
        finally:
            handle.result = self.end_window(name)

    @property
    def sync(self) -> bool:
        """Whether window edges synchronise CUDA (settable; taken from the constructor's ``sync``)."""
        return self._sync

    @sync.setter
    def sync(self, value: bool) -> None:
        self._sync = value
        # What the edges read: not where the torch imported now is built for no GPU (no check at every edge).
        self._edge_sync = bool(value) and not gpu_free_torch()

    @property
    def idle(self) -> bool:
        """True when no window is open."""
        return self._open == 0

    def close(self) -> None:
        """Close every session. Open windows are abandoned."""
        with self._lock:
            self._closed = True
            self._windows.clear()
        for session in self._energy:
            session.close()
        if self._counter is not None:
            self._counter.close()

    def __enter__(self) -> "Meter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class WindowHandle:
    """Holds a window's Measurement once the window has closed."""

    result: Measurement | None = None
