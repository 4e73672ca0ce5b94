"""The open hwmon session: energy counters unwrapped as RAPL's are, power sensors sampled and integrated.

Energy counters (``energyN_input``) are read by a ``RaplSession`` over them, so they follow RAPL's rules
exactly (unwrapping, plausibility against the ceiling, epochs). Power sensors are sampled on the shared
poller while a window is open and at every read, and integrated with the trapezoid rule; a sample that
cannot be read, or lies outside 0..ceiling, fails that domain for the read, raises its epoch and leaves
a gap after which the trapezoid restarts. A fault fails only its own domain.
"""

from __future__ import annotations

import os
import threading
from types import MappingProxyType
from typing import Callable, Mapping

from .base import EnergySession, Poller, Reading
from .hwmon_layouts import ENERGY, ENERGY_RANGE_UJ, VOLT_AMP, Sensor, declarations
from .rapl_session import RaplSession
from .rapl_zones import Reader, Zone, _read_file

_EMPTY: Mapping = MappingProxyType({})


class HwmonSession(EnergySession):
    """Reads a host's hwmon sensors: counters directly, power by sampling.

    Args:
        sensors: The sensors to read, each with its ``max_power_w`` ceiling set.
        reader: Reads a sysfs file's text, or None to read the files directly.
        clock: Monotonic clock in seconds.
        step_allowance_s: Seconds at the ceiling allowed on top of a counter step's elapsed time.
        sample_period_s: Power-sampling period (s) while a window is open.
    """

    def __init__(self, sensors: list[Sensor], reader: Reader | None, clock: Callable[[], float],
                 step_allowance_s: float, sample_period_s: float) -> None:
        self.sensors = sensors
        self.domains = declarations(sensors)
        self._reader = reader or _read_file
        self._clock = clock
        self._lock = threading.Lock()
        counters = [s for s in sensors if s.mode == ENERGY]
        zones = [Zone(s.domain, os.path.dirname(s.files[0]), ENERGY_RANGE_UJ, s.max_power_w,
                      os.path.basename(s.files[0])) for s in counters]
        self._counters = RaplSession(zones, reader, clock, step_allowance_s,
                                     {s.domain: self.domains[s.domain] for s in counters}) if zones else None
        self._sampled = [s for s in sensors if s.mode != ENERGY]
        self._integrated_j: dict[str, float] = {s.domain: 0.0 for s in self._sampled}
        self._last: dict[str, tuple[float, float] | None] = {s.domain: None for s in self._sampled}
        self._epoch: dict[str, int] = {}
        self._epochs_view: Mapping[str, int] = _EMPTY
        self._reasons_view: Mapping[str, str] = _EMPTY
        self._stuck: dict[str, str] = {}
        with self._lock:
            self._sample_locked(None)
        self._sampler = Poller(self.sample, sample_period_s, "energymeter-hwmon-sampler")

    # -- power sampling -------------------------------------------------------------------------------
    def _power_w(self, sensor: Sensor) -> float:
        """One sample in watts.

        Raises:
            OSError, ValueError, UnicodeError: a file cannot be read or holds no integer.
        """
        values = [int(self._reader(path).strip()) for path in sensor.files]
        if sensor.mode == VOLT_AMP:
            return values[0] * values[1] / 1e6  # mV x mA = uW
        return values[0] / 1e6

    def sample(self) -> None:
        """Take one sample of every power sensor and integrate it (trapezoid rule)."""
        with self._lock:
            self._sample_locked(None)

    def _sample_locked(self, faults: dict[str, str] | None) -> None:
        for sensor in self._sampled:
            domain = sensor.domain
            if domain in self._stuck:
                continue
            try:
                power_w = self._power_w(sensor)
            except (OSError, ValueError, UnicodeError) as exc:
                self._fault(domain, f"reading {', '.join(sensor.files)} failed: {exc}", faults)
                continue
            now_s = self._clock()
            assert sensor.max_power_w is not None  # set by the probe
            if not 0.0 <= power_w <= sensor.max_power_w:
                self._fault(domain, f"power sample of {power_w:g} W is outside 0..{sensor.max_power_w:g} W "
                            f"(the {sensor.limit_kind} ceiling)", faults)
                continue
            last = self._last[domain]
            if last is not None:
                self._integrated_j[domain] += (now_s - last[0]) * (power_w + last[1]) / 2.0
            self._last[domain] = (now_s, power_w)

    def _fault(self, domain: str, reason: str, faults: dict[str, str] | None) -> None:
        """Fail a sensor for this read, raise its epoch and leave a gap in its trapezoid."""
        self._last[domain] = None
        self._epoch[domain] = self._epoch.get(domain, 0) + 1
        self._epochs_view = MappingProxyType(dict(self._epoch))
        self._reasons_view = MappingProxyType({**self._reasons_view, domain: reason})
        if faults is not None:
            faults[domain] = reason

    # -- the session protocol -------------------------------------------------------------------------
    def read(self) -> Reading:
        """Cumulative joules per sensor since the session opened."""
        counted = self._counters.read() if self._counters is not None else Reading({})
        with self._lock:
            stopped = self._sampler.take_error()
            if stopped is not None:
                for sensor in self._sampled:  # a dead sampler integrates nothing more: fail, never undercount
                    self._stuck[sensor.domain] = f"the power sampler stopped ({stopped}); the integral would be wrong"
            faults: dict[str, str] = {}
            self._sample_locked(faults)
            failed = {**self._stuck, **faults}
            energy_j = {d: j for d, j in self._integrated_j.items() if d not in failed}
            epochs, reasons = self._epochs_view, self._reasons_view
        if counted.failed:
            failed.update(counted.failed)
        if counted.epochs:
            epochs, reasons = {**epochs, **counted.epochs}, {**reasons, **counted.fault_reasons}
        return Reading({**counted.energy_j, **energy_j}, failed, epochs, reasons)

    def activate(self) -> None:
        """Start the counters' wrap poller and the power sampler."""
        if self._counters is not None:
            self._counters.activate()
        if self._sampled:
            self._sampler.start()

    def deactivate(self) -> None:
        """Stop both pollers."""
        if self._counters is not None:
            self._counters.deactivate()
        self._sampler.stop()

    def window_warnings(self, duration_s: float) -> list[str]:
        """Warn about windows shorter than two power samples: their integral is a single trapezoid."""
        period_s = self._sampler.period_s
        if not self._sampled or duration_s >= 2 * period_s:
            return []
        names = ", ".join(s.domain for s in self._sampled)
        return [f"{names}: window of {duration_s:.4f} s is shorter than two power samples ({period_s:g} s apart); "
                "its integrated energy is unreliable: measure a longer window"]

    def close(self) -> None:
        """Stop polling and close the counters."""
        self._sampler.close()
        if self._counters is not None:
            self._counters.close()
