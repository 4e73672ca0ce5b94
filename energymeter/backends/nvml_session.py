"""An opened NVML session: reads each GPU's energy counter, or integrates its power on a sampler thread.

Faults degrade one GPU, not the backend: an NVML error is retried (``RETRY_DELAYS_S``); one that persists
fails that GPU for that read and bumps its epoch, so only windows spanning it fail; ``GPU is lost`` stays.
"""

from __future__ import annotations

import threading
import time
from types import MappingProxyType
from typing import Any, Callable, Mapping

from ..domains import DEVICE, GPU, Domain
from ..errors import BackendUnavailable
from ..kinds import HARDWARE_COUNTER
from ..measurement import INTEGRATED, MEASURED
from .base import EnergySession, Poller, Reading, step_allowance_s
from .nvml_devices import Gpu

#: The energy counter is seen to advance every ~10 ms on some boards and ~100 ms on others; windows
#: shorter than the slower figure get a warning.
COUNTER_UPDATE_PERIOD_S = 0.1
#: The least allowance a counter step gets: one update of the energy counter (see ``base.step_allowance_s``).
BURST_S = COUNTER_UPDATE_PERIOD_S
#: Default power-sampling period for GPUs without the energy counter (seconds).
DEFAULT_SAMPLE_PERIOD_S = 0.05
#: Pauses before each retry of a failed NVML query (s): three quick retries, 7 ms in all, ride out a
#: driver that is briefly busy without stalling a window edge for long.
RETRY_DELAYS_S = (0.001, 0.002, 0.004)
#: The one NVML error that does not heal: the GPU fell off the bus.
NVML_ERROR_GPU_IS_LOST = 15
_EMPTY: Mapping = MappingProxyType({})


