"""Windows over a set of backends: ``Meter`` (begin/end by name); ``measure()`` lives in ``energymeter.shared``.

A meter opens each backend's session once. Every window reads every session at its start and end,
so windows may nest, overlap and run on several threads while sharing the same counters.

The meter keeps its own work out of the joules it reports:

* FLOPs are never counted inside an energy window. A window that names its module (``model=net``)
  records the module's calls through one pre-hook and is counted on a shadow pass *after* the closing
  energy reading (see ``energymeter.backends.flops``); a window without ``model=`` is counted only by
  a meter that measures no energy. Where a shadow pass ran while another window of the meter was
  open, that window's ``warnings`` say how many seconds of counting its joules contain.
* ``measure()`` takes its windows on a meter shared by every ``measure()`` with the same backends and
  options in the process (opened on first use, at most ``POOL_SIZE`` of them, closed at exit), so a
  ``with measure(...)`` block costs one window, not a meter. Background pollers share one scheduler
  thread (``energymeter.backends.base.Poller``): no thread is started per meter or per window.
* What can be done once (option checks, each session's domain declarations) is done when the meter
  opens; a window reads the sessions and builds one ``Measurement``.

One protocol per kind of backend: an energy session (``EnergySession``) is read at both edges of every
window and declares its domains (``energymeter.domains.Domain``); an operation counter
(``Backend.kind == OPERATION_COUNTER``, a ``WindowCounter``) counts each window itself, after the closing
energy readings. Two sessions that report one domain name are refused when the meter opens: one
figure would otherwise replace the other.
"""

from __future__ import annotations

import contextlib
from operator import sub as _sub
import sys
import threading
import time
from types import MappingProxyType
from typing import Any, Hashable, Iterator, Mapping, Sequence

from .backends.base import OPERATION_COUNTER, Backend, EnergySession, WindowCounter
from .domains import Domain
from .measurement import Measurement
from .session_plans import SessionPlan, difference, failed_reading, merged_declarations, read_plan
from .selection import MISSING_RAISE, MISSING_SKIP, _check_missing, _select  # noqa: F401 (re-exported)

_Proxy = MappingProxyType
_EMPTY: Mapping[str, Any] = MappingProxyType({})
_trusted = Measurement._trusted
_NOT_COUNTED = object()  # a window the operation counter does not count (any token, None included, is valid)
_new_window = object.__new__
_wall, _monotonic = time.time, time.monotonic


class _Window:
    """One open window; every slot is set by ``Meter._begin`` (no ``__init__``: one call fewer per window)."""

    __slots__ = ("start_mono_s", "start_wall_s", "readings", "count_token", "shadow_s")


def _cuda_sync() -> None:
    """Wait for queued CUDA work so it lands inside the window it belongs to."""
    torch = sys.modules.get("torch")
    if torch is None:
        return  # torch never imported: no CUDA work can be queued
    cuda = torch.cuda
    if cuda.is_initialized():  # cheap, and implies is_available()
        for index in range(cuda.device_count()):
            cuda.synchronize(index)


