"""Builds a Linux hwmon sysfs tree in a directory, with a writer that knows the true energy put in.

The tree keeps its own clock (``FakeHwmon.clock``, seconds; pass it to the backend as ``clock=``). Each
sensor draws a power, constant or a function of that clock; ``advance(duration_s)`` moves the clock on,
adds the energy drawn to each energy counter (wrapping it at its range) and writes each power sensor's
value at the new time. ``true_energy_j(key)`` is the energy a sensor drew since it was added, the figure
a measurement should match. ``fail(key)`` makes a sensor's files raise ``EIO`` through ``read`` (pass
``reader=tree.read`` to the backend), as an I2C sensor that stops answering does.
"""

from __future__ import annotations

import errno
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Union

from energymeter.testing.counter_file import write_counter

#: Where the hwmon core's signed 64-bit energy value wraps (uJ).
ENERGY_RANGE_UJ = 2**63
#: Power: watts, or watts as a function of the tree's clock (s).
Power = Union[float, Callable[[float], float]]


@dataclass
class _Sensor:
    files: tuple[Path, ...]  # energy: (counter,); power: (power,); volt-amp: (voltage mV, current mA)
    mode: str
    power: Power
    energy_uj: int = 0  # the counter's value before wrapping (energy mode)
    fraction_uj: float = 0.0  # energy drawn but below one microjoule, carried to the next advance
    wrap_uj: int = ENERGY_RANGE_UJ
    true_j: float = 0.0
    voltage_mv: int = 5000


