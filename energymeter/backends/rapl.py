"""CPU package, DRAM and platform (psys) energy from Linux powercap (RAPL) counters, read directly from sysfs.

The kernel exposes each RAPL zone as a directory with ``name``, ``energy_uj`` (a wrapping counter of
microjoules) and ``max_energy_range_uj`` (where it wraps). Intel exposes ``intel-rapl:N`` (MSR) and on
some parts ``intel-rapl-mmio:N`` (the same package counter through MMIO); AMD Zen packages appear in
the same ``intel-rapl`` tree. Readings are unwrapped into a cumulative total; a background poller reads
often enough that one window may span many wrap periods.
"""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass
from typing import Callable

from ..measurement import MEASURED
from .base import HARDWARE_COUNTER, Backend, BackendStatus, EnergySession, Poller, Reading

DEFAULT_ROOT = "/sys/class/powercap"
ROOT_ENV = "ENERGYMETER_POWERCAP_ROOT"
#: Ceiling on one zone's power used to size the poller and to reject implausible wraps (W).
DEFAULT_MAX_POWER_W = 1000.0
#: Reads per wrap period at ``max_power_w``: 4 leaves margin for a late poll.
POLLS_PER_WRAP = 4

_ZONE_DIR = re.compile(r"^(intel-rapl|intel-rapl-mmio):(\d+)(?::(\d+))?$")
_PACKAGE = re.compile(r"^package-(\d+)$")

PERMISSION_FIX = (
    "run as root, or make the counters readable: a udev rule such as "
    "ACTION==\"add\", SUBSYSTEM==\"powercap\", RUN+=\"/bin/chmod a+r /sys%p/energy_uj\", "
    "or a sysfsutils line in /etc/sysfs.conf such as "
    "'mode class/powercap/intel-rapl:0/energy_uj = 0444' (root-only since Linux 5.10, CVE-2020-8694)"
)

Reader = Callable[[str], str]


def _read_file(path: str) -> str:
    with open(path, encoding="ascii") as handle:
        return handle.read()


@dataclass(frozen=True)
class Zone:
    """One RAPL counter.

    Attributes:
        domain: energymeter domain name, e.g. ``"cpu:0:package"``.
        path: The zone directory.
        max_range_uj: Where ``energy_uj`` wraps, or None when ``max_energy_range_uj`` is unreadable.
    """

    domain: str
    path: str
    max_range_uj: int | None


def _zone_sort_key(entry: str) -> tuple[int, int, int]:
    match = _ZONE_DIR.match(entry)
    assert match is not None
    return (0 if match.group(1) == "intel-rapl" else 1, int(match.group(2)), int(match.group(3) or -1))


def discover(root: str, reader: Reader = _read_file) -> tuple[list[Zone], list[str]]:
    """Find the RAPL zones under a powercap root.

    Args:
        root: The powercap directory (``/sys/class/powercap`` or a fake tree).
        reader: Reads a sysfs file's text; injectable for tests.

    Returns:
        The zones, and notes on zones that were skipped or cannot be unwrapped.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        PermissionError: a zone's ``name`` cannot be read.
    """
    entries = sorted((e for e in os.listdir(root) if _ZONE_DIR.match(e)), key=_zone_sort_key)
    zones: dict[str, Zone] = {}
    notes: list[str] = []
    names: dict[str, str] = {}  # entry -> zone name; parents sort before their subzones
    for entry in entries:
        match = _ZONE_DIR.match(entry)
        assert match is not None
        path = os.path.join(root, entry)
        name = names[entry] = reader(os.path.join(path, "name")).strip()
        parent = None if match.group(3) is None else names.get(f"{match.group(1)}:{match.group(2)}", "")
        domain = _domain_for(name, parent)
        if domain is None:
            notes.append(f"{entry}: zone {name!r} is not a known RAPL domain; skipped")
            continue
        if domain in zones:
            continue  # the MMIO interface duplicates the MSR package counter
        try:
            max_range: int | None = int(reader(os.path.join(path, "max_energy_range_uj")).strip())
        except (OSError, ValueError) as exc:
            max_range = None
            notes.append(f"{domain}: max_energy_range_uj unreadable ({exc}); counter wraparound cannot be corrected")
        zones[domain] = Zone(domain, path, max_range)
    return list(zones.values()), notes


def _domain_for(name: str, parent: str | None) -> str | None:
    if parent is None:
        package = _PACKAGE.match(name)
        if package:
            return f"cpu:{package.group(1)}:package"
        if name in ("psys", "dram"):
            return f"cpu:0:{name}"
        return None
    package = _PACKAGE.match(parent)
    if package and name in ("dram", "core", "uncore"):
        return f"cpu:{package.group(1)}:{name}"
    return None