class Meter:
    """Measures named windows over a set of backends.

    Args:
        backends: Backend names (see ``energymeter.backends.names()``); None means the default
            selection (``energymeter.backends.default_selection``): every available hardware counter,
            a model only where no counter covers its device, the FLOP counter; never a simulator.
        sync: Synchronise CUDA at window edges when torch has initialised CUDA.
        missing: For named backends that cannot run here: ``"raise"`` (BackendUnavailable) or
            ``"skip"`` (left out; ``skipped`` and every window's ``warnings`` say which and why).
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
                 **options: Any) -> None:
        if isinstance(backends, str):
            backends = [backends]
        _check_missing(missing)
        self.sync = sync
        #: The Backend objects this meter opened a session of, in order (the selection after ``missing=``).
        self.opened_backends, self.skipped = _select(backends, options, missing)
        self._energy: list[EnergySession] = []
        self._plans: list[SessionPlan] = []
        self._counter: WindowCounter | None = None
        self._lock = threading.Lock()
        self._windows: dict[Hashable, _Window | None] = {}
        self._open = 0  # windows open now, named or not
        self._shadow_s = 0.0  # seconds of FLOP shadow passes so far (see the module docstring)
        self._closed = False
        self._base_warnings = tuple(f"{name}: skipped: {reason}" for name, reason in self.skipped.items())
        try:
            for backend in self.opened_backends:
                self._open_session(backend)
            declarations = merged_declarations(self._plans)
        except BaseException:
            self.close()
            raise
        self._single = self._plans[0] if len(self._plans) == 1 else None
        #: One session that offers its lock and a read for a caller holding it: the meter shares that lock,
        #: so each window edge takes one lock (its bookkeeping and the reading under it).
        self._read_locked = None
        if self._single is not None and self._single.session.lock is not None:
            self._read_locked = self._single.session.read_fast_locked
            self._lock = self._single.session.lock
        self._domains_proxy = MappingProxyType(declarations)
        self._provenance_proxy = MappingProxyType({n: d.provenance for n, d in declarations.items()})

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
    def _begin(self, name: Any, model: Any, register: bool = False) -> _Window:
        """Open a window: one lock, the opening readings, then the FLOP window (after the readings).

        With one session whose lock the meter shares (``fused``), the readings are taken under that one lock.
        """
        window = _new_window(_Window)
        window.start_mono_s = 0.0  # 0.0 until the opening readings are taken
        window.count_token = _NOT_COUNTED  # the operation counter's token while it counts this window
        fused = self._read_locked
        if fused is not None and self.sync:
            _cuda_sync()  # outside the lock: it may wait long
        with self._lock:
            if self._closed:
                raise RuntimeError("this Meter is closed")
            if register:
                if name in self._windows:
                    raise ValueError(f"window {name!r} is already open")
                self._windows[name] = window  # start_mono_s 0.0 marks it as still opening
            if self._open == 0:
                for session in self._energy:
                    session.activate()
            self._open += 1
            window.shadow_s = self._shadow_s
            if fused is not None:
                start_wall_s, start_mono_s = _wall(), _monotonic()
                try:
                    window.readings = fused()
                except Exception as exc:  # noqa: BLE001 - the session's domains fail for this window
                    window.readings = failed_reading(self._single.domains, exc)  # type: ignore[union-attr]
                except BaseException:
                    self._abandon_locked(name, register)
                    raise
                window.start_wall_s = start_wall_s
                window.start_mono_s = start_mono_s
        try:
            if fused is None:
                if self.sync:
                    _cuda_sync()
                # The clock is read before the opening readings and after the closing ones, so the duration
                # spans everything the energy figures span (reads of several sessions take time).
                start_wall_s, start_mono_s = _wall(), _monotonic()
                window.readings = [read_plan(p) for p in self._plans]
                window.start_wall_s = start_wall_s
                window.start_mono_s = start_mono_s  # set last: non-zero marks the window open (see end_window)
            if self._counter is not None and (model is not None or not self._plans):
                window.count_token = self._counter.begin(model)
        except BaseException:
            with self._lock:
                self._abandon_locked(name, register)
            raise
        return window

    def _abandon_locked(self, name: Any, register: bool) -> None:
        """Undo a window that failed to open (call with the lock held)."""
        if register:
            self._windows.pop(name, None)
        self._release_locked()

    def _release_locked(self) -> None:
        """One window fewer; park background pollers once none is open (call with the lock held)."""
        self._open -= 1
        if self._open == 0:
            for session in self._energy:
                session.deactivate()

    def _end(self, window: _Window, name: Any) -> Measurement:
        """Close a window opened by ``_begin(register=False)``: the closing readings, then ``_finish``."""
        fused = self._read_locked
        if self.sync:
            _cuda_sync()
        if fused is not None:
            with self._lock:
                self._release_locked()  # first: an interrupt in the read below leaves the count right
                end = self._fused_read(fused)
                end_mono_s = _monotonic()
        else:
            try:
                end = [read_plan(p) for p in self._plans]
                end_mono_s = _monotonic()
            finally:
                with self._lock:
                    self._release_locked()
        return self._finish(window, name, end, end_mono_s)

    def _fused_read(self, fused: Any) -> Any:
        try:
            return fused()
        except Exception as exc:  # noqa: BLE001 - the session's domains fail for this window
            return failed_reading(self._single.domains, exc)  # type: ignore[union-attr]

    def _finish(self, window: _Window, name: Any, end: Any, end_mono_s: float) -> Measurement:
        """FLOPs (after the closing energy readings, so outside the joules), then one Measurement."""
        duration_s = end_mono_s - window.start_mono_s
        token = window.count_token
        flop_result = self._counter.end(token) if token is not _NOT_COUNTED else None
        warnings = self._base_warnings
        single = self._single
        if single is not None:  # the common case: one session, no merging
            before = window.readings if self._read_locked is not None else window.readings[0]
            if self._read_locked is None:
                end = end[0]
            if type(end) is tuple and type(before) is tuple and end[0] is before[0]:
                # Two fast readings with one state: integer microjoules, converted once (see difference()).
                energy_j = {d: uj / 1e6 for d, uj in zip(single.domains, map(_sub, end[1], before[1]))}
                provenance, failed = single.provenance_proxy, None
            else:
                energy_j, provenance, failed = difference(single, before, end)
            session_warnings = single.session.window_warnings(duration_s)
            if session_warnings:
                warnings = (*warnings, *session_warnings)
        elif not self._plans:
            energy_j, provenance, failed = {}, _EMPTY, {}
        else:
            energy_j, provenance, failed = {}, {}, {}
            extra: list[str] = []
            for plan, before, after in zip(self._plans, window.readings, end):
                e, p, f = difference(plan, before, after)
                energy_j.update(e)
                provenance.update(p)
                failed.update(f)
                extra += plan.session.window_warnings(duration_s)
            warnings = (*warnings, *extra)
            if not failed:
                provenance = self._provenance_proxy
        flops, uncounted = None, _EMPTY
        if flop_result is not None:
            flops, uncounted = flop_result.flops, flop_result.uncounted_ops
            warnings = (*warnings, *flop_result.warnings)
            if flop_result.shadow_s:
                with self._lock:
                    self._shadow_s += flop_result.shadow_s
        elif self._counter is not None:
            warnings = (*warnings, self._counter.not_counted_without_model)
        if self._shadow_s != window.shadow_s and self._plans:
            inside_s = self._shadow_s - window.shadow_s - (flop_result.shadow_s if flop_result is not None else 0.0)
            if inside_s > 0:
                warnings = (*warnings, f"this window's joules include {inside_s:.3f} s of FLOP counting (shadow "
                            "passes of windows that ended inside it)")
        if failed:
            return Measurement(name=name, start_time_s=window.start_wall_s, duration_s=duration_s, energy_j=energy_j,
                               flops=flops, uncounted_ops=uncounted, failed=failed, warnings=warnings,
                               domains=self._domains_proxy)
        # Every declared domain has its figure: what the checked constructor would verify was verified
        # when the meter opened, and the mappings passed are read-only views nobody else changes.
        return _trusted(name, duration_s, _Proxy(energy_j), self._domains_proxy, flops,
                        uncounted if type(uncounted) is _Proxy else _Proxy(dict(uncounted)), warnings,
                        window.start_wall_s, provenance)

    def begin_window(self, name: str, *, model: Any = None) -> None:
        """Open a window.

        Args:
            name: Unique among this meter's open windows.
            model: The ``torch.nn.Module`` the window runs, for FLOP counting outside the window's joules.

        Raises:
            ValueError: a window of that name is already open.
            RuntimeError: the meter is closed.
        """
        self._begin(name, model, register=True)

    def end_window(self, name: str) -> Measurement:
        """Close a window and return what it measured.

        Raises:
            KeyError: no open window has that name.
        """
        fused = self._read_locked
        if self.sync:
            _cuda_sync()
        with self._lock:
            # Claimed here, so two threads ending the same window cannot both read it.
            window = self._windows.pop(name, None)
            if window is None or window.start_mono_s == 0.0:
                if window is not None:  # still opening in another thread: put it back
                    self._windows[name] = window
                raise KeyError(f"no open window named {name!r}")
            self._release_locked()  # first: an interrupt in the read below leaves the count right
            if fused is not None:
                end = self._fused_read(fused)
                end_mono_s = _monotonic()
        if fused is None:
            end = [read_plan(p) for p in self._plans]
            end_mono_s = _monotonic()
        return self._finish(window, name, end, end_mono_s)

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
