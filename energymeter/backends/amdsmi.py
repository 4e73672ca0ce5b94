"""AMD GPU energy through AMD SMI (the ``amdsmi`` package ROCm ships; ``pip install 'energymeter[amd]'``).

GPUs with an energy accumulator (``amdsmi_get_energy_count``: counts of ``counter_resolution`` uJ) are read
directly, provenance ``measured``; the others are sampled (``amdsmi_get_power_info``'s instant, socket or
average figure, whole watts) on a thread and integrated, provenance ``integrated``.

GPUs are named as HIP numbers them, ``gpu:amd:N``, so they sit beside NVML's ``gpu:N`` in one meter; each
domain's device id is the library's UUID, so ``distributed.merge`` counts a GPU once however many ranks see
it. ``ROCR_VISIBLE_DEVICES`` and ``HIP_VISIBLE_DEVICES`` (or ``CUDA_VISIBLE_DEVICES``, which HIP honours when
``HIP_VISIBLE_DEVICES`` is unset) choose the GPUs, as the runtime applies them (``amdsmi_devices``); a visible
GPU the library cannot open is left out with its reason while the others are used. Faults degrade one GPU,
never the backend, with NVML's rules (``gpu_session``).
"""

from __future__ import annotations

import contextlib
import io
import os
from typing import Any, Callable

from .amdsmi_devices import AmdGpu, counter_resolution_uj, power_field, rocm_uuid, visible_indices
from .amdsmi_session import AmdsmiSession
from .gpu_backend import GpuBackend

__all__ = ["AmdGpu", "AmdsmiBackend", "AmdsmiSession"]


def _load_amdsmi() -> Any:
    # The package prints to stdout when it cannot find libamd_smi.so; nothing of ours prints unasked.
    with contextlib.redirect_stdout(io.StringIO()):
        import amdsmi  # provided by ROCm (or pip install amdsmi matching the installed ROCm)

    return amdsmi


class AmdsmiBackend(GpuBackend):
    """AMD GPUs through amdsmi.

    Args:
        amdsmi_module: An object with amdsmi's interface (default: ``import amdsmi``); tests pass
            ``energymeter.testing.FakeAMDSMI``.
        amd_visible_devices: Which GPUs, as a ``HIP_VISIBLE_DEVICES`` value over every GPU the library lists; it
            replaces all three variables (None reads the environment's ROCR, HIP and CUDA variables).
        amdsmi_mode: ``"auto"`` (the energy accumulator where the GPU has it) or ``"sampling"``.
        sample_period_s, clock, power_limits, process_check: As for ``NvmlBackend``.
    """

    name = "amdsmi"
    options = ("amdsmi_module", "amd_visible_devices", "amdsmi_mode", *GpuBackend.options)
    library_missing = "amdsmi is not importable ({exc}): install ROCm and pip install 'energymeter[amd]'"
    not_started = "amdsmi did not start ({exc}): no amdgpu driver on this machine?"
    none_visible = "no AMD GPU visible (check ROCR_VISIBLE_DEVICES / HIP_VISIBLE_DEVICES)"
    # Importing amdsmi without ROCm fails in more ways than ImportError (a missing libamd_smi.so, a
    # library of another ROCm version).
    import_errors = (ImportError, OSError, AttributeError, KeyError)

    def __init__(self, amdsmi_module: Any = None, amd_visible_devices: str | None = None,
                 amdsmi_mode: str = "auto", **common: Any) -> None:
        super().__init__(amdsmi_mode, **common)
        self._smi = amdsmi_module
        self._visible = amd_visible_devices
        self._gpus: list[AmdGpu] = []

    def _module(self) -> Any:
        if self._smi is None:
            self._smi = _load_amdsmi()
        return self._smi

    def _library_calls(self, smi: Any) -> tuple[type, Callable[[], Any], Callable[[], Any]]:
        return (smi.AmdSmiException, lambda: smi.amdsmi_init(smi.AmdSmiInitFlags.INIT_AMD_GPUS),
                lambda: smi.amdsmi_shut_down())

    def _describe(self, gpu: AmdGpu) -> str:
        how = f"energy accumulator, {gpu.resolution_uj:g} uJ per count" if gpu.mode == "counter" else gpu.mode
        return f"{gpu.domain} {gpu.name} ({how}{' sampling' if gpu.mode != 'counter' else ''})"

    def _discover(self, smi: Any) -> tuple[list[AmdGpu], list[str]]:
        """The visible GPUs the library can open, and a note for each visible one it cannot."""
        handles = list(smi.amdsmi_get_processor_handles())
        env = os.environ if self._visible is None else {"HIP_VISIBLE_DEVICES": self._visible}
        notes: list[str] = []
        uuids = [""] * len(handles)
        # Only UUID entries need every GPU's ROCm UUID; index entries touch only the GPUs they name.
        if any("GPU-" in (env.get(v) or "") for v in ("ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES",
                                                       "CUDA_VISIBLE_DEVICES")):
            for i, handle in enumerate(handles):
                try:
                    uuids[i] = rocm_uuid(smi.amdsmi_get_gpu_asic_info(handle).get("asic_serial", ""))
                except smi.AmdSmiException as exc:
                    notes.append(f"amdsmi index {i}: unique id unreadable ({exc}), so a GPU- entry cannot name it")
        gpus = []
        for hip_index, index in enumerate(visible_indices(env, len(handles), uuids)):
            domain = f"gpu:amd:{hip_index}"
            handle = handles[index]
            try:
                uuid = str(smi.amdsmi_get_gpu_device_uuid(handle))
                name = str(smi.amdsmi_get_gpu_asic_info(handle).get("market_name", "AMD GPU"))
                resolution_uj = counter_resolution_uj(smi, handle) if self.mode == "auto" else 0.0
                mode = "counter" if resolution_uj else power_field(smi, handle)
            except smi.AmdSmiException as exc:
                notes.append(f"{domain} (amdsmi index {index}) left out: {exc}")
                continue
            gpus.append(AmdGpu(domain, index, name, mode, uuid, resolution_uj))
        return gpus, notes

    def _open(self) -> AmdsmiSession:
        assert self.limits is not None  # set by a successful probe
        return AmdsmiSession(self._module(), self._gpus, self.sample_period_s, self.clock,
                             self.limits.for_kind("gpu"), self.limits.step_allowance_s,
                             process_check=self.process_check)
