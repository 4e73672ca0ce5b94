"""An opened amdsmi session: the amdsmi calls under the shared GPU session (``gpu_session.GpuSession``).

The energy accumulator counts in units of ``counter_resolution`` microjoules; the session sums whole counts
and converts once per read. Its width is not published per ASIC, so a backwards step is taken as a wrap of a
32- or 64-bit accumulator where the wrapped step is one the power ceiling allows, and is a fault otherwise; while
a window is open the counters are read at least four times per 32-bit wrap at the ceiling (every ~5 s at
15.3 uJ per count and 3000 W), so no wrap between two window edges goes unseen.
Faults degrade one GPU: an amdsmi error is retried; ``AMDSMI_STATUS_NOT_FOUND`` (the device is gone) is not,
and fails that GPU for the session.
"""

from __future__ import annotations

from typing import Any

from ..errors import BackendUnavailable
from .amdsmi_devices import AmdGpu, counter_counts, watts
from .gpu_session import GpuSession

#: AMD publishes no update period for the accumulator; NVML's slower figure stands in until it is measured.
COUNTER_UPDATE_PERIOD_S = 0.1
#: ``amdsmi_wrapper``'s status codes used here (stable values of the C library's ``amdsmi_status_t``).
AMDSMI_STATUS_NOT_SUPPORTED = 2
AMDSMI_STATUS_NOT_FOUND = 31
AMDSMI_STATUS_UNEXPECTED_DATA = 43


class AmdsmiSession(GpuSession):
    """Reads AMD GPUs' energy accumulators, or integrates their power on a sampler thread.

    Takes ``GpuSession``'s arguments, ``module`` being the amdsmi module; other processes are listed with
    ``amdsmi_get_gpu_process_list``.
    """

    library = "amdsmi"
    counter_unit = "counts"
    counter_update_period_s = COUNTER_UPDATE_PERIOD_S
    counter_moduli = (1 << 32, 1 << 64)

    def _start_library(self, smi: Any, gpus: list[AmdGpu]) -> list[str]:
        self._smi = smi
        self.error_class = smi.AmdSmiException
        try:
            smi.amdsmi_init(smi.AmdSmiInitFlags.INIT_AMD_GPUS)
            self._all_handles = list(smi.amdsmi_get_processor_handles())
        except smi.AmdSmiException as exc:
            raise BackendUnavailable(f"amdsmi: the library did not start when opening the session ({exc})") from exc
        return []

    def _open_handle(self, gpu: AmdGpu) -> Any:
        # By UUID where known: the handle is the GPU that was probed, whatever the order does now.
        smi = self._smi
        if gpu.uuid:
            for handle in self._all_handles:
                try:
                    if smi.amdsmi_get_gpu_device_uuid(handle) == gpu.uuid:
                        return handle
                except smi.AmdSmiException:
                    continue  # another GPU that cannot answer; the one we want may still be found
        if gpu.index >= len(self._all_handles) or gpu.uuid:
            raise smi.AmdSmiLibraryException(AMDSMI_STATUS_NOT_FOUND)
        return self._all_handles[gpu.index]

    def _counter_raw(self, gpu: AmdGpu, handle: Any) -> int:
        counts = counter_counts(self._smi.amdsmi_get_energy_count(handle))
        if counts is None:
            raise self._smi.AmdSmiLibraryException(AMDSMI_STATUS_UNEXPECTED_DATA)
        return counts

    def _counter_unit_j(self, gpu: AmdGpu) -> float:
        return gpu.resolution_uj * 1e-6

    def _power_w(self, gpu: AmdGpu, handle: Any) -> float:
        power_w = watts(self._smi.amdsmi_get_power_info(handle).get(gpu.mode))
        if power_w is None:
            raise self._smi.AmdSmiLibraryException(AMDSMI_STATUS_NOT_SUPPORTED)
        return power_w

    def _is_sticky(self, exc: BaseException) -> bool:
        return getattr(exc, "err_code", None) == AMDSMI_STATUS_NOT_FOUND

    def _pids(self, gpu: AmdGpu, handle: Any) -> "list[int] | None":
        entries = self._smi.amdsmi_get_gpu_process_list(handle)
        # Older libraries return process handles, not dicts with a pid: those cannot say whose they are.
        if not all(isinstance(e, dict) and isinstance(e.get("pid"), int) for e in entries):
            return None
        return [e["pid"] for e in entries]

    def _shutdown(self) -> None:
        try:
            self._smi.amdsmi_shut_down()
        except self._smi.AmdSmiException:
            pass  # shutting down a lost device's library must not mask the measurement
