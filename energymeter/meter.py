"""Windows over a set of backends: ``Meter`` (begin/end by name) and ``measure()`` (a context manager and decorator).

A meter opens each backend's session once. Every window reads every session at its start and end,
so windows may nest, overlap and run on several threads while sharing the same counters.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

from . import backends as registry
from .backends.base import Backend, EnergySession, Reading
from .backends.flops import FlopSession
from .errors import BackendUnavailable
from .measurement import Measurement

@dataclass(slots=True)
class _Window:
    name: str
    start_mono_s: float
    start_wall_s: float
    readings: dict[int, Reading]
    flop_window: Any = None


def _cuda_sync() -> None:
    """Wait for queued CUDA work so it lands inside the window it belongs to."""
    torch = sys.modules.get("torch")
    if torch is None:
        return  # torch never imported: no CUDA work can be queued
    cuda = torch.cuda
    if cuda.is_initialized():  # cheap, and implies is_available()
        for index in range(cuda.device_count()):
            cuda.synchronize(index)


def _check_options(options: dict[str, Any]) -> None:
    """Raise TypeError for an option no backend understands (imports backend classes, probes nothing)."""
    known: set[str] = set()
    for name in registry.names():
        known.update(registry.backend_class(name).options)
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"unknown meter option(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")


def _select(names: Sequence[str] | None, options: dict[str, Any]) -> list[Backend]:
    _check_options(options)

    def build(name: str) -> Backend:
        cls = registry.backend_class(name)
        if any(k in options for k in cls.options):
            return registry.create(name, options)
        return registry.default_backend(name)

    if names is not None:
        chosen = []
        for name in dict.fromkeys(names):
            backend = build(name)
            status = backend.probe()
            if not status.available:
                raise BackendUnavailable(f"{name}: {status.reason}")
            chosen.append(backend)
        return chosen
    chosen = [b for b in (build(n) for n in registry.names()) if b.probe().available]
    kept = registry.default_selection([b.name for b in chosen])
    return [b for b in chosen if b.name in kept]


class Meter:
    """Measures named windows over a set of backends.

    Args:
        backends: Backend names (see ``energymeter.backends.names()``); None means the default
            selection (``energymeter.backends.default_selection``): every available hardware counter,
            a model only where no counter covers its device, the FLOP counter; never a simulator.
        sync: Synchronise CUDA at window edges when torch has initialised CUDA.
        **options: Backend options (``powercap_root``, ``nvml_module``, ``sample_period_s``, ...).

    Raises:
        UnknownBackend: a name that is not registered.
        BackendUnavailable: a named backend that cannot run here (the message says why).
        TypeError: an option no backend understands.
    """

    def __init__(self, backends: Sequence[str] | None = None, *, sync: bool = True, **options: Any) -> None:
        if isinstance(backends, str):
            backends = [backends]
        self.sync = sync
        self.backends = _select(backends, options)
        self._energy: list[EnergySession] = []
        self._flops: FlopSession | None = None
        self._lock = threading.Lock()
        self._windows: dict[str, _Window] = {}
        self._closed = False
        try:
            for backend in self.backends:
                session = backend.open()
                if isinstance(session, FlopSession):
                    self._flops = session
                else:
                    self._energy.append(session)
        except BaseException:
            self.close()
            raise

    @property
    def provenance(self) -> dict[str, str]:
        """Domain to provenance over every open energy session."""
        merged: dict[str, str] = {}
        for session in self._energy:
            merged.update(session.provenance)
        return merged

    def _read_all(self) -> dict[int, Reading]:
        readings = {}
        for i, session in enumerate(self._energy):
            try:
                readings[i] = session.read()
            except Exception as exc:  # recorded per domain, not swallowed: the other domains must survive
                reason = f"{type(exc).__name__}: {exc}"
                readings[i] = Reading({}, {d: reason for d in session.provenance})
        return readings

    def begin_window(self, name: str, *, model: Any = None) -> None:
        """Open a window.

        Args:
            name: Unique among this meter's open windows.
            model: The ``torch.nn.Module`` the window runs, for cached FLOP counting.

        Raises:
            ValueError: a window of that name is already open.
            RuntimeError: the meter is closed.
        """
        with self._lock:
            if self._closed:
                raise RuntimeError("this Meter is closed")
            if name in self._windows:
                raise ValueError(f"window {name!r} is already open")
            if not self._windows:
                for session in self._energy:
                    session.activate()
            self._windows[name] = _Window(name, 0.0, 0.0, {})  # reserve the name
        try:
            if self.sync:
                _cuda_sync()
            window = self._windows[name]
            window.readings = self._read_all()
            window.start_wall_s = time.time()
            window.start_mono_s = time.monotonic()
            if self._flops is not None:
                window.flop_window = self._flops.begin(model)
        except BaseException:
            with self._lock:
                self._windows.pop(name, None)
                self._deactivate_if_idle()
            raise

    def _deactivate_if_idle(self) -> None:
        """Stop background pollers once no window is open (call with the lock held)."""
        if not self._windows:
            for session in self._energy:
                session.deactivate()

    def end_window(self, name: str) -> Measurement:
        """Close a window and return what it measured.

        Raises:
            KeyError: no open window has that name.
        """
        with self._lock:
            # Claimed here, so two threads ending the same window cannot both read it.
            window = self._windows.pop(name, None)
            if window is None or window.start_mono_s == 0.0:
                if window is not None:  # still opening in another thread: put it back
                    self._windows[name] = window
                raise KeyError(f"no open window named {name!r}")
        try:
            if self.sync:
                _cuda_sync()
            end_mono_s = time.monotonic()
            flop_result = (self._flops.end(window.flop_window)
                           if self._flops and window.flop_window is not None else None)
            end = self._read_all()
        finally:
            with self._lock:
                self._deactivate_if_idle()
        duration_s = end_mono_s - window.start_mono_s
        energy, provenance, failed, warnings, devices = {}, {}, {}, [], {}
        for i, session in enumerate(self._energy):
            before, after = window.readings[i], end[i]
            devices.update(session.devices)
            for domain, label in session.provenance.items():
                reason = after.failed.get(domain) or before.failed.get(domain)
                if reason is None and (domain not in after.energy_j or domain not in before.energy_j):
                    reason = "no reading"
                if reason is None and before.epochs.get(domain, 0) != after.epochs.get(domain, 0):
                    reason = "a read of this domain failed inside the window and recovered; its figure would be incomplete"
                if reason is not None:
                    failed[domain] = reason
                    continue
                energy[domain] = after.energy_j[domain] - before.energy_j[domain]
                provenance[domain] = label
            warnings.extend(session.window_warnings(duration_s))
        flops, uncounted = None, {}
        if flop_result is not None:
            flops, uncounted = flop_result.flops, flop_result.uncounted_ops
            warnings.extend(flop_result.warnings)
        return Measurement(name=name, start_time_s=window.start_wall_s, duration_s=duration_s, energy_j=energy,
                           provenance=provenance, flops=flops, uncounted_ops=uncounted, failed=failed,
                           warnings=tuple(warnings), devices=devices)

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

    def close(self) -> None:
        """Close every session. Open windows are abandoned."""
        with self._lock:
            self._closed = True
            self._windows.clear()
        for session in self._energy:
            session.close()
        if self._flops is not None:
            self._flops.close()

    def __enter__(self) -> "Meter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class WindowHandle:
    """Holds a window's Measurement once the window has closed."""

    result: Measurement | None = None


