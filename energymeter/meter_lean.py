"""The meter's lean window paths, bound in place of the general ones when a meter opens (see ``Meter``).

* A meter of one energy session that shares its lock and no counter: ``begin_lean`` / ``end_lean`` take that
  one lock per edge and a fast reading (integer microjoules); the window is filed as a tuple.
* A meter of an operation counter alone (``Meter(["flops"])``, ``measure(["flops"], model=net)``):
  ``begin_counted`` / ``end_counted`` take the meter's lock for its count of open windows and hand the
  window to the counter; a window whose count the counter has at hand (``WindowCounter.end_fast``) becomes
  its ``Measurement`` without the general ``finish``.
"""

from __future__ import annotations

import sys
import time
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from .measurement import Measurement
from .observer import counting_s
from .session_plans import failed_reading
from .window_parts import NOT_COUNTED, Window, cuda_sync, finish, lean_result

if TYPE_CHECKING:
    from .meter import Meter

_new_window = object.__new__
_wall, _monotonic = time.time, time.monotonic
_modules = sys.modules
_EMPTY: Any = MappingProxyType({})
_trusted = Measurement._trusted


def begin_lean(self: "Meter", name: str, *, model: Any = None) -> None:
    """``begin_window`` of a lean meter: the window is read and filed under one lock, whole, as
    (start wall time, start monotonic time, opening reading, seconds of FLOP counting so far)."""
    if self._edge_sync and "torch" in _modules:  # no torch imported: no CUDA work can be queued
        cuda_sync()
    lock = self._lock  # acquire/release: half the cost of a with statement
    lock.acquire()
    try:
        if self._closed:
            raise RuntimeError("this Meter is closed")
        if name in self._windows:
            raise ValueError(f"window {name!r} is already open")
        if self._open == 0:
            self._activate()
        self._open += 1
        start_wall_s, start_mono_s = _wall(), _monotonic()
        try:
            reading = self._read_locked()  # type: ignore[misc]
        except Exception as exc:  # noqa: BLE001 - the session's domains fail for this window
            reading = failed_reading(self._single.domains, exc)  # type: ignore[union-attr]
        except BaseException:
            self._release_locked()
            raise
        self._windows[name] = (start_wall_s, start_mono_s, reading, counting_s())
    finally:
        lock.release()


def end_lean(self: "Meter", name: str) -> Measurement:
    """``end_window`` of a lean meter (see ``begin_lean``): one lock, then the Measurement."""
    if self._edge_sync and "torch" in _modules:
        cuda_sync()
    lock = self._lock
    lock.acquire()
    try:
        entry = self._windows.pop(name, None)
        if entry is None:
            raise KeyError(f"no open window named {name!r}")
        self._open -= 1  # first: an interrupt in the read below leaves the count right
        if self._open == 0:
            self._deactivate()
        try:
            end = self._read_locked()  # type: ignore[misc]
        except Exception as exc:  # noqa: BLE001 - the session's domains fail for this window
            end = failed_reading(self._single.domains, exc)  # type: ignore[union-attr]
        end_mono_s = _monotonic()
    finally:
        lock.release()
    start_wall_s, start_mono_s, reading, counted_s = entry
    if counting_s() == counted_s:  # no FLOP counting ran inside (the common case): the lean Measurement
        result = lean_result(self, name, start_wall_s, start_mono_s, reading, end, end_mono_s)
        if result is not None:
            return result
    window = _new_window(Window)
    window.start_wall_s, window.start_mono_s, window.readings = start_wall_s, start_mono_s, reading
    window.count_token, window.shadow_s = NOT_COUNTED, counted_s
    return finish(self, window, name, end, end_mono_s)


def begin_counted(self: "Meter", name: Any, model: Any, register: bool = False) -> Window:
    """``Meter._begin`` of a meter with an operation counter and no energy session: one lock (the counter's,
    where it shares it) for the meter's count of open windows and the counter's window."""
    if self._edge_sync and "torch" in _modules:
        cuda_sync()
    window = _new_window(Window)  # no readings, no shadow time: finish reads neither without a session
    if register:  # filed under its name before it is complete: end_window and counts_on_end read these
        window.start_mono_s = 0.0  # 0.0 until the counter has begun: end_window leaves such a window alone
        window.count_token = NOT_COUNTED
    begin_locked = self._counter_begin_locked
    token = None
    lock = self._lock  # acquire/release: half the cost of a with statement
    lock.acquire()
    try:
        if register or self._closed:
            self._file_locked(name, window, register)
        self._open += 1
        if begin_locked is not None and model is not None:
            try:
                token = begin_locked(model)
            except BaseException:
                self._abandon_locked(name, register)
                raise
    finally:
        lock.release()
    if token is None:  # the counter does not share its lock, or cannot begin under it
        try:
            token = self._counter.begin(model)  # type: ignore[union-attr]
        except BaseException:
            with lock:
                self._abandon_locked(name, register)
            raise
    window.count_token = token
    window.start_wall_s = _wall()
    window.start_mono_s = _monotonic()
    return window


def end_counted(self: "Meter", window: Window, name: Any) -> Measurement:
    """``Meter._end`` of a meter with an operation counter and no energy session (one lock, as at begin)."""
    if self._edge_sync and "torch" in _modules:
        cuda_sync()
    end_mono_s = _monotonic()
    end_fast_locked = self._counter_end_fast_locked
    result = None
    lock = self._lock
    lock.acquire()
    try:
        self._open -= 1
        if end_fast_locked is not None:
            result = end_fast_locked(window.count_token)
    finally:
        lock.release()
    if result is None:  # finish asks the counter for a fast result first, then ends the window the whole way
        return finish(self, window, name, (), end_mono_s)
    return _trusted(name, end_mono_s - window.start_mono_s, _EMPTY, self._domains_proxy, result.flops,
                    result.uncounted_ops, self._base_warnings, window.start_wall_s, _EMPTY)
