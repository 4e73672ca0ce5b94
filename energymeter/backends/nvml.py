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
from types import ModuleType
from typing import Any, Callable

from .gpu_backend import GpuBackend
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


class NvmlBackend(GpuBackend):
    """NVIDIA GPUs through NVML.

    Args:
        nvml_module: An object with nvidia-ml-py's interface (default: ``import pynvml``); tests pass
            ``energymeter.testing.FakeNVML``.
        visible_devices: Overrides ``CUDA_VISIBLE_DEVICES`` (None reads the environment).
        nvml_mode: ``"auto"`` (the energy counter where the GPU has it) or ``"sampling"`` (always
            integrate power samples, e.g. to compare the two paths on one GPU).
        sample_period_s, clock, power_limits, process_check: ``GpuBackend``'s.
    """

    name = "nvml"
    options = ("nvml_module", "visible_devices", "nvml_mode", *GpuBackend.options)
    library_missing = "nvidia-ml-py is not installed: pip install 'energymeter[nvml]'"
    not_started = "NVML did not start ({exc}): no NVIDIA driver on this machine?"
    none_visible = "no NVIDIA GPU visible (check CUDA_VISIBLE_DEVICES)"

    def __init__(self, nvml_module: Any = None, visible_devices: str | None = None, nvml_mode: str = "auto",
                 **common: Any) -> None:
        super().__init__(nvml_mode, **common)
        self.nvml_mode = nvml_mode
        self._nvml = nvml_module
        self._visible = visible_devices

    def _module(self) -> Any:
        if self._nvml is None:
            self._nvml = _load_pynvml()
        return self._nvml

    def _library_calls(self, nvml: Any) -> tuple[type, Callable[[], Any], Callable[[], Any]]:
        # Looked up when called: a module whose start fails may have nothing else to offer.
        return nvml.NVMLError, lambda: nvml.nvmlInit(), lambda: nvml.nvmlShutdown()

    def _describe(self, gpu: Gpu) -> str:
        how = "energy counter" if gpu.mode == "counter" else gpu.mode + " power sampling"
        return f"{gpu.domain} {gpu.name} ({how}{_mig_words(gpu)})"

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
