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
import time
from types import ModuleType
from typing import Any, Callable

from pathlib import Path

from ..errors import ProfileError
from ..measurement import INTEGRATED, MEASURED
from ..profiles import PowerLimits, power_limits
from .base import HARDWARE_COUNTER, Backend, BackendStatus
from .nvml_devices import Gpu, _power_mode, _text, mig_instances, parse_visible_devices
from .nvml_session import COUNTER_UPDATE_PERIOD_S, DEFAULT_SAMPLE_PERIOD_S, NvmlSession

__all__ = ["COUNTER_UPDATE_PERIOD_S", "DEFAULT_SAMPLE_PERIOD_S", "Gpu", "NvmlBackend", "NvmlSession",
           "parse_visible_devices"]

def _mig_words(gpu: Gpu) -> str:
    """What ``energymeter devices`` says of a GPU's MIG instances (nothing when MIG is off)."""
    if not gpu.mig_uuids:
        return ""
    return (f"; MIG on, {len(gpu.mig_uuids)} instance{'s' if len(gpu.mig_uuids) != 1 else ''} visible: "
            f"{', '.join(gpu.mig_uuids)}; the counter is the whole GPU's")


def _load_pynvml() -> ModuleType:
    import pynvml  # provided by nvidia-ml-py

    return pynvml


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
        process_check: Warn in a window's Measurement when other processes use a measured GPU (its
            counter is the whole GPU's); the process list is taken at most once a second.
    """

    name = "nvml"
    kind = HARDWARE_COUNTER
    covers = ("gpu",)
    options = ("nvml_module", "sample_period_s", "clock", "visible_devices", "nvml_mode", "power_limits",
               "process_check")

    def __init__(self, nvml_module: Any = None, sample_period_s: float = DEFAULT_SAMPLE_PERIOD_S,
                 clock: Callable[[], float] | None = None, visible_devices: str | None = None,
                 nvml_mode: str = "auto", power_limits: str | Path = "power-limits", process_check: bool = True) -> None:
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
        self.process_check = bool(process_check)
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
        parts = [f"{g.domain} {g.name} ({'energy counter' if g.mode == 'counter' else g.mode + ' power sampling'}"
                 f"{_mig_words(g)})" for g in self._gpus]
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
        migs: list[tuple[str, ...]] = [()] * count
        entries = [e.strip() for e in visible.split(",")] if visible is not None else []
        # Only UUID entries need every GPU's UUID (MIG entries its instances'); index entries touch only the GPUs
        # they name.
        if any(e.startswith(("GPU-", "MIG-")) for e in entries):
            for i in range(count):
                try:
                    handle = nvml.nvmlDeviceGetHandleByIndex(i)
                    uuids[i] = _text(nvml.nvmlDeviceGetUUID(handle))
                    if any(e.startswith("MIG-") for e in entries):
                        migs[i] = mig_instances(nvml, handle)
                except nvml.NVMLError as exc:
                    notes.append(f"NVML index {i}: UUID unreadable ({exc}), so CUDA_VISIBLE_DEVICES cannot name it")
        gpus = []
        for cuda_index, nvml_index in enumerate(parse_visible_devices(visible, count, uuids, migs)):
            domain = f"gpu:{cuda_index}"
            try:
                handle = nvml.nvmlDeviceGetHandleByIndex(nvml_index)
                uuid = uuids[nvml_index] or _text(nvml.nvmlDeviceGetUUID(handle))
                name = _text(nvml.nvmlDeviceGetName(handle))
                mode = _power_mode(nvml, handle, counter_allowed=self.nvml_mode == "auto")
                mig = migs[nvml_index] or mig_instances(nvml, handle)
            except nvml.NVMLError as exc:
                notes.append(f"{domain} (NVML index {nvml_index}) left out: {exc}")
                continue
            gpus.append(Gpu(domain, nvml_index, name, mode, uuid, mig))
        return gpus, notes

    def _open(self) -> "NvmlSession":
        assert self.limits is not None  # set by a successful probe
        return NvmlSession(self._module(), self._gpus, self.sample_period_s, self.clock,
                           self.limits.for_kind("gpu"), self.limits.step_allowance_s,
                           process_check=self.process_check)
