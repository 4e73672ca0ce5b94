"""A window's power over time, from the cumulative counters a meter's sessions already keep.

A meter opened with ``timeline_period_s=`` keeps one ``Recorder``. While any of its windows is open, the
shared poller thread (``energymeter.backends.base.Poller``: no thread of its own) reads every energy
session's cumulative joules about every ``timeline_period_s`` seconds, and each window takes one sample
right after its opening readings and one right before its closing readings. A window's timeline is the
mean power between consecutive samples inside it::

    ((t_s, {domain: power_w}), ...)

``t_s`` is the end of each interval in seconds from the window's opening sample, ``power_w`` the joules
the domain's counter advanced over the interval divided by its length. The intervals tile the window from
its opening sample to its closing one, so their energy adds up to the window's joules but for the few
microseconds between the window's own readings and its edge samples. A domain that failed, or recovered
from a fault, between two samples has no power for that interval (a gap, never a made-up value).

Memory: one sample per period while a window is open; samples older than the oldest open window are
dropped, so a timeline of a window of ``d`` seconds holds about ``d / timeline_period_s`` points.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from types import MappingProxyType
from typing import Any, Hashable, Iterable, Mapping

from .backends.base import Poller, Reading
from .session_plans import SessionPlan, read_plan

#: A window's timeline: (seconds since its opening sample, mean power in W per domain over the interval ending
#: then), in time order.
Timeline = tuple[tuple[float, Mapping[str, float]], ...]
#: The shortest period a timeline samples at (s): the shared poller serves every meter one call at a time.
MIN_PERIOD_S = 0.001
_monotonic = time.monotonic


def check_period(period_s: Any) -> float:
    """``period_s`` as a float.

    Raises:
        ValueError: not a finite number of at least ``MIN_PERIOD_S`` seconds.
    """
    try:
        value = float(period_s)
    except (TypeError, ValueError):
        raise ValueError(f"timeline_period_s must be a number of seconds, not {period_s!r}") from None
    if not math.isfinite(value) or value < MIN_PERIOD_S:
        raise ValueError(f"timeline_period_s must be a finite number of at least {MIN_PERIOD_S} s, not {period_s!r}")
    return value


def cumulative(plans: Iterable[SessionPlan]) -> Reading:
    """One cumulative reading over every plan's session: joules per domain since each session opened, the failed
    domains and each domain's fault epoch (see ``Reading``). A session whose read raises fails its domains."""
    energy_j: dict[str, float] = {}
    failed: dict[str, str] = {}
    epochs: dict[str, int] = {}
    for plan in plans:
        raw = read_plan(plan)
        reading = plan.as_reading(raw) if type(raw) is tuple else raw
        energy_j.update(reading.energy_j)
        failed.update(reading.failed)
        epochs.update((d, reading.epochs.get(d, 0)) for d in plan.domains)
    return Reading(energy_j, failed, epochs)


def power_w(before: Reading, after: Reading, interval_s: float) -> dict[str, float]:
    """Mean power per domain between two cumulative readings ``interval_s`` apart (W); a domain missing from
    either reading, or whose fault epoch changed between them, is left out."""
    b, a = before.energy_j, after.energy_j
    return {d: (j - b[d]) / interval_s for d, j in a.items()
            if d in b and before.epochs.get(d, 0) == after.epochs.get(d, 0)}


def timeline_of(times_s: list[float], readings: list[Reading]) -> Timeline:
    """The timeline of samples taken at monotonic ``times_s`` (s), relative to the first."""
    points = []
    for i in range(1, len(times_s)):
        interval_s = times_s[i] - times_s[i - 1]
        if interval_s > 0:
            watts = power_w(readings[i - 1], readings[i], interval_s)
            points.append((times_s[i] - times_s[0], MappingProxyType(watts)))
    return tuple(points)


