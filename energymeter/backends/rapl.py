"""CPU package, DRAM and platform (psys) energy from Linux powercap (RAPL) counters, read directly from sysfs.

The kernel exposes each RAPL zone as a directory with ``name``, ``energy_uj`` (a wrapping counter of
microjoules) and ``max_energy_range_uj`` (where it wraps). Intel exposes ``intel-rapl:N`` (MSR) and on
some parts ``intel-rapl-mmio:N`` (the same package counter through MMIO); AMD Zen packages appear in
the same ``intel-rapl`` tree. Readings are unwrapped into a cumulative total; a background poller reads
often enough that one window may span many wrap periods.

No counter is believed blindly. Every step between two reads of a zone must be possible:

* the counter is a non-negative integer no larger than ``max_energy_range_uj`` (a larger value means the
  range file is wrong, so no wrap can be corrected: the zone fails for the rest of the session);
* a range that is not a positive integer, or so small that the counter would wrap faster than it can be
  polled, is unusable: the zone is kept, but a backwards step fails it for that read;
* the energy of a step, wrap included, is at most the zone's power ceiling x (the time since the
  previous read + an allowance for counters that update in bursts). The ceilings come from the
  ``power-limits`` profile (per domain kind); the ``max_power_w`` option overrides them all.

A step that breaks a rule fails the zone for that read with the reason, and raises the zone's epoch
(``Reading.epochs``): the windows that span it fail, the counter is re-based, and later windows measure
again.
"""

from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Callable, Mapping

from ..errors import ProfileError
from ..measurement import MEASURED
from ..profiles import PowerLimits, power_limits
from .base import HARDWARE_COUNTER, Backend, BackendStatus, EnergySession, Poller, Reading
from .rapl_zones import PERMISSION_FIX, Reader, Zone, _read_file, declarations, discover

__all__ = ["DEFAULT_ROOT", "PERMISSION_FIX", "ROOT_ENV", "RaplBackend", "RaplSession", "Zone", "discover"]

DEFAULT_ROOT = "/sys/class/powercap"
ROOT_ENV = "ENERGYMETER_POWERCAP_ROOT"
#: Reads per wrap period at the zone's power ceiling: 4 leaves margin for a late poll.
POLLS_PER_WRAP = 4
#: The poller never runs faster than this (s); a range that would need it is unusable.
MIN_POLL_PERIOD_S = 0.01

#: ``last`` value of a zone with no baseline: far above any counter, so the fast path's checks fail
#: and the careful path sets the baseline.
_REBASE = 1 << 80
_EMPTY: Mapping[str, str] = MappingProxyType({})


def _unpollable(zone: Zone) -> str | None:
    """Why a zone's range cannot be tracked at its ceiling, or None when it can."""
    assert zone.max_power_w is not None
    if zone.max_range_uj is None:
        return None
    wrap_s = zone.max_range_uj / (zone.max_power_w * 1e6)
    if wrap_s < POLLS_PER_WRAP * MIN_POLL_PERIOD_S:
        return (f"{zone.domain}: max_energy_range_uj of {zone.max_range_uj} uJ wraps in {wrap_s:.3g} s at its "
                f"{zone.max_power_w:g} W ceiling, faster than it can be polled; counter wraparound cannot be corrected")
    return None