class _Fault(Exception):
    """An NVML query that failed for one GPU (after its retries); ``sticky`` when the GPU is gone for good."""

    def __init__(self, reason: str, sticky: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.sticky = sticky


class NvmlSession(EnergySession):
    """Reads counters directly and integrates power for sampling-only GPUs on a thread.

    ``characterised`` names the GPUs whose counter's update period was measured (``energymeter.characterise``):
    their short windows are warned about from that figure, not from the published one here.

    Args:
        nvml: The NVML module.
        gpus: The GPUs to read.
        sample_period_s: Power-sampling period (s).
        clock: Monotonic clock in seconds.
        max_power_w: The GPU power ceiling (W).
        step_allowance_s: Seconds at the ceiling allowed on top of a counter step's elapsed time.
        sleep: Pauses between retries (injectable for tests).

    Raises:
        BackendUnavailable: NVML does not start.
    """

    characterised: frozenset[str] = frozenset()

    def __init__(self, nvml: Any, gpus: list[Gpu], sample_period_s: float, clock: Callable[[], float],
                 max_power_w: float = 3000.0, step_allowance_s: float = 1.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._nvml = nvml
        self.gpus = gpus
        # One device per GPU, keyed by its UUID, so that ranks sharing a GPU count it once.
        self.domains = {g.domain: Domain(g.domain, GPU, DEVICE, MEASURED if g.mode == "counter" else INTEGRATED,
                                         HARDWARE_COUNTER, g.uuid or "") for g in gpus}
        self.max_power_w = max_power_w
        self._ceiling_mj_per_s = max_power_w * 1000.0
        self._allowance_s = step_allowance_s
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        #: GPUs failed for the rest of the session, and why.
        self._stuck: dict[str, str] = {}
        self._stuck_view: Mapping[str, str] = _EMPTY
        self._epoch: dict[str, int] = {}
        self._epochs_view: Mapping[str, int] = _EMPTY
        self._reasons_view: Mapping[str, str] = _EMPTY  # GPU -> its latest recovered fault's reason
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as exc:
            raise BackendUnavailable(f"nvml: NVML did not start when opening the session ({exc})") from exc
        self._handles: dict[str, Any] = {}
        for gpu in gpus:
            try:
                # By UUID where known: the handle is the GPU that was probed, whatever the indices do now.
                self._handles[gpu.domain] = (nvml.nvmlDeviceGetHandleByUUID(gpu.uuid) if gpu.uuid
                                             else nvml.nvmlDeviceGetHandleByIndex(gpu.nvml_index))
            except nvml.NVMLError as exc:
                self._stick(gpu.domain, f"NVML: {exc} (the GPU was seen when probed but could not be opened)")
        self._counter_gpus = [g for g in gpus if g.mode == "counter"]
        self._sampling_gpus = [g for g in gpus if g.mode != "counter"]
        # Counter state (mJ): the last raw value (None: re-base at the next good read) and the running total.
        self._last_mj: dict[str, int | None] = {g.domain: None for g in self._counter_gpus}
        self._total_mj: dict[str, int] = {g.domain: 0 for g in self._counter_gpus}
        # Sampling state: cumulative joules and the last (time s, power W) sample (None: after a gap).
        self._integrated_j: dict[str, float] = {g.domain: 0.0 for g in self._sampling_gpus}
        self._last_sample: dict[str, tuple[float, float] | None] = {g.domain: None for g in self._sampling_gpus}
        self._prev_read_start_s = clock()
        with self._lock:
            self._read_counters_locked(None)
            self._sample_locked(None)
        self._sampling = bool(self._sampling_gpus)
        self._sampler = Poller(self.sample, sample_period_s, "energymeter-nvml-sampler")

    # -- faults ---------------------------------------------------------------------------------------
    def _stick(self, domain: str, reason: str) -> None:
        self._stuck[domain] = reason
        self._stuck_view = MappingProxyType(dict(self._stuck))

    def _fault(self, domain: str, reason: str, faults: dict[str, str] | None) -> None:
        """Fail a GPU for this read and raise its epoch: windows spanning the fault fail, later ones do not."""
        self._epoch[domain] = self._epoch.get(domain, 0) + 1
        self._epochs_view = MappingProxyType(dict(self._epoch))
        self._reasons_view = MappingProxyType({**self._reasons_view, domain: reason})
        if faults is not None:
            faults[domain] = reason

    def _query(self, domain: str, call: Callable[[Any], Any]) -> Any:
        """Run an NVML query on a GPU, retrying transient errors.

        Raises:
            _Fault: the query failed on every attempt, or the GPU is lost (sticky).
        """
        handle = self._handles[domain]
        NVMLError = self._nvml.NVMLError
        error = None
        for delay_s in (*RETRY_DELAYS_S, None):
            try:
                return call(handle)
            except NVMLError as exc:
                if getattr(exc, "value", None) == NVML_ERROR_GPU_IS_LOST:
                    raise _Fault(f"NVML: {exc}", sticky=True) from exc
                error = exc
            if delay_s is not None:
                self._sleep(delay_s)
        raise _Fault(f"NVML: {error} (still failing after {len(RETRY_DELAYS_S)} retries)")

    # -- energy counters ------------------------------------------------------------------------------
    def _read_counters_locked(self, faults: dict[str, str] | None) -> None:
        nvml = self._nvml
        clock = self._clock
        start_s = clock()
        values: dict[str, Any] = {}
        for gpu in self._counter_gpus:
            domain = gpu.domain
            if domain in self._stuck:
                continue
            try:
                values[domain] = int(self._query(domain, nvml.nvmlDeviceGetTotalEnergyConsumption))
            except _Fault as fault:
                values[domain] = fault
        # Both reads of a step lie within [previous read's start, this read's end].
        elapsed_s = clock() - self._prev_read_start_s
        budget_s = elapsed_s + step_allowance_s(elapsed_s, self._allowance_s, BURST_S)
        self._prev_read_start_s = start_s
        for domain, value in values.items():
            if isinstance(value, _Fault):
                self._last_mj[domain] = None
                if value.sticky:
                    self._stick(domain, value.reason)
                else:
                    self._fault(domain, value.reason, faults)
                continue
            last = self._last_mj[domain]
            self._last_mj[domain] = value
            if last is None:
                continue  # first read, or the first after a fault: the new baseline
            delta = value - last
            if delta < 0:
                self._fault(domain, f"energy counter went backwards ({last} -> {value} mJ)", faults)
            elif delta > self._ceiling_mj_per_s * budget_s:
                self._fault(domain, f"energy counter jumped forward by {delta / 1000:.1f} J in {elapsed_s:.3g} s, "
                            f"above the {self.max_power_w:g} W ceiling (+{budget_s - elapsed_s:.3g} s allowance)",
                            faults)
            else:
                self._total_mj[domain] += delta

    # -- power sampling -------------------------------------------------------------------------------
    def _power_w(self, gpu: Gpu) -> float:
        nvml = self._nvml
        if gpu.mode == "instant":
            def instant(handle: Any) -> int:
                field = nvml.nvmlDeviceGetFieldValues(handle, [nvml.NVML_FI_DEV_POWER_INSTANT])[0]
                if field.nvmlReturn != nvml.NVML_SUCCESS:
                    raise nvml.NVMLError(field.nvmlReturn)
                return field.value.uiVal

            return self._query(gpu.domain, instant) / 1000.0
        return self._query(gpu.domain, nvml.nvmlDeviceGetPowerUsage) / 1000.0

    def sample(self) -> None:
        """Take one power sample of each sampling-only GPU and integrate it (trapezoid rule)."""
        with self._lock:
            self._sample_locked(None)

    def _sample_locked(self, faults: dict[str, str] | None) -> None:
        for gpu in self._sampling_gpus:
            domain = gpu.domain
            if domain in self._stuck:
                continue
            try:
                power_w = self._power_w(gpu)
            except _Fault as fault:
                self._last_sample[domain] = None  # a gap: the trapezoid restarts after it
                if fault.sticky:
                    self._stick(domain, fault.reason)
                else:
                    self._fault(domain, fault.reason, faults)
                continue
            now = self._clock()
            if not 0.0 <= power_w <= self.max_power_w:
                self._last_sample[domain] = None
                self._fault(domain, f"power sample of {power_w:g} W is outside 0..{self.max_power_w:g} W "
                            "(the GPU ceiling)", faults)
                continue
            last = self._last_sample[domain]
            if last is not None:
                self._integrated_j[domain] += (now - last[0]) * (power_w + last[1]) / 2.0
            self._last_sample[domain] = (now, power_w)

    def read(self) -> Reading:
        """Cumulative joules per GPU since the session opened."""
        with self._lock:
            stopped = self._sampler.take_error()
            if stopped is not None:
                # A dead sampler integrates nothing more: its GPUs fail rather than report a two-point trapezoid.
                for gpu in self._sampling_gpus:
                    self._stick(gpu.domain, f"the power sampler stopped ({stopped}); the integral after it would be wrong")
            faults: dict[str, str] = {}
            self._sample_locked(faults)
            self._read_counters_locked(faults)
            stuck = self._stuck
            energy: dict[str, float] = {}
            for domain, total_mj in self._total_mj.items():
                if domain not in stuck and domain not in faults:
                    energy[domain] = total_mj / 1000.0
            for domain, joules in self._integrated_j.items():
                if domain not in stuck and domain not in faults:
                    energy[domain] = joules
            failed = MappingProxyType({**stuck, **faults}) if faults else self._stuck_view
            return Reading(energy, failed, self._epochs_view, self._reasons_view)

    def activate(self) -> None:
        """Start the power sampler when any GPU needs it."""
        if self._sampling:
            self._sampler.start()

    def deactivate(self) -> None:
        """Stop the power sampler."""
        self._sampler.stop()

    def window_warnings(self, duration_s: float) -> list[str]:
        """Warn about windows shorter than the counter's update period or the sampling period."""
        notes = []
        for gpu in self.gpus:
            if gpu.domain in self.characterised:
                continue
            period = COUNTER_UPDATE_PERIOD_S if gpu.mode == "counter" else self._sampler.period_s
            if duration_s < period:
                what = "energy counter's update period" if gpu.mode == "counter" else "power-sampling period"
                notes.append(f"{gpu.domain}: window of {duration_s:.4f} s is shorter than the {what} "
                             f"(~{period:g} s); its energy is unreliable: measure a longer window")
        return notes

    def close(self) -> None:
        """Stop sampling and shut NVML down."""
        self._sampler.close()
        try:
            self._nvml.nvmlShutdown()
        except self._nvml.NVMLError:
            pass  # shutting down a lost device's library must not mask the measurement
