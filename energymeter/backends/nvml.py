"""NVIDIA GPU energy through NVML (the ``nvidia-ml-py`` package, imported as ``pynvml``).

Volta and newer GPUs keep a total-energy counter (``nvmlDeviceGetTotalEnergyConsumption``, mJ): two
reads give a window's energy, provenance ``measured``. Older GPUs only report power; for them a
sampling thread integrates power over time (the instant-power field where the driver offers it, else
``nvmlDeviceGetPowerUsage``, which some boards average over about a second), provenance ``integrated``.

GPUs are named as CUDA numbers them (``gpu:0`` is ``cuda:0``), honouring ``CUDA_VISIBLE_DEVICES``.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable

from ..measurement import INTEGRATED, MEASURED
from .base import HARDWARE_COUNTER, Backend, BackendStatus, EnergySession, Poller, Reading

#: The energy counter is seen to advance every ~10 ms on some boards and ~100 ms on others; windows
#: shorter than the slower figure get a warning.
COUNTER_UPDATE_PERIOD_S = 0.1
#: Default power-sampling period for GPUs without the energy counter (seconds).
DEFAULT_SAMPLE_PERIOD_S = 0.05


def _load_pynvml() -> ModuleType:
    import pynvml  # provided by nvidia-ml-py

    return pynvml


def parse_visible_devices(value: str | None, count: int, uuids: list[str]) -> list[int]:
    """Map ``CUDA_VISIBLE_DEVICES`` onto NVML indices, in CUDA order.

    CUDA's rules: unset means every device; entries are indices or (prefixes of) UUIDs; parsing stops
    at the first invalid entry; an empty value hides every device.

    Args:
        value: The variable's value, or None when unset.
        count: Number of NVML devices.
        uuids: Each NVML device's UUID, by NVML index.

    Returns:
        NVML indices; position i is ``cuda:i``.
    """
    if value is None:
        return list(range(count))
    chosen: list[int] = []
    for entry in (e.strip() for e in value.split(",")):
        index: int | None = None
        if entry.isdigit() or (entry.startswith("-") and entry[1:].isdigit()):
            index = int(entry) if 0 <= int(entry) < count else None
        elif entry.startswith(("GPU-", "MIG-")):
            matches = [i for i, u in enumerate(uuids) if u.startswith(entry)]
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
    """

    name = "nvml"
    kind = HARDWARE_COUNTER
    covers = ("gpu",)
    options = ("nvml_module", "sample_period_s", "clock", "visible_devices", "nvml_mode")

    def __init__(self, nvml_module: Any = None, sample_period_s: float = DEFAULT_SAMPLE_PERIOD_S,
                 clock: Callable[[], float] | None = None, visible_devices: str | None = None,
                 nvml_mode: str = "auto") -> None:
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
        self._gpus: list[Gpu] = []

    def _module(self) -> Any:
        if self._nvml is None:
            self._nvml = _load_pynvml()
        return self._nvml

    def _probe(self) -> BackendStatus:
        try:
            nvml = self._module()
        except ImportError:
            return BackendStatus(self.name, False, "nvidia-ml-py is not installed: pip install 'energymeter[nvml]'")
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as exc:
            return BackendStatus(self.name, False, f"NVML did not start ({exc}): no NVIDIA driver on this machine?")
        try:
            self._gpus = self._discover(nvml)
        except nvml.NVMLError as exc:
            return BackendStatus(self.name, False, f"NVML error while listing GPUs: {exc}")
        finally:
            nvml.nvmlShutdown()
        if not self._gpus:
            return BackendStatus(self.name, False, "no NVIDIA GPU visible (check CUDA_VISIBLE_DEVICES)")
        parts = [f"{g.domain} {g.name} ({'energy counter' if g.mode == 'counter' else g.mode + ' power sampling'})"
                 for g in self._gpus]
        provenance = MEASURED if all(g.mode == "counter" for g in self._gpus) else INTEGRATED
        return BackendStatus(self.name, True, "; ".join(parts), tuple(g.domain for g in self._gpus), provenance)

    def _discover(self, nvml: Any) -> list[Gpu]:
        count = nvml.nvmlDeviceGetCount()
        handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        uuids = [_text(nvml.nvmlDeviceGetUUID(h)) for h in handles]
        visible = self._visible if self._visible is not None else os.environ.get("CUDA_VISIBLE_DEVICES")
        gpus = []
        for cuda_index, nvml_index in enumerate(parse_visible_devices(visible, count, uuids)):
            handle = handles[nvml_index]
            gpus.append(Gpu(f"gpu:{cuda_index}", nvml_index, _text(nvml.nvmlDeviceGetName(handle)),
                            _power_mode(nvml, handle, counter_allowed=self.nvml_mode == "auto"),
                            uuids[nvml_index]))
        return gpus

    def _open(self) -> "NvmlSession":
        return NvmlSession(self._module(), self._gpus, self.sample_period_s, self.clock)


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


