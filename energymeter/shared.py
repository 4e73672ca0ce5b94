"""``measure()``: a context manager and decorator whose windows are taken on meters shared across the process.

Every ``measure()`` with the same backends and options uses one ``Meter`` from a process-wide pool
(opened on first use, at most ``POOL_SIZE`` of them, closed at exit), so a ``with measure(...)`` block
costs one window, not a meter, and holds no thread or descriptor of its own.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import threading
from typing import Any, Hashable, Sequence

from . import backends as registry
from .measurement import Measurement
from .meter import Meter
from .selection import MISSING_RAISE, _check_missing, _check_options
from .timeline import check_period

#: Most meters the ``measure()`` pool keeps open at once (the least recently used idle one is closed).
POOL_SIZE = 8


# -- the measure() pool -----------------------------------------------------------------------------
_pool: "collections.OrderedDict[Hashable, tuple[Meter, dict[str, Any]]]" = collections.OrderedDict()
_pool_lock = threading.Lock()
_pool_atexit = False


def _hashable(value: Any) -> Hashable:
    try:
        hash(value)
        return value
    except TypeError:
        return ("id", id(value))  # the pool entry keeps the value alive, so the id stays its own


def _pool_key(backends: Sequence[str] | None, sync: bool, missing: str, options: dict[str, Any]) -> Hashable:
    names = None if backends is None else tuple(dict.fromkeys([backends] if isinstance(backends, str) else backends))
    return (names, sync, missing, tuple(sorted((k, _hashable(v)) for k, v in options.items())))


def shared_meter(backends: Sequence[str] | None = None, *, sync: bool = True, missing: str = MISSING_RAISE,
                 timeline_period_s: float | None = None, **options: Any) -> Meter:
    """The process-wide meter for these backends and options, opened on first use.

    ``measure()`` takes its windows here. At most ``POOL_SIZE`` meters stay open: opening another
    closes the least recently used one that has no open window. Every pooled meter is closed at exit.
    """
    global _pool_atexit
    key = (_pool_key(backends, sync, missing, options), timeline_period_s)
    with _pool_lock:
        entry = _pool.get(key)
        if entry is not None and not entry[0]._closed:
            _pool.move_to_end(key)
            return entry[0]
        meter = Meter(backends, sync=sync, missing=missing, timeline_period_s=timeline_period_s, **options)
        _pool[key] = (meter, options)
        if not _pool_atexit:
            atexit.register(close_shared_meters)
            _pool_atexit = True
        for old_key, (old, _) in list(_pool.items()):
            if len(_pool) <= POOL_SIZE:
                break
            if old is not meter and old.idle:
                del _pool[old_key]
                old.close()
        return meter


def close_shared_meters() -> None:
    """Close every meter of the ``measure()`` pool (registered with atexit on first use)."""
    with _pool_lock:
        entries = list(_pool.values())
        _pool.clear()
    for meter, _ in entries:
        meter.close()


class measure(contextlib.ContextDecorator):
    """Measure a block or every call of a function.

    ``with measure() as m: step()`` then ``m.result``; or ``@measure()`` on a function ``f``, after which
    ``f.measure.result`` holds the latest call's Measurement and ``f.results`` every call's (when
    ``keep=True``).

    Windows are taken on the process-wide meter for the same backends and options
    (``shared_meter``), opened on first use: building a ``measure()`` per block costs a window, and no
    ``measure()`` holds a thread or a descriptor of its own.

    Args:
        backends: Backend names, or None for the default selection (see ``Meter``).
        sync: Synchronise CUDA at window edges.
        name: Window name recorded in the Measurement.
        model: The module the block runs: its FLOPs are counted outside the block's joules.
        meter: Use this Meter instead of the shared one.
        keep: Keep every call's Measurement in ``results``.
        missing: ``"raise"`` or ``"skip"`` for named backends that cannot run here (see ``Meter``).
        timeline_period_s: Keep the window's power over time in ``result.timeline``, sampled about this often (s).
        **options: Backend options, as for ``Meter``.
    """

    def __init__(self, backends: Sequence[str] | None = None, *, sync: bool = True, name: str = "measure",
                 model: Any = None, meter: Meter | None = None, keep: bool = False, missing: str = MISSING_RAISE,
                 timeline_period_s: float | None = None, **options: Any) -> None:
        self._backends = backends
        if meter is not None and timeline_period_s is not None:
            raise TypeError("measure(meter=...) takes its windows on that meter: give timeline_period_s to the Meter")
        self._timeline_period_s = None if timeline_period_s is None else check_period(timeline_period_s)
        self._sync = sync
        self._missing = missing
        self._options = options
        self.name = name
        self.model = model
        self._meter = meter
        self._pooled = meter is None
        self.keep = keep
        self.result: Measurement | None = None
        self.results: list[Measurement] = []
        self._lock = threading.Lock()
        self._local = threading.local()
        # Names are checked now, where the caller wrote them; hardware is opened on first use, so a
        # module-level @measure() decorator touches nothing when its module is imported.
        for backend_name in [backends] if isinstance(backends, str) else (backends or ()):
            if backend_name not in registry.REGISTRY:
                registry.backend_class(backend_name)  # raises UnknownBackend with the known names
        _check_options(options)
        if missing is not MISSING_RAISE:
            _check_missing(missing)

    @property
    def meter(self) -> Meter:
        """The meter windows are taken on (the shared one, opened on first use, unless one was given)."""
        meter = self._meter
        if meter is None:
            with self._lock:
                if self._meter is None:
                    self._meter = shared_meter(self._backends, sync=self._sync, missing=self._missing,
                                               timeline_period_s=self._timeline_period_s, **self._options)
                meter = self._meter
        return meter

    def __enter__(self) -> "measure":
        meter = self._meter
        if meter is None or (meter._closed and self._pooled):
            # First use, or the pool closed this meter to make room: take the shared one (reopened).
            self._meter = None
            meter = self.meter
        try:
            window = meter._begin(self.name, self.model)
        except RuntimeError:
            if not (self._pooled and meter._closed):
                raise
            # The pool closed this idle meter between the check above and the window (another thread made
            # room): take the shared one again; the window has not begun, so nothing is lost.
            self._meter = None
            meter = self.meter
            window = meter._begin(self.name, self.model)
        try:
            self._local.stack.append((meter, window))
        except AttributeError:
            self._local.stack = [(meter, window)]
        return self

    def __exit__(self, *exc: Any) -> bool:
        meter, window = self._local.stack.pop()
        result = meter._end(window, self.name)
        self.result = result
        if self.keep:
            with self._lock:
                self.results.append(result)
        return False

    def __call__(self, func: Any) -> Any:
        """Decorate ``func``: each call is a window. The decorated function carries this measure object as
        ``func.measure`` (its ``result``, the latest call's Measurement) and, with ``keep=True``, the list of
        every call's as ``func.results``."""
        wrapper = super().__call__(func)
        wrapper.measure = self
        wrapper.results = self.results  # the same list: it fills as the function is called
        return wrapper

    def close(self) -> None:
        """Nothing to release: the shared meter is closed at exit (or by ``close_shared_meters()``)."""
