"""An opened NVML session: the NVML calls under the shared GPU session (``gpu_session.GpuSession``).

Faults degrade one GPU, not the backend: an NVML error is retried (``RETRY_DELAYS_S``); one that persists
fails that GPU for that read and bumps its epoch, so only windows spanning it fail; ``GPU is lost`` stays.
Under MIG the energy counter is the whole GPU's: the domain stays the GPU (scope ``device``, its UUID) and
every window says so.
"""

from __future__ import annotations

from typing import Any

from ..errors import BackendUnavailable
from .gpu_backend import DEFAULT_SAMPLE_PERIOD_S
from .gpu_session import RETRY_DELAYS_S, GpuSession
from .nvml_devices import Gpu

__all__ = ["COUNTER_UPDATE_PERIOD_S", "DEFAULT_SAMPLE_PERIOD_S", "NVML_ERROR_GPU_IS_LOST", "NvmlSession",
           "RETRY_DELAYS_S"]

#: The energy counter is seen to advance every ~10 ms on some boards and ~100 ms on others; windows
#: shorter than the slower figure get a warning.
COUNTER_UPDATE_PERIOD_S = 0.1
#: The one NVML error that does not heal: the GPU fell off the bus.
NVML_ERROR_GPU_IS_LOST = 15


class NvmlSession(GpuSession):
    """Reads counters directly and integrates power for sampling-only GPUs on a thread.

    Takes ``GpuSession``'s arguments, ``module`` being the NVML module; other processes are listed with
    ``nvmlDeviceGetComputeRunningProcesses``.
    """

    library = "NVML"
    counter_unit = "mJ"
    counter_update_period_s = COUNTER_UPDATE_PERIOD_S

    def _start_library(self, nvml: Any, gpus: list[Gpu]) -> list[str]:
        self._nvml = nvml
        self.error_class = nvml.NVMLError
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as exc:
            raise BackendUnavailable(f"nvml: NVML did not start when opening the session ({exc})") from exc
        return [f"{g.domain}: MIG is on ({len(g.mig_uuids)} instance{'s' if len(g.mig_uuids) != 1 else ''}): its "
                "energy counter is the whole GPU's, so every instance's work is in these joules"
                for g in gpus if g.mig_uuids]

    def _open_handle(self, gpu: Gpu) -> Any:
        # By UUID where known: the handle is the GPU that was probed, whatever the indices do now.
        nvml = self._nvml
        return nvml.nvmlDeviceGetHandleByUUID(gpu.uuid) if gpu.uuid else nvml.nvmlDeviceGetHandleByIndex(gpu.nvml_index)

    def _counter_raw(self, gpu: Gpu, handle: Any) -> int:
        return self._nvml.nvmlDeviceGetTotalEnergyConsumption(handle)

    def _counter_unit_j(self, gpu: Gpu) -> float:
        return 1e-3

    def _power_w(self, gpu: Gpu, handle: Any) -> float:
        nvml = self._nvml
        if gpu.mode == "instant":
            field = nvml.nvmlDeviceGetFieldValues(handle, [nvml.NVML_FI_DEV_POWER_INSTANT])[0]
            if field.nvmlReturn != nvml.NVML_SUCCESS:
                raise nvml.NVMLError(field.nvmlReturn)
            return field.value.uiVal / 1000.0
        return nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0

    def _is_sticky(self, exc: BaseException) -> bool:
        return getattr(exc, "value", None) == NVML_ERROR_GPU_IS_LOST

    def _pids(self, gpu: Gpu, handle: Any) -> "list[int] | None":
        return [int(p.pid) for p in self._nvml.nvmlDeviceGetComputeRunningProcesses(handle)]

    def _shutdown(self) -> None:
        try:
            self._nvml.nvmlShutdown()
        except self._nvml.NVMLError:
            pass  # shutting down a lost device's library must not mask the measurement