class FakeHwmon:
    """A fake ``/sys/class/hwmon``.

    ``add_ina3221({"VDD_IN": 6.0, "VDD_CPU_GPU_CV": 2.5})`` adds a Jetson power monitor;
    ``add_grace(0, {"Module": 400, "CPU": 150, "SysIO": 40})``, ``add_amd_energy([180.0], [[4.0, 5.0]])``,
    ``add_power_meter(350.0)`` and ``add_chip("coretemp", {"temp1_input": "45000"})`` add the other
    layouts. Each returns the key(s) of its sensors, for ``set_power``, ``true_energy_j`` and ``fail``.
    Point a backend at ``root``.

    Args:
        root: Directory to build the tree in (created if missing).
        start_s: The clock's first reading (s).
    """

    def __init__(self, root: str | os.PathLike[str], start_s: float = 1000.0) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.now_s = start_s
        self._chips = 0
        self._sensors: dict[str, _Sensor] = {}
        self._failed: set[Path] = set()

    # -- the tree ---------------------------------------------------------------------------------------
    def clock(self) -> float:
        """The tree's monotonic clock (s)."""
        return self.now_s

    def add_chip(self, name: str, files: dict[str, str] | None = None,
                 device_files: dict[str, str] | None = None) -> Path:
        """Create ``hwmonN`` with a ``name`` and any other files (``device_files`` go in its ``device/``)."""
        path = self.root / f"hwmon{self._chips}"
        self._chips += 1
        path.mkdir(parents=True)
        (path / "name").write_text(name + "\n")
        for base, contents in ((path, files), (path / "device", device_files)):
            if contents:
                base.mkdir(exist_ok=True)
                for entry, text in contents.items():
                    (base / entry).write_text(text + "\n")
        return path

    def add_energy(self, chip: Path, channel: int, label: str, power: Power, energy_uj: int = 0,
                   wrap_uj: int = ENERGY_RANGE_UJ) -> str:
        """An ``energyN_input`` counter (uJ) starting at ``energy_uj`` and wrapping at ``wrap_uj``."""
        (chip / f"energy{channel}_label").write_text(label + "\n")
        return self._add(chip, f"energy{channel}", _Sensor((chip / f"energy{channel}_input",), "energy", power,
                                                           int(energy_uj), wrap_uj=wrap_uj))

    def add_power(self, chip: Path, channel: int, label: str | None, power: Power, attribute: str = "input",
                  label_attribute: str = "label") -> str:
        """A ``powerN_<attribute>`` sensor (uW), labelled through ``powerN_<label_attribute>`` unless None."""
        if label is not None:
            (chip / f"power{channel}_{label_attribute}").write_text(label + "\n")
        return self._add(chip, f"power{channel}", _Sensor((chip / f"power{channel}_{attribute}",), "power", power))

    def add_rail(self, chip: Path, channel: int, label: str, power: Power, voltage_mv: int = 5000) -> str:
        """An INA3221 rail: ``inN_label``, ``inN_input`` (mV) and ``currN_input`` (mA) for ``power``."""
        (chip / f"in{channel}_label").write_text(label + "\n")
        files = (chip / f"in{channel}_input", chip / f"curr{channel}_input")
        return self._add(chip, f"in{channel}", _Sensor(files, "volt-amp", power, voltage_mv=voltage_mv))

    # -- the layouts --------------------------------------------------------------------------------------
    def add_ina3221(self, rails: dict[str, Power], voltage_mv: int = 5000) -> dict[str, str]:
        """A Jetson INA3221 monitor with up to three rails by label; returns label -> key."""
        chip = self.add_chip("ina3221")
        return {label: self.add_rail(chip, i, label, power, voltage_mv) for i, (label, power) in
                enumerate(rails.items(), start=1)}

    def add_grace(self, socket: int, sensors: dict[str, Power], acpi: bool = False) -> dict[str, str]:
        """Grace power sensors of one socket (``"Module"``, ``"Grace"``, ``"CPU"``, ``"SysIO"``) -> key.

        Args:
            socket: The socket number in the labels (``"CPU Power Socket 0"``).
            sensors: Label word to power.
            acpi: As a GH200 shows them: one ACPI ``power_meter`` chip per sensor, labelled by its
                ``device/power1_oem_info`` and read from ``device/power1_average``; else one ``grace``
                chip with ``powerN_label`` and ``powerN_input``.
        """
        keys = {}
        if acpi:
            for word, power in sensors.items():
                chip = self.add_chip("power_meter", device_files={"power1_average_interval": "50"})
                keys[word] = self.add_power(chip / "device", 1, f"{word} Power Socket {socket}", power,
                                            attribute="average", label_attribute="oem_info")
            return keys
        chip = self.add_chip("grace")
        for i, (word, power) in enumerate(sensors.items(), start=1):
            keys[word] = self.add_power(chip, i, f"{word} Power Socket {socket}", power)
        return keys

    def add_amd_energy(self, sockets: list[Power], cores: list[list[Power]], energy_uj: int = 0,
                       wrap_uj: int = ENERGY_RANGE_UJ) -> dict[str, str]:
        """An ``amd_energy`` chip: ``Ecore000``... (numbered across sockets) then ``Esocket0``...; label -> key.

        A socket's power is its own figure: give it at least the sum of its cores'.
        """
        chip = self.add_chip("amd_energy")
        keys, channel, core = {}, 1, 0
        for per_socket in cores:
            for power in per_socket:
                keys[f"Ecore{core:03d}"] = self.add_energy(chip, channel, f"Ecore{core:03d}", power, energy_uj, wrap_uj)
                channel, core = channel + 1, core + 1
        for number, power in enumerate(sockets):
            keys[f"Esocket{number}"] = self.add_energy(chip, channel, f"Esocket{number}", power, energy_uj, wrap_uj)
            channel += 1
        return keys

    def add_power_meter(self, power: Power) -> str:
        """An ACPI ``power_meter`` (a whole system's power), read from ``power1_input``."""
        return self.add_power(self.add_chip("power_meter"), 1, None, power)

    # -- the writer -----------------------------------------------------------------------------------------
    def set_power(self, key: str, power: Power) -> None:
        """Change a sensor's power from now on (W, or W as a function of the clock) and write it."""
        self._sensors[key].power = power
        self._write(self._sensors[key])

    def advance(self, duration_s: float, step_s: float = 0.001) -> None:
        """Move the clock on by ``duration_s``, drawing each sensor's power, and write the files.

        A varying power is integrated in steps of at most ``step_s`` (midpoint rule); a constant one exactly.
        """
        if duration_s < 0:
            raise ValueError(f"the clock only moves forward, not by {duration_s!r} s")
        steps = max(1, math.ceil(duration_s / step_s))
        for sensor in self._sensors.values():
            if callable(sensor.power):
                dt_s = duration_s / steps
                energy_j = math.fsum(sensor.power(self.now_s + (k + 0.5) * dt_s) * dt_s for k in range(steps))
            else:
                energy_j = sensor.power * duration_s
            sensor.true_j += energy_j
            exact_uj = sensor.fraction_uj + energy_j * 1e6
            sensor.energy_uj += int(exact_uj)
            sensor.fraction_uj = exact_uj - int(exact_uj)
        self.now_s += duration_s
        for sensor in self._sensors.values():
            self._write(sensor)

    def true_energy_j(self, key: str) -> float:
        """The energy a sensor drew since it was added (J)."""
        return self._sensors[key].true_j

    def set_energy(self, key: str, energy_uj: int) -> None:
        """Write a counter's raw value (uJ), e.g. to reproduce a reset; the true energy is unchanged."""
        self._sensors[key].energy_uj = int(energy_uj)
        self._write(self._sensors[key])

    def fail(self, key: str, failed: bool = True) -> None:
        """Make a sensor's files raise EIO through ``read`` (or answer again, with ``failed=False``)."""
        for path in self._sensors[key].files:
            (self._failed.add if failed else self._failed.discard)(path)

    def read(self, path: str) -> str:
        """A sysfs reader for the backend (``reader=tree.read``) that honours ``fail``.

        Raises:
            OSError: EIO for a failed sensor's file; the file's own error otherwise.
        """
        if Path(path) in self._failed:
            raise OSError(errno.EIO, "Input/output error", path)
        return Path(path).read_text()

    def _add(self, chip: Path, channel: str, sensor: _Sensor) -> str:
        key = f"{chip.relative_to(self.root)}/{channel}"
        self._sensors[key] = sensor
        self._write(sensor)
        return key

    def _power_now(self, sensor: _Sensor) -> float:
        return sensor.power(self.now_s) if callable(sensor.power) else sensor.power

    def _write(self, sensor: _Sensor) -> None:
        if sensor.mode == "energy":
            write_counter(sensor.files[0], sensor.energy_uj % sensor.wrap_uj)
        elif sensor.mode == "power":
            write_counter(sensor.files[0], round(self._power_now(sensor) * 1e6))
        else:
            current_ma = round(self._power_now(sensor) * 1e6 / sensor.voltage_mv)
            write_counter(sensor.files[0], sensor.voltage_mv)
            write_counter(sensor.files[1], current_ma)
