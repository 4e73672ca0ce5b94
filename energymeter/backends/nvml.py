"""NVIDIA GPU energy through NVML (the ``nvidia-ml-py`` package, imported as ``pynvml``).

Volta and newer GPUs keep a total-energy counter (``nvmlDeviceGetTotalEnergyConsumption``, mJ): two
reads give a window's energy, provenance ``measured``. Older GPUs only report power; for them a
sampling thread integrates power over time (the instant-power field where the driver offers it, else
``nvmlDeviceGetPowerUsage``, which some boards average over about a second), provenance ``integrated``.

GPUs are named as CUDA numbers them (``gpu:0`` is ``cuda:0``), honouring ``CUDA_VISIBLE_DEVICES``: only
the GPUs it makes visible are touched, and a visible GPU NVML cannot open is left out with its reason
while the others are used.

Faults degrade one GPU, never the backend. A query that raises an NVML error is retried a few times
(``RETRY_DELAYS_S``); one that still fails fails that GPU for that read and raises its epoch
(``Reading.epochs``), so only the windows spanning the fault fail. ``GPU is lost`` fails the GPU for the
rest of the session. No counter is believed blindly: an energy counter that goes backwards, or steps by
more than the GPU's power ceiling (``power-limits`` profile) x (time since the previous read + the
profile's allowance), and a power sample that is negative or above the ceiling, are faults of the same
kind. For power-sampling GPUs a failed sample is a gap: the trapezoid restarts after it.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable

from pathlib import Path
from types import MappingProxyType
from typing import Mapping

from ..errors import BackendUnavailable, ProfileError
from ..measurement import INTEGRATED, MEASURED
from ..profiles import PowerLimits, power_limits
from .base import HARDWARE_COUNTER, Backend, BackendStatus, EnergySession, Poller, Reading

#: The energy counter is seen to advance every ~10 ms on some boards and ~100 ms on others; windows
#: shorter than the slower figure get a warning.
COUNTER_UPDATE_PERIOD_S = 0.1
#: Default power-sampling period for GPUs without the energy counter (seconds).
DEFAULT_SAMPLE_PERIOD_S = 0.05
#: Pauses before each retry of a failed NVML query (s): three quick retries, 7 ms in all, ride out a
#: driver that is briefly busy without stalling a window edge for long.
RETRY_DELAYS_S = (0.001, 0.002, 0.004)
#: The one NVML error that does not heal: the GPU fell off the bus.
NVML_ERROR_GPU_IS_LOST = 15
_EMPTY: Mapping = MappingProxyType({})


def _load_pynvml() -> ModuleType:
    import pynvml  # provided by nvidia-ml-py

    return pynvml


def parse_visible_devices(value: str | None, count: int, uuids: list[str]) -> list[int]:
    """Map ``CUDA_VISIBLE_DEVICES`` onto NVML indices, in CUDA order.

    CUDA's rules: unset means every device; entries are indices (ASCII digits) or (prefixes of) UUIDs;
    parsing stops at the first invalid entry (a non-ASCII digit such as ``"²"`` included); an empty
    value hides every device.

    Args:
        value: The variable's value, or None when unset.
        count: Number of NVML devices.
        uuids: Each NVML device's UUID, by NVML index (``""`` where unknown; only consulted for UUID entries).

    Returns:
        NVML indices; position i is ``cuda:i``.
    """
    if value is None:
        return list(range(count))
    chosen: list[int] = []
    for entry in (e.strip() for e in value.split(",")):
        index: int | None = None
        if entry.isascii() and (entry.isdigit() or (entry.startswith("-") and entry[1:].isdigit())):
            index = int(entry) if 0 <= int(entry) < count else None
        elif entry.startswith(("GPU-", "MIG-")):
            matches = [i for i, u in enumerate(uuids) if u and u.startswith(entry)]
            index = matches[0] if len(matches) == 1 else None
        if index is None or index in chosen:
            break
        chosen.append(index)
    return chosen


@dataclass(frozen=True)
class Gpu:
    """One visible GPU.

    Attributes:
        domain: ``"gpu:N"`` with N the CUDA index.
        nvml_index: NVML's index for it.
        name: Product name.
        uuid: NVML's UUID (``"GPU-..."``), the GPU's identity across processes.
        mode: ``"counter"`` (energy counter) or ``"instant"`` / ``"average"`` (power sampling).
    """

    domain: str
    nvml_index: int
    name: str
    mode: str
    uuid: str = ""


class NvmlBackend(Backend):
    """NVIDIA GPUs through NVML.

    Args:
        nvml_module: An object with nvidia-ml-py's interface (default: ``import pynvml``); tests pass
            ``energymeter.testing.FakeNVML``.
        sample_period_s: Power-sampling period for GPUs without the energy counter (seconds).
        clock: Monotonic clock in seconds.
        visible_devices: Overrides ``CUDA_VISIBLE_DEVICES`` (None reads the environment).
        nvml_mode: ``"auto"`` (the energy counter where the GPU has it) or ``"sampling"`` (always
            integrate power samples, e.g. to compare the two paths on one GPU).
        power_limits: The power-ceilings profile, a bundled name or a JSON path (default ``"power-limits"``);
            its ``gpu`` ceiling judges counter steps and power samples.
    """

    name = "nvml"
    kind = HARDWARE_COUNTER
    covers = ("gpu",)
    options = ("nvml_module", "sample_period_s", "clock", "visible_devices", "nvml_mode", "power_limits")

    def __init__(self, nvml_module: Any = None, sample_period_s: float = DEFAULT_SAMPLE_PERIOD_S,
                 clock: Callable[[], float] | None = None, visible_devices: str | None = None,
                 nvml_mode: str = "auto", power_limits: str | Path = "power-limits") -> None:
        super().__init__()
        if nvml_mode not in ("auto", "sampling"):
            raise ValueError(f"nvml_mode must be 'auto' or 'sampling', got {nvml_mode!r}")
        self.nvml_mode = nvml_mode
        self._nvml = nvml_module
        if not sample_period_s > 0:
            raise ValueError(f"sample_period_s must be positive, got {sample_period_s!r}")
        self.sample_period_s = float(sample_period_s)
        self.clock = clock or time.monotonic
        self._visible = visible_devices
        self.limits_profile = power_limits
        self.limits: PowerLimits | None = None
        self._gpus: list[Gpu] = []
        #: Visible GPUs left out, and why.
        self.left_out: list[str] = []

    def _module(self) -> Any:
        if self._nvml is None:
            self._nvml = _load_pynvml()
        return self._nvml

    def _probe(self) -> BackendStatus:
        try:
            self.limits = power_limits(self.limits_profile)
        except ProfileError as exc:
            return BackendStatus(self.name, False, str(exc))
        try:
            nvml = self._module()
        except ImportError:
            return BackendStatus(self.name, False, "nvidia-ml-py is not installed: pip install 'energymeter[nvml]'")
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as exc:
            return BackendStatus(self.name, False, f"NVML did not start ({exc}): no NVIDIA driver on this machine?")
        try:
            self._gpus, self.left_out = self._discover(nvml)
        except nvml.NVMLError as exc:
            return BackendStatus(self.name, False, f"NVML error while listing GPUs: {exc}")
        finally:
            try:
                nvml.nvmlShutdown()
            except nvml.NVMLError:
                pass  # the probe's verdict stands; the session starts NVML afresh
        left_out = "; ".join(self.left_out)
        if not self._gpus:
            reason = "no NVIDIA GPU visible (check CUDA_VISIBLE_DEVICES)"
            return BackendStatus(self.name, False, reason + (f": {left_out}" if left_out else ""))
        parts = [f"{g.domain} {g.name} ({'energy counter' if g.mode == 'counter' else g.mode + ' power sampling'})"
                 for g in self._gpus]
        if left_out:
            parts.append(left_out)
        provenance = MEASURED if all(g.mode == "counter" for g in self._gpus) else INTEGRATED
        return BackendStatus(self.name, True, "; ".join(parts), tuple(g.domain for g in self._gpus), provenance)

    def _discover(self, nvml: Any) -> tuple[list[Gpu], list[str]]:
        """The visible GPUs NVML can open, and a note for each visible one it cannot."""
        count = nvml.nvmlDeviceGetCount()
        visible = self._visible if self._visible is not None else os.environ.get("CUDA_VISIBLE_DEVICES")
        notes: list[str] = []
        uuids = [""] * count
        # Only UUID entries need every GPU's UUID; index entries touch only the GPUs they name.
        if visible is not None and any(e.strip().startswith(("GPU-", "MIG-")) for e in visible.split(",")):
            for i in range(count):
                try:
                    uuids[i] = _text(nvml.nvmlDeviceGetUUID(nvml.nvmlDeviceGetHandleByIndex(i)))
                except nvml.NVMLError as exc:
                    notes.append(f"NVML index {i}: UUID unreadable ({exc}), so CUDA_VISIBLE_DEVICES cannot name it")
        gpus = []
        for cuda_index, nvml_index in enumerate(parse_visible_devices(visible, count, uuids)):
            domain = f"gpu:{cuda_index}"
            try:
                handle = nvml.nvmlDeviceGetHandleByIndex(nvml_index)
                uuid = uuids[nvml_index] or _text(nvml.nvmlDeviceGetUUID(handle))
                name = _text(nvml.nvmlDeviceGetName(handle))
                mode = _power_mode(nvml, handle, counter_allowed=self.nvml_mode == "auto")
            except nvml.NVMLError as exc:
                notes.append(f"{domain} (NVML index {nvml_index}) left out: {exc}")
                continue
            gpus.append(Gpu(domain, nvml_index, name, mode, uuid))
        return gpus, notes

    def _open(self) -> "NvmlSession":
        assert self.limits is not None  # set by a successful probe
        return NvmlSession(self._module(), self._gpus, self.sample_period_s, self.clock,
                           self.limits.for_kind("gpu"), self.limits.step_allowance_s)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _power_mode(nvml: Any, handle: Any, counter_allowed: bool = True) -> str:
    if counter_allowed:
        try:
            nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
            return "counter"
        except nvml.NVMLError:
            pass
    try:
        field = nvml.nvmlDeviceGetFieldValues(handle, [nvml.NVML_FI_DEV_POWER_INSTANT])[0]
        if field.nvmlReturn == nvml.NVML_SUCCESS:
            return "instant"
    except (nvml.NVMLError, AttributeError):
        pass
    return "average"


class _Fault(Exception):
    """An NVML query that failed for one GPU (after its retries); ``sticky`` when the GPU is gone for good."""

    def __init__(self, reason: str, sticky: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.sticky = sticky


class NvmlSession(EnergySession):
    """Reads counters directly and integrates power for sampling-only GPUs on a thread.

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

    def __init__(self, nvml: Any, gpus: list[Gpu], sample_period_s: float, clock: Callable[[], float],
                 max_power_w: float = 3000.0, step_allowance_s: float = 1.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._nvml = nvml
        self.gpus = gpus
        self.provenance = {g.domain: MEASURED if g.mode == "counter" else INTEGRATED for g in gpus}
        self.devices = {g.domain: g.uuid for g in gpus if g.uuid}
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
        budget_s = clock() - self._prev_read_start_s + self._allowance_s
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
                elapsed_s = budget_s - self._allowance_s
                self._fault(domain, f"energy counter jumped forward by {delta / 1000:.1f} J in {elapsed_s:.3g} s, "
                            f"above the {self.max_power_w:g} W ceiling (+{self._allowance_s:g} s allowance)", faults)
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
            return Reading(energy, failed, self._epochs_view)

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
