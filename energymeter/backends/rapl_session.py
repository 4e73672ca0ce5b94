"""The open RAPL session: each zone's counter unwrapped into a cumulative total of integer microjoules.

``RaplSession.read()`` returns a ``Reading`` in joules. ``read_uj()`` is the meter's fast path: the
cumulative totals as integers, with the session's fault epochs, or None when any zone has failed (the
meter then takes ``read()``). The rules every step must pass are in ``energymeter.backends.rapl``.
"""

from __future__ import annotations

import os
import threading
from operator import add, sub
from types import MappingProxyType
from typing import Callable, Mapping

from ..domains import Domain
from ..unrolled import bounded_reader
from .base import EnergySession, Poller, Reading, step_allowance_s
from .rapl_zones import Reader, Zone, declarations, open_attribute

#: Reads per wrap period at the zone's power ceiling: 4 leaves margin for a late poll.
POLLS_PER_WRAP = 4
#: The poller never runs faster than this (s); a range that would need it is unusable.
MIN_POLL_PERIOD_S = 0.01
#: RAPL counters advance about every millisecond (Intel SDM vol. 3B, 14.9.1; AMD's RAPL MSRs likewise): ten
#: bursts' worth of energy at the ceiling is the least allowance a step gets (see ``base.step_allowance_s``).
BURST_S = 0.01

#: ``last`` value of a zone with no baseline: far above any counter, so the fast path's checks fail
#: and the careful path sets the baseline.
_REBASE = 1 << 80
_EMPTY: Mapping[str, str] = MappingProxyType({})
_pread = os.pread
#: What ``read_fast`` returns: ``(state, values_uj)``, or a ``Reading`` when a zone failed.
FastReading = "tuple[tuple[Mapping[str, int], Mapping[str, str], tuple[int, ...]], list[int]] | Reading"


def strict_int(data: bytes | str) -> int:
    """A counter's text as an int: ASCII digits, an optional minus sign, whitespace around them (sysfs ends its
    lines with a newline); ``int()`` alone would also take underscores (``b"1_000"``) and, in text, any
    Unicode digit. The careful path parses with it; the fast path's ``int()`` is held to the bounds the
    careful path set.

    Raises:
        ValueError: Anything else.
    """
    text = data.strip()
    digits = text[1:] if text[:1] in (b"-", "-") else text
    if not (digits.isdigit() and digits.isascii()):
        raise ValueError(f"not a counter value: {data!r:.40}")
    return int(text)