class measure(contextlib.ContextDecorator):
    """Measure a block or every call of a function.

    ``with measure() as m: step()`` then ``m.result``; or ``@measure()`` on a function, after which
    ``f.result`` is not set but the measure object's ``result`` holds the latest call's Measurement and
    ``results`` every call's (when ``keep=True``).

    Args:
        backends: Backend names, or None for every available backend.
        sync: Synchronise CUDA at window edges.
        name: Window name recorded in the Measurement.
        model: The module the block runs, for cached FLOP counting.
        meter: Use this Meter instead of opening one.
        keep: Keep every call's Measurement in ``results``.
        **options: Backend options, as for ``Meter``.
    """

    def __init__(self, backends: Sequence[str] | None = None, *, sync: bool = True, name: str = "measure",
                 model: Any = None, meter: Meter | None = None, keep: bool = False, **options: Any) -> None:
        self._backends = backends
        self._sync = sync
        self._options = options
        self.name = name
        self.model = model
        self._meter = meter
        self._owns_meter = meter is None
        self.keep = keep
        self.result: Measurement | None = None
        self.results: list[Measurement] = []
        self._count = 0
        self._lock = threading.Lock()
        self._local = threading.local()
        # Names are checked now, where the caller wrote them; hardware is opened on first use, so a
        # module-level @measure() decorator touches nothing when its module is imported.
        for backend_name in [backends] if isinstance(backends, str) else (backends or ()):
            registry.backend_class(backend_name)
        _check_options(options)

    @property
    def meter(self) -> Meter:
        """The meter windows are taken on (opened on first use when this object owns it)."""
        with self._lock:
            if self._meter is None:
                self._meter = Meter(self._backends, sync=self._sync, **self._options)
                weakref.finalize(self, self._meter.close)
            return self._meter

    def __enter__(self) -> "measure":
        with self._lock:
            self._count += 1
            key = f"{self.name}#{self._count}"
        stack = self._local.__dict__.setdefault("stack", [])
        self.meter.begin_window(key, model=self.model)
        stack.append(key)
        return self

    def __exit__(self, *exc: Any) -> bool:
        key = self._local.stack.pop()
        result = self.meter.end_window(key)
        result = dataclasses.replace(result, name=self.name)
        with self._lock:
            self.result = result
            if self.keep:
                self.results.append(result)
        return False

    def close(self) -> None:
        """Close the meter if this object opened it."""
        if self._owns_meter and self._meter is not None:
            self._meter.close()
