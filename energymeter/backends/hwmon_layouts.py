"""Which hwmon sensors are energy domains, and what each one contains: the known layouts, as tables.

A hwmon chip is known by its ``name`` file; its channels by their ``*_label`` files. Each known layout
maps a chip's channels onto sensors (a domain name, its device class, the power-limits kind that bounds
it, how it is read) and declares containment as data (``CONTAINS``): a Jetson board's input rail contains
its other rails, a Grace module contains that socket's CPU and SysIO, an ``amd_energy`` socket contains
its cores, an ACPI power meter contains every other hwmon domain of the host. A chip or channel that no
layout knows is never used: what its figure contains is unknown, so it could count twice. It is listed
with the reason instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Callable, Mapping

from ..domains import CPU, GPU, HOST, SOC, SYSTEM, Domain
from ..kinds import HARDWARE_COUNTER

#: Where an ``energyN_input`` counter wraps (uJ). The hwmon core prints a signed 64-bit ``long``, so a
#: counter that wraps does so at 2^63; drivers that accumulate (``amd_energy``) never reach it in practice.
ENERGY_RANGE_UJ = 2**63

# How a sensor is read.
ENERGY = "energy"  # energyN_input, uJ, a cumulative counter: measured
POWER = "power"  # powerN_input or powerN_average, uW, sampled and integrated
VOLT_AMP = "volt-amp"  # inN_input (mV) x currN_input (mA) = uW, sampled and integrated (ina3221)


@dataclass(frozen=True)
class Channel:
    """One hwmon channel's files, as discovery found them.

    Attributes:
        kind: ``"energy"``, ``"power"``, ``"in"``, ``"curr"``, ``"temp"``, ...
        index: The N of ``kindN_*``.
        files: Attribute (``"input"``, ``"average"``, ``"label"``, ``"oem_info"``) to its path.
        label: The text of its ``_label`` (or ACPI ``_oem_info``) file, ``""`` when it has none.
    """

    kind: str
    index: int
    files: Mapping[str, str]
    label: str = ""


@dataclass(frozen=True)
class Chip:
    """One ``hwmonN`` directory.

    Attributes:
        name: The text of its ``name`` file.
        path: The directory.
        device_id: A stable identity (the real path of its ``device`` link, else of the directory).
        channels: Its channels, by (kind, index).
    """

    name: str
    path: str
    device_id: str
    channels: Mapping[tuple[str, int], Channel] = field(default_factory=dict)

    def of_kind(self, kind: str) -> list[Channel]:
        """Its channels of one kind, by index."""
        return [c for (k, _), c in sorted(self.channels.items()) if k == kind]


@dataclass(frozen=True)
class Sensor:
    """One hwmon reading used as an energy domain.

    Attributes:
        domain: The domain name (``"hwmon:ina3221:VDD_IN"``).
        layout: The layout that knew it (``"ina3221"``, ``"grace"``, ``"amd_energy"``, ``"power_meter"``).
        role: What it is within its layout (``"input"``, ``"rail"``, ``"module"``, ``"socket"``, ...).
        mode: ``ENERGY``, ``POWER`` or ``VOLT_AMP``.
        files: The files read: ``(energy,)``, ``(power,)`` or ``(voltage, current)``.
        device_class: ``energymeter.domains`` device class.
        limit_kind: The power-limits profile kind whose ceiling bounds it.
        device_id: The chip's identity and the channel (``"<device path>:power1"``).
        socket: The socket or module it belongs to, where the layout says (None: the host's only one).
        max_power_w: Its ceiling (W), set when the backend is probed.
    """

    domain: str
    layout: str
    role: str
    mode: str
    files: tuple[str, ...]
    device_class: str
    limit_kind: str
    device_id: str
    socket: int | None = None
    max_power_w: float | None = None


def _power_files(channel: Channel) -> tuple[str, ...] | None:
    path = channel.files.get("input") or channel.files.get("average")
    return (path,) if path else None


# -- INA3221 (NVIDIA Jetson power monitors) ----------------------------------------------------------
#: Rail label -> (role, device class). The input rails feed the whole module: they contain the others.
JETSON_RAILS: dict[str, tuple[str, str]] = {
    "VDD_IN": ("input", SOC), "POM_5V_IN": ("input", SOC),
    "VDD_CPU_GPU_CV": ("rail", SOC), "VDD_SOC": ("rail", SOC), "VDD_GPU_SOC": ("rail", SOC),
    "VDD_CPU_CV": ("rail", CPU), "VDD_CPU": ("rail", CPU), "POM_5V_CPU": ("rail", CPU),
    "VDD_GPU": ("rail", GPU), "POM_5V_GPU": ("rail", GPU),
    "VIN_SYS_5V0": ("rail", SOC), "VDDQ_VDD2_1V8AO": ("rail", SOC), "VDD_DDR": ("rail", SOC),
}


def _ina3221(chip: Chip) -> tuple[list[Sensor], list[str]]:
    sensors, notes = [], []
    for volts in chip.of_kind("in"):
        label = volts.label
        if not label:
            continue  # the shunt-voltage channels (in4..in6) carry no label
        where = f"{chip.path}: in{volts.index} {label!r}"
        if label == "NC":
            notes.append(f"{where}: not connected; not used")
            continue
        if label not in JETSON_RAILS:
            notes.append(f"{where}: not a known Jetson rail, so what it contains is unknown; not used")
            continue
        role, device_class = JETSON_RAILS[label]
        power = chip.channels.get(("power", volts.index))
        current = chip.channels.get(("curr", volts.index))
        if power is not None and _power_files(power):
            mode, files = POWER, _power_files(power)
        elif current is not None and "input" in current.files and "input" in volts.files:
            mode, files = VOLT_AMP, (volts.files["input"], current.files["input"])
        else:
            notes.append(f"{where}: no power{volts.index}_input nor in/curr{volts.index}_input to read; not used")
            continue
        limit = "psys" if role == "input" else "package"  # a board's input bounded as a platform, a rail as a package
        sensors.append(Sensor(f"hwmon:ina3221:{label}", "ina3221", role, mode, files, device_class, limit,
                              f"{chip.device_id}:in{volts.index}"))
    return sensors, notes


# -- NVIDIA Grace (CPU, SysIO, Grace and Module power per socket) -----------------------------------------
_GRACE_LABEL = re.compile(r"^(Module|Grace|CPU|SysIO) Power Socket (\d+)$")
#: Grace label word -> (role, device class, power-limits kind).
GRACE_SENSORS = {"Module": ("module", SOC, "psys"), "Grace": ("grace", CPU, "package"),
                 "CPU": ("cpu", CPU, "package"), "SysIO": ("sysio", SOC, "package")}


def grace_label(label: str) -> tuple[str, int] | None:
    """``("Module", 0)`` for ``"Module Power Socket 0"``; None for any other label."""
    match = _GRACE_LABEL.match(label.strip())
    return (match.group(1), int(match.group(2))) if match else None


def _grace(chip: Chip) -> tuple[list[Sensor], list[str]]:
    sensors, notes = [], []
    for power in chip.of_kind("power"):
        where = f"{chip.path}: power{power.index} {power.label!r}"
        parsed = grace_label(power.label)
        files = _power_files(power)
        if parsed is None or files is None:
            why = "not a Grace sensor label" if parsed is None else "no power input to read"
            notes.append(f"{where}: {why}; not used")
            continue
        role, device_class, limit = GRACE_SENSORS[parsed[0]]
        sensors.append(Sensor(f"hwmon:grace:{parsed[1]}:{role}", "grace", role, POWER, files, device_class, limit,
                              f"{chip.device_id}:power{power.index}", socket=parsed[1]))
    return sensors, notes


# -- amd_energy (per-socket and per-core energy counters) ---------------------------------------------
_AMD_LABEL = re.compile(r"^E(socket|core)(\d+)$")


def _amd_energy(chip: Chip) -> tuple[list[Sensor], list[str]]:
    found: dict[str, list[tuple[int, Channel]]] = {"socket": [], "core": []}
    notes = []
    for energy in chip.of_kind("energy"):
        match = _AMD_LABEL.match(energy.label)
        if match is None or "input" not in energy.files:
            notes.append(f"{chip.path}: energy{energy.index} {energy.label!r}: not an amd_energy socket or core "
                         "counter; not used")
            continue
        found[match.group(1)].append((int(match.group(2)), energy))
    sockets = max(len(found["socket"]), 1)
    per_socket = max(len(found["core"]) // sockets, 1)
    sensors = []
    for role, entries in found.items():
        for number, energy in entries:
            # The driver numbers cores across the machine, socket after socket.
            socket = number if role == "socket" else min(number // per_socket, sockets - 1)
            name = f"hwmon:amd_energy:socket{number}" if role == "socket" else f"hwmon:amd_energy:core{number:03d}"
            sensors.append(Sensor(name, "amd_energy", role, ENERGY, (energy.files["input"],), CPU,
                                  "package" if role == "socket" else "core",
                                  f"{chip.device_id}:energy{energy.index}", socket=socket))
    return sensors, notes


# -- ACPI power meters (a whole system's power; on Grace, its per-socket sensors) ---------------------------
def _power_meter(chip: Chip) -> tuple[list[Sensor], list[str]]:
    channels = chip.of_kind("power")
    if channels and all(grace_label(c.label) for c in channels):
        return _grace(chip)
    sensors, notes = [], []
    for power in channels:
        files = _power_files(power)
        if files is None:
            notes.append(f"{chip.path}: power{power.index}: no power{power.index}_input or _average; not used")
            continue
        sensors.append(Sensor("hwmon:power_meter", "power_meter", "system", POWER, files, SYSTEM, "psys",
                              f"{chip.device_id}:power{power.index}"))
    return sensors, notes


#: Chip name -> the function that maps its channels onto sensors.
LAYOUTS: dict[str, Callable[[Chip], tuple[list[Sensor], list[str]]]] = {
    "ina3221": _ina3221, "grace": _grace, "amd_energy": _amd_energy, "power_meter": _power_meter,
}

#: (layout, role) -> which other sensors that sensor's figure contains.
CONTAINS: dict[tuple[str, str], Callable[[Sensor, Sensor], bool]] = {
    ("ina3221", "input"): lambda outer, s: s.layout == "ina3221" and s.role != "input",
    ("grace", "module"): lambda outer, s: s.layout == "grace" and s.socket == outer.socket and s.role != "module",
    ("grace", "grace"): lambda outer, s: s.layout == "grace" and s.socket == outer.socket
    and s.role in ("cpu", "sysio"),
    ("amd_energy", "socket"): lambda outer, s: s.layout == "amd_energy" and s.role == "core"
    and s.socket == outer.socket,
    # Several ACPI meters are taken to be separate supplies: each counts, none contains another.
    ("power_meter", "system"): lambda outer, s: s.layout != "power_meter",
}


def classify(chips: list[Chip]) -> tuple[list[Sensor], list[str]]:
    """The sensors of the known layouts among ``chips``, and why each other chip or channel is not used.

    Domain names are unique: a second sensor of one name (two ACPI meters, two chips with one label) gets
    ``@hwmonN`` appended.
    """
    sensors: list[Sensor] = []
    notes: list[str] = []
    names: set[str] = set()
    for chip in chips:
        layout = LAYOUTS.get(chip.name)
        if layout is None:
            notes.append(_unknown(chip))
            continue
        found, chip_notes = layout(chip)
        notes.extend(chip_notes)
        for sensor in found:
            if sensor.domain in names:
                sensor = replace(sensor, domain=f"{sensor.domain}@{chip.path.rstrip('/').rsplit('/', 1)[-1]}")
            names.add(sensor.domain)
            sensors.append(sensor)
    return sensors, notes


def _unknown(chip: Chip) -> str:
    kinds = sorted({k for k, _ in chip.channels})
    if not any(k in ("energy", "power") for k in kinds):
        what = ", ".join(kinds) if kinds else "no channels"
        return f"{chip.path} ({chip.name!r}): no energy or power sensor ({what}); not used"
    return (f"{chip.path} ({chip.name!r}): not a known layout (known: {', '.join(LAYOUTS)}), so what its figure "
            "contains is unknown and it could count twice; not used")


def declarations(sensors: list[Sensor]) -> dict[str, Domain]:
    """Each sensor's domain declared: host-wide, ``measured`` for counters and ``integrated`` for power."""
    out = {}
    for sensor in sensors:
        rule = CONTAINS.get((sensor.layout, sensor.role))
        contains = tuple(s.domain for s in sensors if s is not sensor and rule is not None and rule(sensor, s))
        provenance = "measured" if sensor.mode == ENERGY else "integrated"
        out[sensor.domain] = Domain(sensor.domain, sensor.device_class, HOST, provenance, HARDWARE_COUNTER,
                                    sensor.device_id, contains)
    return out