class RaplBackend(Backend):
    """Linux powercap RAPL counters; provenance ``measured``.

    Args:
        powercap_root: The powercap directory; default ``$ENERGYMETER_POWERCAP_ROOT`` or ``/sys/class/powercap``.
        reader: Reads a sysfs file's text (tests inject faults through it).
        clock: Monotonic clock in seconds (tests inject a fake one).
        max_power_w: One ceiling in watts for every zone, overriding the ``power_limits`` profile's
            per-kind ceilings: sizes the poller and rejects implausible counter steps.
        power_limits: The power-ceilings profile, a bundled name or a JSON path (default ``"power-limits"``).
    """

    name = "rapl"
    kind = HARDWARE_COUNTER
    covers = ("cpu",)
    options = ("powercap_root", "reader", "clock", "max_power_w", "power_limits")

    def __init__(self, powercap_root: str | os.PathLike[str] | None = None, reader: Reader | None = None,
                 clock: Callable[[], float] | None = None, max_power_w: float | None = None,
                 power_limits: str | Path = "power-limits") -> None:
        super().__init__()
        self.root = str(powercap_root or os.environ.get(ROOT_ENV) or DEFAULT_ROOT)
        self.reader = reader or _read_file
        self.clock = clock or time.monotonic
        if max_power_w is not None and (isinstance(max_power_w, bool) or not 0 < max_power_w < math.inf):
            raise ValueError(f"max_power_w must be a positive finite number of watts, got {max_power_w!r}")
        self.max_power_w = None if max_power_w is None else float(max_power_w)
        self.limits_profile = power_limits
        self.limits: PowerLimits | None = None
        self._zones: list[Zone] = []
        self._notes: list[str] = []

    def _probe(self) -> BackendStatus:
        try:
            self.limits = power_limits(self.limits_profile)
        except ProfileError as exc:
            return BackendStatus(self.name, False, str(exc), (), MEASURED)
        if not os.path.isdir(self.root):
            return BackendStatus(self.name, False, f"no powercap tree at {self.root} (not Linux, the intel_rapl "
                                 "driver is not loaded, or a VM or container hides it)", (), MEASURED)
        try:
            zones, notes = discover(self.root, self.reader)
        except PermissionError as exc:
            return BackendStatus(self.name, False, f"permission denied on {exc.filename or self.root}: {PERMISSION_FIX}",
                                 (), MEASURED)
        except OSError as exc:
            return BackendStatus(self.name, False, f"cannot read powercap tree {self.root}: {exc}", (), MEASURED)
        if not zones:
            return BackendStatus(self.name, False, f"no RAPL zones under {self.root}", (), MEASURED)
        for zone in zones:
            path = os.path.join(zone.path, "energy_uj")
            try:
                int(self.reader(path).strip())
            except PermissionError:
                return BackendStatus(self.name, False, f"permission denied on {path}: {PERMISSION_FIX}",
                                     tuple(z.domain for z in zones), MEASURED)
            except (OSError, ValueError) as exc:
                return BackendStatus(self.name, False, f"cannot read {path}: {exc}",
                                     tuple(z.domain for z in zones), MEASURED)
        zones = [replace(z, max_power_w=self.max_power_w or self.limits.for_kind(z.kind)) for z in zones]
        usable = []
        for zone in zones:
            note = _unpollable(zone)
            if note:
                # Wraps between two polls would go unseen and a forward step could still look plausible:
                # such a zone is left out, never reported as measured by chance.
                notes.append(f"{note}; zone left out")
            else:
                usable.append(zone)
        if not usable:
            return BackendStatus(self.name, False, "no RAPL zone can be tracked: " + "; ".join(notes),
                                 tuple(z.domain for z in zones), MEASURED)
        zones = usable
        self._zones, self._notes = zones, notes
        reason = f"{len(zones)} RAPL zone(s) under {self.root}"
        if notes:
            reason += "; " + "; ".join(notes)
        return BackendStatus(self.name, True, reason, tuple(z.domain for z in zones), MEASURED)

    def _open(self) -> "RaplSession":
        assert self.limits is not None  # set by a successful probe
        return RaplSession(self._zones, None if self.reader is _read_file else self.reader, self.clock,
                           self.limits.step_allowance_s)