class RaplBackend(Backend):
    """Linux powercap RAPL counters; provenance ``measured``.

    Args:
        powercap_root: The powercap directory; default ``$ENERGYMETER_POWERCAP_ROOT`` or ``/sys/class/powercap``.
        reader: Reads a sysfs file's text (tests inject faults through it).
        clock: Monotonic clock in seconds (tests inject a fake one).
        max_power_w: Ceiling on a zone's power in watts: sizes the poller and rejects implausible wraps.
    """

    name = "rapl"
    kind = HARDWARE_COUNTER
    covers = ("cpu",)
    options = ("powercap_root", "reader", "clock", "max_power_w")

    def __init__(self, powercap_root: str | os.PathLike[str] | None = None, reader: Reader | None = None,
                 clock: Callable[[], float] | None = None, max_power_w: float = DEFAULT_MAX_POWER_W) -> None:
        super().__init__()
        self.root = str(powercap_root or os.environ.get(ROOT_ENV) or DEFAULT_ROOT)
        self.reader = reader or _read_file
        self.clock = clock or time.monotonic
        if not max_power_w > 0:
            raise ValueError(f"max_power_w must be positive, got {max_power_w!r}")
        self.max_power_w = float(max_power_w)
        self._zones: list[Zone] = []
        self._notes: list[str] = []

    def _probe(self) -> BackendStatus:
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
        self._zones, self._notes = zones, notes
        reason = f"{len(zones)} RAPL zone(s) under {self.root}"
        if notes:
            reason += "; " + "; ".join(notes)
        return BackendStatus(self.name, True, reason, tuple(z.domain for z in zones), MEASURED)

    def _open(self) -> "RaplSession":
        return RaplSession(self._zones, None if self.reader is _read_file else self.reader, self.clock,
                           self.max_power_w)


class RaplSession(EnergySession):
    """Unwraps each zone's counter into a cumulative total in microjoules (converted to J on read)."""

    def __init__(self, zones: list[Zone], reader: Reader | None, clock: Callable[[], float],
                 max_power_w: float) -> None:
        self.zones = zones
        self.provenance = {z.domain: MEASURED for z in zones}
        self.devices = {z.domain: z.path for z in zones}
        # Counters are re-read with pread() on descriptors kept open: sysfs regenerates the value on
        # every read at offset 0, and this avoids an open() per read on the hot path.
        self._reader = reader
        self._fds: dict[str, int] = {}
        self._clock = clock
        self._max_power_w = max_power_w
        self._lock = threading.Lock()
        self._failed: dict[str, str] = {}
        self._total_uj: dict[str, int] = {z.domain: 0 for z in zones}
        self._last: dict[str, tuple[int, float]] = {}
        with self._lock:
            self._poll_locked()
        ranges = [z.max_range_uj for z in zones if z.max_range_uj]
        # Period = time to run through the smallest counter range at max power, split POLLS_PER_WRAP ways.
        self.poll_period_s = (min(ranges) / 1e6 / max_power_w / POLLS_PER_WRAP) if ranges else 60.0
        self._poller = Poller(self.poll, self.poll_period_s, "energymeter-rapl-poller")

    def poll(self) -> None:
        """Read every counter once, folding any wrap into the totals."""
        with self._lock:
            self._poll_locked()

    def _poll_locked(self) -> None:
        for zone in self.zones:
            if zone.domain in self._failed:
                continue
            path = os.path.join(zone.path, "energy_uj")
            try:
                raw = int(self._read_counter(zone.domain, path))
            except (OSError, ValueError) as exc:
                self._failed[zone.domain] = f"reading {path} failed: {exc}"
                continue
            now = self._clock()
            last = self._last.get(zone.domain)
            self._last[zone.domain] = (raw, now)
            if last is None:
                continue
            delta = raw - last[0]
            if delta < 0:
                reason = self._unwrap_problem(zone, last, raw, now)
                if reason:
                    self._failed[zone.domain] = reason
                    continue
                assert zone.max_range_uj is not None
                delta += zone.max_range_uj
            self._total_uj[zone.domain] += delta

    def _read_counter(self, domain: str, path: str) -> bytes | str:
        if self._reader is not None:
            return self._reader(path)
        fd = self._fds.get(domain)
        if fd is None:
            fd = self._fds[domain] = os.open(path, os.O_RDONLY)
        return os.pread(fd, 32, 0)

    def _unwrap_problem(self, zone: Zone, last: tuple[int, float], raw: int, now: float) -> str | None:
        if zone.max_range_uj is None:
            return (f"counter went backwards ({last[0]} -> {raw} uJ) and max_energy_range_uj is unreadable, "
                    "so the wraparound cannot be corrected")
        wrapped_uj = raw - last[0] + zone.max_range_uj
        elapsed_s = max(now - last[1], 0.0)
        ceiling_uj = self._max_power_w * elapsed_s * 1e6
        if wrapped_uj > ceiling_uj:
            return (f"counter went backwards ({last[0]} -> {raw} uJ) without a plausible wraparound: a wrap "
                    f"would mean {wrapped_uj / 1e6:.1f} J in {elapsed_s:.3f} s, above the {self._max_power_w:g} W "
                    "ceiling (counter reset, or a missed poll)")
        return None

    def read(self) -> Reading:
        """Cumulative joules per zone since the session opened."""
        with self._lock:
            self._poll_locked()
            energy = {d: uj / 1e6 for d, uj in self._total_uj.items() if d not in self._failed}
            return Reading(energy, dict(self._failed))

    def activate(self) -> None:
        """Start the wrap poller."""
        self._poller.start()

    def deactivate(self) -> None:
        """Stop the wrap poller."""
        self._poller.stop()

    def window_warnings(self, duration_s: float) -> list[str]:
        """Notes on zones whose wraps cannot be corrected."""
        return [f"{z.domain}: max_energy_range_uj unreadable; a wrap inside this window would fail the domain"
                for z in self.zones if z.max_range_uj is None]

    def close(self) -> None:
        """End the poller thread and close the counters' descriptors."""
        self._poller.close()
        with self._lock:
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()