class RaplSession(EnergySession):
    """Unwraps each zone's counter into a cumulative total in microjoules (converted to J on read).

    The per-zone state is kept in parallel lists of ints. A zone's cumulative total is its last raw
    counter value plus an offset that changes only on the careful path (a wrap, a large step, a
    fault, the first read), so the fast read (``read_fast``) is one clock call, one ``pread`` per zone,
    an integer parse and two comparisons per zone against bounds the careful path set: the counter
    went no lower than its last value and no higher than ``cap`` (the last careful value + ceiling x
    allowance, within the range). Every other step takes the careful path, which reads the clock
    again to judge the step against the elapsed time, then sets new offsets and caps.

    Args:
        zones: The zones to read, each with its ``max_power_w`` ceiling set.
        reader: Reads a sysfs file's text, or None to ``pread`` descriptors kept open.
        clock: Monotonic clock in seconds.
        step_allowance_s: Seconds at the ceiling allowed on top of the elapsed time of a step.
        declared: The zones' declarations where they are no RAPL zones (the hwmon backend's energy
            counters, read with the same rules); None declares them as RAPL zones.
    """

    def __init__(self, zones: list[Zone], reader: Reader | None, clock: Callable[[], float],
                 step_allowance_s: float, declared: Mapping[str, Domain] | None = None) -> None:
        self.zones = zones
        self.domains = declarations(zones) if declared is None else declared
        self._reader = reader
        self._clock = clock
        self._allowance_s = step_allowance_s
        self._lock = self.lock = threading.Lock()
        #: Domains failed for the rest of the session, and why (a wrong range file, a counter that cannot be opened).
        self._stuck: dict[str, str] = {}
        self._stuck_pending = False
        self._stuck_view: Mapping[str, str] = _EMPTY
        self._epochs_view, self._reasons_view = _EMPTY, _EMPTY  # per domain: recovered faults, the latest's reason
        #: (epochs, fault reasons, offsets in uJ): a new tuple after every careful read (see ``read_fast``).
        self._state: tuple[Mapping[str, int], Mapping[str, str], tuple[int, ...]] = (_EMPTY, _EMPTY, ())
        self._epoch: dict[str, int] = {}
        self._warnings = tuple(f"{z.domain}: max_energy_range_uj unusable; a wrap inside this window would fail the "
                               "domain" for z in zones if z.max_range_uj is None)
        # Parallel lists, one entry per zone still read (a stuck zone is dropped from all of them).
        self._domains: list[str] = []
        self._paths: list[str] = []
        # Counters are re-read with pread() on descriptors kept open: sysfs regenerates the value on
        # every read at offset 0, and this avoids an open() per read on the hot path.
        self._fds: list[int] = []
        self._range_uj: list[int] = []  # -1 where the range is unusable
        self._ceiling_uj_per_s: list[float] = []
        self._quick_uj: list[int] = []  # ceiling x allowance: a step this small needs no clock
        self._last_uj: list[int] = []
        self._offset_uj: list[int] = []  # cumulative total = last + offset
        self._cap_uj: list[int] = []  # the fast path accepts last <= value <= cap
        self._total_uj: list[int] = []  # as of the last careful read
        for zone in zones:
            path = os.path.join(zone.path, zone.counter_file)
            fd = -1
            if reader is None:
                try:
                    fd = open_attribute(path)
                except OSError as exc:
                    self._stick(zone.domain, f"cannot open {path}: {exc}")
                    continue
            assert zone.max_power_w is not None
            self._domains.append(zone.domain)
            self._paths.append(path)
            self._fds.append(fd)
            self._range_uj.append(zone.max_range_uj if zone.max_range_uj is not None else -1)
            self._ceiling_uj_per_s.append(zone.max_power_w * 1e6)
            self._quick_uj.append(int(zone.max_power_w * 1e6 * min(step_allowance_s, BURST_S)))
            self._last_uj.append(_REBASE)
            self._offset_uj.append(-_REBASE)
            self._cap_uj.append(-1)
            self._total_uj.append(0)
        self._read_bounded = bounded_reader(len(self._fds))
        self._prev_start_s = clock()
        with self._lock:
            self._poll_locked()
        # Period = time to run through the smallest counter range at its ceiling, split POLLS_PER_WRAP ways.
        wraps_s = [z.max_range_uj / (z.max_power_w * 1e6) for z in zones
                   if z.max_range_uj is not None and z.max_power_w is not None]
        self.poll_period_s = max(min(wraps_s) / POLLS_PER_WRAP, MIN_POLL_PERIOD_S) if wraps_s else 60.0
        self._poller = Poller(self.poll, self.poll_period_s, "energymeter-rapl-poller")
        # The meter calls these at every first window and last close: the poller's own methods, one call fewer.
        self.activate, self.deactivate = self._poller.start, self._poller.stop  # type: ignore[method-assign]

    def poll(self) -> None:
        """Read every counter once, folding any wrap into the totals."""
        with self._lock:
            self._poll_locked()

    def _read_each(self) -> list[bytes | str | OSError]:
        """Each zone's counter text, or the error reading it raised."""
        out: list[bytes | str | OSError] = []
        reader = self._reader
        for fd, path in zip(self._fds, self._paths):
            try:
                out.append(reader(path) if reader is not None else os.pread(fd, 32, 0))
            except OSError as exc:
                out.append(exc)
        return out

    def _poll_locked(self, raws: list | None = None, start_s: float | None = None) -> dict[str, str] | None:
        """Account for one read of every zone (taken now, or ``raws`` read at ``start_s``).

        Returns the zones that failed this read, and why (None when none did).
        """
        clock = self._clock
        if raws is None:
            start_s = clock()
            raws = self._fetch()
        assert start_s is not None
        # New lists: a list handed out by read_fast() is never changed afterwards.
        last = self._last_uj = list(self._last_uj)
        total = self._total_uj = list(map(add, last, self._offset_uj))
        ranges, quick = self._range_uj, self._quick_uj
        faults = careful = None
        for i, data in enumerate(raws):
            try:
                raw = data if type(data) is int else strict_int(data)
            except (TypeError, ValueError, AttributeError):
                last[i] = _REBASE  # no value to re-base on: the next good read is the baseline
                faults = self._fault(i, self._unreadable(i, data), faults)
                continue
            delta = raw - last[i]
            # A step of at most ceiling x allowance is plausible however little time passed: no clock needed.
            if 0 <= delta <= quick[i] and raw <= ranges[i]:
                total[i] += delta
                last[i] = raw
            elif careful is None:
                careful = [(i, raw)]
            else:
                careful.append((i, raw))
        if careful is not None:
            # The two reads of a zone lie within [previous read's start, now]: an upper bound on the
            # time a step covers, so a slow read can only loosen the check, never fail a good step.
            elapsed_s = clock() - self._prev_start_s
            budget_s = elapsed_s + step_allowance_s(elapsed_s, self._allowance_s, BURST_S)
            for i, raw in careful:
                reason = self._careful_step(i, raw, elapsed_s, budget_s)
                if reason is not None:
                    faults = self._fault(i, reason, faults)
        self._prev_start_s = start_s
        if self._stuck_pending:
            self._drop_stuck()
        last, total = self._last_uj, self._total_uj
        self._offset_uj = offsets = list(map(sub, total, last))
        self._cap_uj = [min(v + q, r) for v, q, r in zip(last, self._quick_uj, self._range_uj)]
        self._state = (self._epochs_view, self._reasons_view, tuple(offsets))
        return faults

    def _fetch(self) -> list:
        """Each zone's counter text (bytes from ``pread``, or the reader's str), or the OSError reading it raised."""
        if self._reader is None:
            pread = os.pread
            try:
                return [pread(fd, 32, 0) for fd in self._fds]
            except OSError:
                pass
        return self._read_each()

    def _unreadable(self, i: int, data: object) -> str:
        if isinstance(data, OSError):
            return f"reading {self._paths[i]} failed: {data}"
        return f"reading {self._paths[i]} failed: not an integer: {data!r:.40}"

    def _careful_step(self, i: int, raw: int, elapsed_s: float, budget_s: float) -> str | None:
        """Account for a step the fast path did not accept; the reason it is impossible, or None."""
        domain, last, range_uj = self._domains[i], self._last_uj[i], self._range_uj[i]
        if raw < 0:
            self._last_uj[i] = _REBASE
            return f"{self._paths[i]} read {raw} uJ: a counter is never negative"
        if 0 < range_uj < raw:
            self._stick(domain, f"{self._paths[i]} read {raw} uJ, above max_energy_range_uj {range_uj}: the range "
                        "file is wrong, so wraps of this counter cannot be corrected")
            return None
        if last == _REBASE:
            self._last_uj[i] = raw  # first read, or the first after a fault: the new baseline
            return None
        delta = raw - last
        ceiling_w = self._ceiling_uj_per_s[i] / 1e6
        allowed_uj = self._ceiling_uj_per_s[i] * budget_s
        extra_s = budget_s - elapsed_s
        self._last_uj[i] = raw  # whatever the verdict, later steps start from here
        if delta < 0:
            if range_uj <= 0:
                return (f"counter went backwards ({last} -> {raw} uJ) and max_energy_range_uj is unusable, "
                        "so the wraparound cannot be corrected")
            delta += range_uj
            if delta > allowed_uj:
                return (f"counter went backwards ({last} -> {raw} uJ) without a plausible wraparound: a wrap "
                        f"would mean {delta / 1e6:.1f} J in {elapsed_s:.3g} s, above the {ceiling_w:g} W ceiling "
                        f"(+{extra_s:.3g} s allowance) (counter reset, a missed poll, or a range file overstating the "
                        "counter's range)")
        elif delta > allowed_uj:
            return (f"counter jumped forward by {delta / 1e6:.1f} J ({last} -> {raw} uJ) in {elapsed_s:.3g} s, "
                    f"above the {ceiling_w:g} W ceiling (+{extra_s:.3g} s allowance)")
        self._total_uj[i] += delta
        return None

    def _fault(self, i: int, reason: str, faults: dict[str, str] | None) -> dict[str, str]:
        """Fail zone ``i`` for this read, raise its epoch and re-base it at its next good read."""
        domain = self._domains[i]
        self._epoch[domain] = self._epoch.get(domain, 0) + 1
        self._epochs_view = MappingProxyType(dict(self._epoch))
        self._reasons_view = MappingProxyType({**self._reasons_view, domain: reason})
        faults = faults if faults is not None else {}
        faults[domain] = reason
        return faults

    def _stick(self, domain: str, reason: str) -> None:
        self._stuck[domain] = reason
        self._stuck_pending = True
        self._stuck_view = MappingProxyType(dict(self._stuck))

    def _drop_stuck(self) -> None:
        self._stuck_pending = False
        keep = [i for i, d in enumerate(self._domains) if d not in self._stuck]
        for i, fd in enumerate(self._fds):
            if i not in keep and fd >= 0:
                os.close(fd)
        for name in ("_domains", "_paths", "_fds", "_range_uj", "_ceiling_uj_per_s", "_quick_uj", "_last_uj",
                     "_offset_uj", "_cap_uj", "_total_uj"):
            values = getattr(self, name)
            setattr(self, name, [values[i] for i in keep])

    def read(self) -> Reading:
        """Cumulative joules per zone since the session opened."""
        with self._lock:
            return self._reading_locked(None, None)

    def read_fast(self) -> FastReading:
        """The meter's fast read: ``(state, values_uj)``, or a ``Reading`` when a zone failed.

        ``values_uj`` are the raw counters in the order of ``domains``; ``state`` is ``(epochs,
        fault_reasons, offsets_uj)``, and a zone's cumulative total is its value plus its offset. The
        state is one object from one careful read to the next, so two fast readings holding the same
        one differ by their values alone. A read in which a step is not plainly plausible takes the
        careful path from the same read; a zone that failed or a stopped poller returns ``read()``'s
        ``Reading``.
        """
        with self._lock:
            return self.read_fast_locked()

    def read_fast_locked(self) -> FastReading:
        """``read_fast`` for a caller that holds ``lock`` (the meter's window edge)."""
        if self._stuck or self._poller.error is not None:
            return self._reading_locked(None, None)
        start_s = self._clock()
        raws = None  # None: the careful path reads the counters again (and parses them strictly)
        if self._reader is None:
            try:
                values, plausible = self._read_bounded(self._fds, self._last_uj, self._cap_uj)
            except (OSError, ValueError):
                return self._reading_locked(None, None)  # read again, zone by zone, and say which failed
        else:
            raws = self._read_each()
            try:
                values = list(map(int, raws))
            except (TypeError, ValueError):
                return self._reading_locked(raws, start_s)
            plausible = all(lo <= v <= hi for v, lo, hi in zip(values, self._last_uj, self._cap_uj))
        if not plausible:
            faults = self._poll_locked(raws, start_s if raws is not None else None)
            if faults is None and not self._stuck:
                return self._state, self._last_uj
            return self._reading_of(faults)
        self._last_uj = values
        self._prev_start_s = start_s
        return self._state, values

    def _reading_locked(self, raws: list | None, start_s: float | None) -> Reading:
        """Account for a read (taken now, or ``raws`` read at ``start_s``) and return it as a ``Reading``."""
        stopped = self._poller.take_error()
        if stopped is not None:
            # A dead wrap poller cannot count wraps any more: fail every zone, never report a silent undercount.
            for domain in self._domains:
                self._stick(domain, f"the wrap poller stopped ({stopped}); wraps after it could not be counted")
            raws = None  # the zones are dropped: the read is taken again, without them
        return self._reading_of(self._poll_locked(raws, start_s))

    def _reading_of(self, faults: dict[str, str] | None) -> Reading:
        """The ``Reading`` of the careful read just accounted for, whose failed zones are ``faults``."""
        energy_j = {d: uj / 1e6 for d, uj in zip(self._domains, self._total_uj)}
        if faults is None:
            return Reading(energy_j, self._stuck_view, self._epochs_view, self._reasons_view)
        for domain in faults:
            del energy_j[domain]
        return Reading(energy_j, MappingProxyType({**self._stuck, **faults}), self._epochs_view, self._reasons_view)

    def activate(self) -> None:
        """Start the wrap poller."""
        self._poller.start()

    def deactivate(self) -> None:
        """Stop the wrap poller."""
        self._poller.stop()

    def window_warnings(self, duration_s: float) -> tuple[str, ...]:
        """Notes on zones whose wraps cannot be corrected (one tuple, shared: it never changes)."""
        return self._warnings

    def close(self) -> None:
        """End the poller thread and close the counters' descriptors."""
        self._poller.close()
        with self._lock:
            for fd in self._fds:
                if fd >= 0:
                    os.close(fd)
            self._fds = [-1] * len(self._fds)