class NvmlSession(EnergySession):
    """Reads counters directly and integrates power for sampling-only GPUs on a thread."""

    def __init__(self, nvml: Any, gpus: list[Gpu], sample_period_s: float, clock: Callable[[], float]) -> None:
        self._nvml = nvml
        self.gpus = gpus
        self.provenance = {g.domain: MEASURED if g.mode == "counter" else INTEGRATED for g in gpus}
        self.devices = {g.domain: g.uuid for g in gpus if g.uuid}
        self._clock = clock
        self._lock = threading.Lock()
        self._failed: dict[str, str] = {}
        nvml.nvmlInit()
        self._handles = {g.domain: nvml.nvmlDeviceGetHandleByIndex(g.nvml_index) for g in gpus}
        self._counter_start_mj: dict[str, int] = {}
        # Sampling state: cumulative joules and the last (time s, power W) sample.
        self._integrated_j: dict[str, float] = {}
        self._last_sample: dict[str, tuple[float, float]] = {}
        with self._lock:
            for gpu in gpus:
                if gpu.mode == "counter":
                    value = self._guard(gpu.domain, lambda h: nvml.nvmlDeviceGetTotalEnergyConsumption(h))
                    if value is not None:
                        self._counter_start_mj[gpu.domain] = int(value)
                else:
                    self._integrated_j[gpu.domain] = 0.0
            self._sample_locked()
        self._sampling = any(g.mode != "counter" for g in gpus)
        self._sampler = Poller(self.sample, sample_period_s, "energymeter-nvml-sampler")

    def _guard(self, domain: str, call: Callable[[Any], Any]) -> Any:
        """Run an NVML call for a domain; an NVML error fails that domain only."""
        if domain in self._failed:
            return None
        try:
            return call(self._handles[domain])
        except self._nvml.NVMLError as exc:
            self._failed[domain] = f"NVML: {exc}"
            return None

    def _power_w(self, gpu: Gpu) -> float | None:
        nvml = self._nvml
        if gpu.mode == "instant":
            field = self._guard(gpu.domain, lambda h: nvml.nvmlDeviceGetFieldValues(h, [nvml.NVML_FI_DEV_POWER_INSTANT])[0])
            if field is None:
                return None
            if field.nvmlReturn != nvml.NVML_SUCCESS:
                self._failed[gpu.domain] = f"NVML: {nvml.NVMLError(field.nvmlReturn)}"
                return None
            return field.value.uiVal / 1000.0
        milliwatts = self._guard(gpu.domain, lambda h: nvml.nvmlDeviceGetPowerUsage(h))
        return None if milliwatts is None else milliwatts / 1000.0

    def sample(self) -> None:
        """Take one power sample of each sampling-only GPU and integrate it (trapezoid rule)."""
        with self._lock:
            self._sample_locked()

    def _sample_locked(self) -> None:
        for gpu in self.gpus:
            if gpu.mode == "counter" or gpu.domain in self._failed:
                continue
            power_w = self._power_w(gpu)
            if power_w is None:
                continue
            now = self._clock()
            last = self._last_sample.get(gpu.domain)
            if last is not None:
                self._integrated_j[gpu.domain] += (now - last[0]) * (power_w + last[1]) / 2.0
            self._last_sample[gpu.domain] = (now, power_w)

    def read(self) -> Reading:
        """Cumulative joules per GPU since the session opened."""
        nvml = self._nvml
        with self._lock:
            self._sample_locked()
            energy: dict[str, float] = {}
            for gpu in self.gpus:
                if gpu.mode == "counter":
                    value = self._guard(gpu.domain, lambda h: nvml.nvmlDeviceGetTotalEnergyConsumption(h))
                    if value is not None and gpu.domain in self._counter_start_mj:
                        energy[gpu.domain] = (int(value) - self._counter_start_mj[gpu.domain]) / 1000.0
                elif gpu.domain not in self._failed:
                    energy[gpu.domain] = self._integrated_j[gpu.domain]
            return Reading({d: j for d, j in energy.items() if d not in self._failed}, dict(self._failed))

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
