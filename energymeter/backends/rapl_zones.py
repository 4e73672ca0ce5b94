"""Finding RAPL zones in a powercap tree: which directories are counters, and the domain each one is.

Intel exposes each RAPL zone as ``intel-rapl:N`` (MSR) and on some parts ``intel-rapl-mmio:N`` (the same
package counter through MMIO); AMD Zen packages appear in the same tree. Subzones ``intel-rapl:N:M``
are the package's dram, core or uncore.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from dataclasses import dataclass
from typing import Callable

from ..domains import CPU, HOST, Domain
from ..kinds import HARDWARE_COUNTER

_ZONE_DIR = re.compile(r"^(intel-rapl|intel-rapl-mmio):(\d+)(?::(\d+))?$")
_PACKAGE = re.compile(r"^package-(\d+)$")

PERMISSION_FIX = (
    "run as root, or make the counters readable: a udev rule such as "
    "ACTION==\"add\", SUBSYSTEM==\"powercap\", RUN+=\"/bin/chmod a+r /sys%p/energy_uj\", "
    "or a sysfsutils line in /etc/sysfs.conf such as "
    "'mode class/powercap/intel-rapl:0/energy_uj = 0444' (root-only since Linux 5.10, CVE-2020-8694)"
)

Reader = Callable[[str], str]



#: Longest sysfs attribute read (bytes): a counter or a name is a few dozen.
MAX_ATTRIBUTE_BYTES = 4096


def open_attribute(path: str) -> int:
    """A descriptor on a sysfs attribute, opened without blocking and checked to be a regular file.

    A FIFO planted in the tree would block ``open`` forever, and a character device (``/dev/zero``)
    would be read without end: both are refused.

    Raises:
        OSError: it cannot be opened, or it is not a regular file (the message says what it is).
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            what = "a FIFO" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else \
                "not a regular file"
            raise OSError(errno.EINVAL, f"{what}, not a sysfs attribute", path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _read_file(path: str) -> str:
    fd = open_attribute(path)
    try:
        return os.pread(fd, MAX_ATTRIBUTE_BYTES, 0).decode("ascii")
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Zone:
    """One RAPL counter.

    Attributes:
        domain: energymeter domain name, e.g. ``"cpu:0:package"``.
        path: The zone directory.
        max_range_uj: Where ``energy_uj`` wraps, or None when ``max_energy_range_uj`` is unreadable or
            not a positive integer.
        max_power_w: The zone's power ceiling (W), set when the backend is probed.
        counter_file: The counter's file in ``path`` (a hwmon counter is ``energyN_input``).
    """

    domain: str
    path: str
    max_range_uj: int | None
    max_power_w: float | None = None
    counter_file: str = "energy_uj"

    @property
    def kind(self) -> str:
        """The domain kind the ceilings are keyed by: ``package``, ``dram``, ``psys``, ``core``, ``uncore``."""
        return self.domain.rsplit(":", 1)[-1]


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
        try:
            name = names[entry] = reader(os.path.join(path, "name")).strip()
        except (UnicodeError, ValueError) as exc:  # not text: this zone alone is left out
            notes.append(f"{entry}: its name is not ASCII text ({exc}); skipped")
            names[entry] = ""
            continue
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
        else:
            if max_range <= 0:
                notes.append(f"{domain}: max_energy_range_uj is {max_range}, not a positive range; counter "
                             "wraparound cannot be corrected")
                max_range = None
            elif max_range >= 2**64:  # no RAPL counter is wider than 64 bits: the file is wrong
                notes.append(f"{domain}: max_energy_range_uj of {len(str(max_range))} digits is beyond any 64-bit "
                             "counter; counter wraparound cannot be corrected")
                max_range = None
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


def declarations(zones: list[Zone]) -> dict[str, Domain]:
    """Each zone's domain declared (``energymeter.domains.Domain``): host-wide CPU counters, ``measured``.

    A package contains its own ``core`` and ``uncore`` subzones (they are parts of its figure; its DRAM is
    not); a ``psys`` zone contains every other zone of the host. The device id is the zone's directory.
    """
    def contained(zone: Zone) -> tuple[str, ...]:
        if zone.kind == "psys":
            return tuple(z.domain for z in zones if z is not zone)
        if zone.kind == "package":
            prefix = os.path.basename(zone.path) + ":"  # a subzone's directory is "<package dir>:M"
            return tuple(z.domain for z in zones
                         if z.kind in ("core", "uncore") and os.path.basename(z.path).startswith(prefix))
        return ()

    return {z.domain: Domain(z.domain, CPU, HOST, "measured", HARDWARE_COUNTER, z.path, contained(z)) for z in zones}
