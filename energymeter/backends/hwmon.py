"""Energy and power sensors of Linux hwmon (``/sys/class/hwmon``): Jetson rails, Grace, amd_energy, ACPI meters.

Each ``hwmonN`` directory is one chip, known by its ``name``; its channels are ``kindN_attr`` files
(``energy1_input``, ``power1_input``, ``in1_label``), in the directory itself or, for older drivers such
as ACPI's ``power_meter``, in its ``device/`` directory. An ``energyN_input`` counter (uJ) is preferred
and read as RAPL's are (unwrapped, each step checked against the sensor's ceiling): provenance
``measured``. Otherwise ``powerN_input`` (or ``powerN_average``, uW), or an INA3221 rail's voltage x
current, is sampled while a window is open and integrated: provenance ``integrated``.

Which chips are known, what their channels mean and what each figure contains are tables in
``energymeter.backends.hwmon_layouts``. Sensors no layout knows (temperatures, an unknown chip) are
never used; the probe's reason lists each with why, so ``energymeter devices`` shows them.

An ``amd_energy`` socket is the RAPL package of that socket and a Grace module contains its Hopper GPU,
figures another backend also reports under its own names, so the backend declares ``overlaps``: a default
meter uses it only where no other hardware counter is available (a Jetson, a board without RAPL or NVML).
Name it to use it beside them. (An ACPI whole-system meter is safe beside them: its device class
``system`` makes the meter declare it to contain every other counter, ``domains.system_contains_the_rest``.)
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

from ..errors import ProfileError
from ..measurement import INTEGRATED, MEASURED
from ..profiles import PowerLimits, power_limits
from .base import HARDWARE_COUNTER, Backend, BackendStatus
from .hwmon_layouts import ENERGY, Channel, Chip, Sensor, classify
from .hwmon_session import HwmonSession
from .rapl_zones import Reader, _read_file

__all__ = ["DEFAULT_ROOT", "DEFAULT_SAMPLE_PERIOD_S", "ROOT_ENV", "HwmonBackend", "HwmonSession", "discover"]

DEFAULT_ROOT = "/sys/class/hwmon"
ROOT_ENV = "ENERGYMETER_HWMON_ROOT"
#: Power-sampling period (s): INA3221 and Grace sensors refresh every few to 50 ms.
DEFAULT_SAMPLE_PERIOD_S = 0.05
_ATTRIBUTE = re.compile(r"^([a-z]+)(\d+)_(input|average|label|oem_info)$")
_TEXT = ("label", "oem_info")
PERMISSION_FIX = "run as root (amd_energy counters are root-only since the fix for CVE-2020-12912)"


def _natural(entry: str) -> tuple[str, int]:
    digits = entry.rstrip("0123456789")
    return digits, int(entry[len(digits):] or -1)


def _chip(path: str, reader: Reader, notes: list[str]) -> Chip | None:
    """The chip in one ``hwmonN`` directory, or None (with a note) when it has no readable name."""
    device = os.path.join(path, "device")
    bases = [path] + ([device] if os.path.isdir(device) else [])
    name = None
    for base in bases:
        try:
            name = reader(os.path.join(base, "name")).strip()
            break
        except FileNotFoundError:
            continue
        except (OSError, UnicodeError) as exc:
            notes.append(f"{path}: its name cannot be read ({exc}); not used")
            return None
    if name is None:
        notes.append(f"{path}: no name file; not used")
        return None
    files: dict[tuple[str, int], dict[str, str]] = {}
    for base in bases:  # the hwmon directory's own files win over its device's
        for entry in sorted(os.listdir(base)):
            match = _ATTRIBUTE.match(entry)
            if match:
                files.setdefault((match.group(1), int(match.group(2))), {}).setdefault(match.group(3),
                                                                                       os.path.join(base, entry))
    channels = {}
    for (kind, index), attributes in files.items():
        label = ""
        for attribute in _TEXT:
            if attribute in attributes:
                try:
                    label = reader(attributes[attribute]).strip()
                except (OSError, UnicodeError):
                    label = ""
                break
        channels[(kind, index)] = Channel(kind, index, attributes, label)
    device_id = os.path.realpath(device if os.path.isdir(device) else path)
    return Chip(name, path, device_id, channels)


def discover(root: str, reader: Reader = _read_file) -> tuple[list[Sensor], list[str]]:
    """The known sensors under a hwmon root, and why each other chip or channel is not used.

    Raises:
        OSError: ``root`` cannot be listed.
    """
    notes: list[str] = []
    chips = []
    for entry in sorted(os.listdir(root), key=_natural):
        path = os.path.join(root, entry)
        if os.path.isdir(path):
            chip = _chip(path, reader, notes)
            if chip is not None:
                chips.append(chip)
    sensors, layout_notes = classify(chips)
    return sensors, notes + layout_notes


class HwmonBackend(Backend):
    """Linux hwmon energy counters (``measured``) and power sensors (``integrated``).

    Args:
        hwmon_root: The hwmon directory; default ``$ENERGYMETER_HWMON_ROOT`` or ``/sys/class/hwmon``.
        reader: Reads a sysfs file's text (tests inject faults through it).
        clock: Monotonic clock in seconds.
        sample_period_s: Power-sampling period (s) for sensors without an energy counter.
        power_limits: The power-ceilings profile, a bundled name or a JSON path (default ``"power-limits"``).
    """

    name = "hwmon"
    kind = HARDWARE_COUNTER
    covers = ("cpu", "soc", "system")
    overlaps = True
    options = ("hwmon_root", "reader", "clock", "sample_period_s", "power_limits")

    def __init__(self, hwmon_root: str | os.PathLike[str] | None = None, reader: Reader | None = None,
                 clock: Callable[[], float] | None = None, sample_period_s: float = DEFAULT_SAMPLE_PERIOD_S,
                 power_limits: str | Path = "power-limits") -> None:
        super().__init__()
        self.root = str(hwmon_root or os.environ.get(ROOT_ENV) or DEFAULT_ROOT)
        self.reader = reader or _read_file
        self.clock = clock or time.monotonic
        if isinstance(sample_period_s, bool) or not 0 < sample_period_s < float("inf"):
            raise ValueError(f"sample_period_s must be a positive finite number of seconds, got {sample_period_s!r}")
        self.sample_period_s = float(sample_period_s)
        self.limits_profile = power_limits
        self.limits: PowerLimits | None = None
        self._sensors: list[Sensor] = []
        #: Why each chip or channel found is not used, in words.
        self.notes: list[str] = []

    def _probe(self) -> BackendStatus:
        try:
            self.limits = power_limits(self.limits_profile)
        except ProfileError as exc:
            return BackendStatus(self.name, False, str(exc))
        if not os.path.isdir(self.root):
            return BackendStatus(self.name, False, f"no hwmon tree at {self.root} (not Linux, or a container "
                                 "hides /sys)")
        try:
            sensors, notes = discover(self.root, self.reader)
        except OSError as exc:
            return BackendStatus(self.name, False, f"cannot read hwmon tree {self.root}: {exc}")
        readable = []
        for sensor in sensors:
            try:
                for path in sensor.files:
                    int(self.reader(path).strip())
            except PermissionError:
                notes.append(f"{sensor.domain}: permission denied on {path}: {PERMISSION_FIX}; not used")
                continue
            except (OSError, ValueError, UnicodeError) as exc:
                notes.append(f"{sensor.domain}: cannot read {path}: {exc}; not used")
                continue
            readable.append(replace(sensor, max_power_w=self.limits.for_kind(sensor.limit_kind)))
        self.notes = notes
        why = "; ".join(notes)
        if not readable:
            return BackendStatus(self.name, False, f"no usable energy or power sensor under {self.root}"
                                 + (f": {why}" if why else ""), tuple(s.domain for s in sensors))
        self._sensors = readable
        counters = sum(s.mode == ENERGY for s in readable)
        reason = (f"{len(readable)} sensor(s) under {self.root} ({counters} energy counter(s), "
                  f"{len(readable) - counters} power sampled)" + (f"; {why}" if why else ""))
        provenance = MEASURED if counters == len(readable) else INTEGRATED
        return BackendStatus(self.name, True, reason, tuple(s.domain for s in readable), provenance)

    def _open(self) -> HwmonSession:
        assert self.limits is not None  # set by a successful probe
        return HwmonSession(self._sensors, None if self.reader is _read_file else self.reader, self.clock,
                            self.limits.step_allowance_s, self.sample_period_s)
