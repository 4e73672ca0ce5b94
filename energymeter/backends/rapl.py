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
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

from ..errors import ProfileError
from ..measurement import MEASURED
from ..profiles import PowerLimits, power_limits
from .base import HARDWARE_COUNTER, Backend, BackendStatus
from .rapl_session import MIN_POLL_PERIOD_S, POLLS_PER_WRAP, RaplSession
from .rapl_zones import PERMISSION_FIX, Reader, Zone, _read_file, discover

__all__ = ["DEFAULT_ROOT", "PERMISSION_FIX", "ROOT_ENV", "RaplBackend", "RaplSession", "Zone", "discover"]

DEFAULT_ROOT = "/sys/class/powercap"
ROOT_ENV = "ENERGYMETER_POWERCAP_ROOT"


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
        # A zone whose counter cannot be read is left out with its reason; the readable ones measure.
        readable, unreadable, denied = [], [], False
        for zone in zones:
            path = os.path.join(zone.path, "energy_uj")
            try:
                int(self.reader(path).strip())
                readable.append(zone)
            except PermissionError:
                denied = True
                unreadable.append(f"{zone.domain}: permission denied on {path}")
            except (OSError, ValueError) as exc:
                unreadable.append(f"{zone.domain}: cannot read {path}: {exc}")
        if not readable:
            fix = f": {PERMISSION_FIX}" if denied else ""
            return BackendStatus(self.name, False, "no RAPL counter can be read (" + "; ".join(unreadable) + ")" + fix,
                                 tuple(z.domain for z in zones), MEASURED)
        notes = [*notes, *(f"{text}; zone left out" for text in unreadable)]
        zones = readable
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