class RaplSession(EnergySession):
    """Unwraps each zone's counter into a cumulative total in microjoules (converted to J on read).

    The per-zone state is kept in parallel lists of ints so that a read is one clock call, one ``pread``
    per zone, an integer parse, a subtraction and three integer comparisons; only a step that fails
    those comparisons takes the careful path that explains it (a wrap, a large step, a fault, the
    first read), which reads the clock again to judge the step against the elapsed time.

    Args:
        zones: The zones to read, each with its ``max_power_w`` ceiling set.
        reader: Reads a sysfs file's text, or None to ``pread`` descriptors kept open.
        clock: Monotonic clock in seconds.
        step_allowance_s: Seconds at the ceiling allowed on top of the elapsed time of a step.
    """

    def __init__(self, zones: list[Zone], reader: Reader | None, clock: Callable[[], float],
                 step_allowance_s: float) -> None:
        self.zones = zones
        self.domains = declarations(zones)
        self._reader = reader
        self._clock = clock
        self._allowance_s = step_allowance_s
        self._lock = threading.Lock()
        #: Domains failed for the rest of the session, and why (a wrong range file, a counter that cannot be opened).
        self._stuck: dict[str, str] = {}
        self._stuck_pending = False
        self._stuck_view: Mapping[str, str] = _EMPTY
        self._epochs_view, self._reasons_view = _EMPTY, _EMPTY  # per domain: recovered faults, the latest's reason
        self._epoch: dict[str, int] = {}
        self._warnings = [f"{z.domain}: max_energy_range_uj unusable; a wrap inside this window would fail the domain"
                          for z in zones if z.max_range_uj is None]
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
        self._total_uj: list[int] = []
        for zone in zones:
            path = os.path.join(zone.path, "energy_uj")
            fd = -1
            if reader is None:
                try:
                    fd = os.open(path, os.O_RDONLY)
                except OSError as exc:
                    self._stick(zone.domain, f"cannot open {path}: {exc}")
                    continue
            assert zone.max_power_w is not None
            self._domains.append(zone.domain)
            self._paths.append(path)
            self._fds.append(fd)
            self._range_uj.append(zone.max_range_uj if zone.max_range_uj is not None else -1)
            self._ceiling_uj_per_s.append(zone.max_power_w * 1e6)
            self._quick_uj.append(int(zone.max_power_w * 1e6 * step_allowance_s))
            self._last_uj.append(_REBASE)
            self._total_uj.append(0)
        self._prev_start_s = clock()
        with self._lock:
            self._poll_locked()
        # Period = time to run through the smallest counter range at its ceiling, split POLLS_PER_WRAP ways.
        wraps_s = [z.max_range_uj / (z.max_power_w * 1e6) for z in zones
                   if z.max_range_uj is not None and z.max_power_w is not None]
        self.poll_period_s = max(min(wraps_s) / POLLS_PER_WRAP, MIN_POLL_PERIOD_S) if wraps_s else 60.0
        self._poller = Poller(self.poll, self.poll_period_s, "energymeter-rapl-poller")

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

    def _poll_locked(self) -> dict[str, str] | None:
        """Read every zone once; returns the zones that failed this read, and why (None when none did)."""
        clock = self._clock
        start_s = clock()
        if self._reader is None:
            pread = os.pread
            try:
                raws: list = [pread(fd, 32, 0) for fd in self._fds]
            except OSError:
                raws = self._read_each()
        else:
            raws = self._read_each()
        last, total, ranges, quick = self._last_uj, self._total_uj, self._range_uj, self._quick_uj
        faults = careful = None
        for i, data in enumerate(raws):
            try:
                raw = int(data)
            except (TypeError, ValueError):
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
            budget_s = clock() - self._prev_start_s + self._allowance_s
            for i, raw in careful:
                reason = self._careful_step(i, raw, budget_s)
                if reason is not None:
                    faults = self._fault(i, reason, faults)
        self._prev_start_s = start_s
        if self._stuck_pending:
            self._drop_stuck()
        return faults

    def _unreadable(self, i: int, data: object) -> str:
        if isinstance(data, OSError):
            return f"reading {self._paths[i]} failed: {data}"
        return f"reading {self._paths[i]} failed: not an integer: {data!r:.40}"

    def _careful_step(self, i: int, raw: int, budget_s: float) -> str | None:
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
        elapsed_s = budget_s - self._allowance_s
        allowed_uj = self._ceiling_uj_per_s[i] * budget_s
        self._last_uj[i] = raw  # whatever the verdict, later steps start from here
        if delta < 0:
            if range_uj <= 0:
                return (f"counter went backwards ({last} -> {raw} uJ) and max_energy_range_uj is unusable, "
                        "so the wraparound cannot be corrected")
            delta += range_uj
            if delta > allowed_uj:
                return (f"counter went backwards ({last} -> {raw} uJ) without a plausible wraparound: a wrap "
                        f"would mean {delta / 1e6:.1f} J in {elapsed_s:.3g} s, above the {ceiling_w:g} W ceiling "
                        f"(+{self._allowance_s:g} s allowance) (counter reset, or a missed poll)")
        elif delta > allowed_uj:
            return (f"counter jumped forward by {delta / 1e6:.1f} J ({last} -> {raw} uJ) in {elapsed_s:.3g} s, "
                    f"above the {ceiling_w:g} W ceiling (+{self._allowance_s:g} s allowance)")
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
                     "_total_uj"):
            values = getattr(self, name)
            setattr(self, name, [values[i] for i in keep])

    def read(self) -> Reading:
        """Cumulative joules per zone since the session opened."""
        with self._lock:
            stopped = self._poller.take_error()
            if stopped is not None:
                # A dead wrap poller cannot count wraps any more: fail every zone, never report a silent undercount.
                for domain in self._domains:
                    self._stick(domain, f"the wrap poller stopped ({stopped}); wraps after it could not be counted")
            faults = self._poll_locked()
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

    def window_warnings(self, duration_s: float) -> list[str]:
        """Notes on zones whose wraps cannot be corrected."""
        return list(self._warnings) if self._warnings else []

    def close(self) -> None:
        """End the poller thread and close the counters' descriptors."""
        self._poller.close()
        with self._lock:
            for fd in self._fds:
                if fd >= 0:
                    os.close(fd)
            self._fds = [-1] * len(self._fds)