class Recorder:
    """Samples a meter's sessions while any of its windows is open and cuts each window's timeline out.

    Args:
        plans: The meter's session plans (``Meter._plans``).
        period_s: Seconds between samples.
    """

    def __init__(self, plans: list[SessionPlan], period_s: float) -> None:
        self.period_s = check_period(period_s)
        self._plans = plans
        self._lock = threading.Lock()
        self._times_s: list[float] = []
        self._readings: list[Reading] = []
        self._open: dict[Hashable, float] = {}  # window key -> the time of its opening sample
        self._poller = Poller(self.sample, self.period_s, "energymeter-timeline")

    def sample(self) -> float:
        """Take one sample of every session now (the poller calls it); returns its monotonic time (s)."""
        with self._lock:  # one sample at a time, so the samples stay in time order
            reading = cumulative(self._plans)
            now_s = _monotonic()
            self._times_s.append(now_s)
            self._readings.append(reading)
            return now_s

    def open(self, key: Hashable) -> None:
        """A window opened (its opening readings are taken): its first sample, and the poller runs."""
        start_s = self.sample()
        with self._lock:
            self._open[key] = start_s
            first = len(self._open) == 1
        if first:
            self._poller.start()

    def close(self, key: Hashable) -> Timeline:
        """A window is about to take its closing readings: its last sample, and its timeline (empty for a key
        that is not open)."""
        if key not in self._open:
            return ()
        end_s = self.sample()
        with self._lock:
            start_s = self._open.pop(key, None)
            if start_s is None:
                return ()  # closed meanwhile by another thread
            times = self._times_s
            lo, hi = bisect.bisect_left(times, start_s), bisect.bisect_right(times, end_s)
            timeline = timeline_of(times[lo:hi], self._readings[lo:hi])
            keep = bisect.bisect_left(times, min(self._open.values())) if self._open else len(times)
            del self._times_s[:keep], self._readings[:keep]
            last = not self._open
        if last:
            self._poller.stop()
        return timeline

    def discard(self, key: Hashable) -> None:
        """Forget a window that failed to open or to close."""
        with self._lock:
            self._open.pop(key, None)
            last = not self._open
        if last:
            self._poller.stop()

    def shut(self) -> None:
        """Stop sampling for good (the meter closed)."""
        self._poller.close()


def record_timelines(meter: Any, period_s: float) -> Recorder | None:
    """Make every window of ``meter`` keep its timeline (``Measurement.timeline``); returns the recorder, which is
    also the meter's ``timeline_recorder`` (None for a meter without an energy session: it has no power to keep).

    The meter's window methods are wrapped on the instance: ``begin_window``/``end_window`` (named windows, and
    ``window()`` on top of them) and ``_begin``/``_end`` (``measure()``'s windows, keyed by their window object).
    A meter's general ``begin_window`` opens through ``_begin(..., register=True)``: that call is left to the
    ``begin_window`` wrapper, so each window is sampled once.
    """
    if not meter._plans:
        meter.timeline_recorder = None
        return None
    recorder = Recorder(meter._plans, period_s)
    begin_window, end_window, begin, end, close = (meter.begin_window, meter.end_window, meter._begin, meter._end,
                                                   meter.close)

    def begin_window_(name: str, *, model: Any = None) -> None:
        begin_window(name, model=model)
        recorder.open(("named", name))

    def end_window_(name: str) -> Any:
        key = ("named", name)
        timeline = recorder.close(key)
        return end_window(name)._with_timeline(timeline)

    def begin_(name: Any, model: Any, register: bool = False) -> Any:
        window = begin(name, model, register)
        if not register:
            recorder.open(window)
        return window

    def end_(window: Any, name: Any) -> Any:
        timeline = recorder.close(window)
        return end(window, name)._with_timeline(timeline)

    def close_() -> None:
        close()
        recorder.shut()

    meter.begin_window, meter.end_window, meter._begin, meter._end, meter.close = (
        begin_window_, end_window_, begin_, end_, close_)
    meter.timeline_recorder = recorder
    return recorder
