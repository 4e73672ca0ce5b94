"""A fake of AMD's ``amdsmi`` Python package: same function names, arguments, return dicts, units and errors.

The names and shapes follow ROCm's ``py-interface/amdsmi_interface.py`` (ROCm 6.2 and later):
``amdsmi_get_energy_count`` returns ``energy_accumulator`` (and its deprecated alias ``power``) in counts of
``counter_resolution`` microjoules, ``amdsmi_get_power_info`` returns whole watts with ``"N/A"`` for what a GPU
does not report, errors are ``AmdSmiLibraryException`` with the C library's status code in ``err_code``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from enum import IntEnum
from types import SimpleNamespace
from typing import Any

AMDSMI_STATUS_SUCCESS = 0
AMDSMI_STATUS_INVAL = 1
AMDSMI_STATUS_NOT_SUPPORTED = 2
AMDSMI_STATUS_TIMEOUT = 8
AMDSMI_STATUS_RETRY = 9
AMDSMI_STATUS_NO_PERM = 10
AMDSMI_STATUS_IO = 12
AMDSMI_STATUS_BUSY = 30
AMDSMI_STATUS_NOT_FOUND = 31
AMDSMI_STATUS_NOT_INIT = 32
AMDSMI_STATUS_DRIVER_NOT_LOADED = 34
AMDSMI_STATUS_UNKNOWN_ERROR = 4294967295

_INFO = {
    AMDSMI_STATUS_INVAL: "AMDSMI_STATUS_INVAL - Invalid parameters",
    AMDSMI_STATUS_NOT_SUPPORTED: "AMDSMI_STATUS_NOT_SUPPORTED - Feature not supported",
    AMDSMI_STATUS_TIMEOUT: "AMDSMI_STATUS_TIMEOUT - Timeout in API call",
    AMDSMI_STATUS_RETRY: "AMDSMI_STATUS_RETRY - Retry operation",
    AMDSMI_STATUS_NO_PERM: "AMDSMI_STATUS_NO_PERM - Permission Denied",
    AMDSMI_STATUS_IO: "AMDSMI_STATUS_IO - I/O Error",
    AMDSMI_STATUS_BUSY: "AMDSMI_STATUS_BUSY - Device busy",
    AMDSMI_STATUS_NOT_FOUND: "AMDSMI_STATUS_NOT_FOUND - Device Not found",
    AMDSMI_STATUS_NOT_INIT: "AMDSMI_STATUS_NOT_INIT - Device not initialized",
    AMDSMI_STATUS_DRIVER_NOT_LOADED: "AMDSMI_STATUS_DRIVER_NOT_LOADED - Driver not loaded",
    AMDSMI_STATUS_UNKNOWN_ERROR: "AMDSMI_STATUS_UNKNOWN_ERROR - An unknown error occurred",
}
#: What the real package's ``amdsmi.amdsmi_wrapper`` module holds of these: the status codes.
amdsmi_wrapper = SimpleNamespace(**{k: v for k, v in globals().items() if k.startswith("AMDSMI_STATUS_")})


class AmdSmiException(Exception):
    """Base of every amdsmi error."""


class AmdSmiLibraryException(AmdSmiException):
    """An error status from the C library: ``err_code`` (the status) and ``err_info`` (its words)."""

    def __init__(self, err_code: int) -> None:
        err_code = abs(err_code)
        super().__init__(err_code)
        self.err_code = err_code
        self.err_info = _INFO.get(err_code, _INFO[AMDSMI_STATUS_UNKNOWN_ERROR])

    def __str__(self) -> str:
        return f"Error code:\n\t{self.err_code} | {self.err_info}"

    def get_error_info(self) -> str:
        return self.err_info

    def get_error_code(self) -> int:
        return self.err_code


class AmdSmiRetryException(AmdSmiLibraryException):
    def __init__(self) -> None:
        super().__init__(AMDSMI_STATUS_RETRY)


class AmdSmiTimeoutException(AmdSmiLibraryException):
    def __init__(self) -> None:
        super().__init__(AMDSMI_STATUS_TIMEOUT)


class AmdSmiParameterException(AmdSmiException):
    """An argument of the wrong type (a handle that is not a processor handle)."""


class AmdSmiInitFlags(IntEnum):
    INIT_ALL_PROCESSORS = 0xFFFFFFFF
    INIT_AMD_CPUS = 1 << 0
    INIT_AMD_GPUS = 1 << 1
    INIT_NON_AMD_CPUS = 1 << 2
    INIT_NON_AMD_GPUS = 1 << 3
    INIT_AMD_APUS = (1 << 0) | (1 << 1)


@dataclass
class FakeAmdGpu:
    """One fake AMD GPU. ``energy_j`` is the truth; the counter shows it in whole counts, wrapping.

    Faults: ``lost`` makes every call on the GPU raise ``AMDSMI_STATUS_NOT_FOUND`` (what a GPU gone from the
    bus answers here: the real library has no status of its own for it); ``accessible=False`` makes every call
    raise ``AMDSMI_STATUS_NO_PERM``; ``errors`` is a queue of status codes the next calls raise, one per call.

    Attributes:
        market_name: Product name (``amdsmi_get_gpu_asic_info``'s ``market_name``).
        uuid: ``amdsmi_get_gpu_device_uuid``'s answer.
        asic_serial: The unique id, hex (``"0x..."``); ROCm names the GPU ``"GPU-<16 hex digits>"`` by it.
        energy_j: Joules drawn since the driver loaded (what the counter shows, in counts).
        power_w: Power now (W, may be fractional; the library reports whole watts).
        counter_resolution_uj: Microjoules per count of the energy accumulator.
        counter_bits: The accumulator's width: it wraps at 2**counter_bits counts.
        has_counter: Whether ``amdsmi_get_energy_count`` is supported.
        has_current_power: Whether ``current_socket_power`` is reported (MI300 and newer); else only
            ``average_socket_power``.
        lost: When True every call on it raises ``AMDSMI_STATUS_NOT_FOUND``.
        accessible: When False every call on it raises ``AMDSMI_STATUS_NO_PERM``.
        errors: Status codes the next calls on this GPU raise, first one first.
        processes: Pids ``amdsmi_get_gpu_process_list`` lists on it.
    """

    market_name: str = "AMD Instinct MI300X"
    uuid: str = "54ff74a1-0000-1000-8000-000000000000"
    asic_serial: str = "0x0000000000000000"
    energy_j: float = 0.0
    power_w: float = 300.0
    counter_resolution_uj: float = 15.259
    counter_bits: int = 64
    has_counter: bool = True
    has_current_power: bool = True
    lost: bool = False
    accessible: bool = True
    errors: list[int] = field(default_factory=list)
    processes: list[int] = field(default_factory=list)

    def accumulator(self) -> int:
        """The counter's value now: whole counts of the energy drawn, modulo its width."""
        return int(self.energy_j * 1e6 / self.counter_resolution_uj) % (1 << self.counter_bits)


@dataclass(frozen=True)
class _Handle:
    """A processor handle (the real one is a ctypes pointer)."""

    index: int


class FakeAMDSMI:
    """Module-like fake of ``amdsmi``; pass it as ``amdsmi_module=`` to a Meter or AmdsmiBackend.

    Args:
        gpus: The GPUs the library lists, in its order.
        driver_present: When False, ``amdsmi_init`` fails as on a machine without the amdgpu driver.
    """

    AmdSmiException = AmdSmiException
    AmdSmiLibraryException = AmdSmiLibraryException
    AmdSmiRetryException = AmdSmiRetryException
    AmdSmiTimeoutException = AmdSmiTimeoutException
    AmdSmiParameterException = AmdSmiParameterException
    AmdSmiInitFlags = AmdSmiInitFlags
    amdsmi_wrapper = amdsmi_wrapper

    def __init__(self, gpus: list[FakeAmdGpu] | None = None, driver_present: bool = True) -> None:
        self.gpus = list(gpus) if gpus is not None else [FakeAmdGpu()]
        self.driver_present = driver_present
        self.init_count = 0
        self.calls = 0
        self._lock = threading.Lock()

    # -- the writer --------------------------------------------------------------------------------
    def draw(self, seconds: float) -> None:
        """Every GPU draws its ``power_w`` for ``seconds``: its true ``energy_j`` grows by power x time."""
        for gpu in self.gpus:
            gpu.energy_j += gpu.power_w * seconds

    # -- library lifetime -------------------------------------------------------------------------
    def amdsmi_init(self, flag: AmdSmiInitFlags = AmdSmiInitFlags.INIT_AMD_GPUS) -> None:
        if not isinstance(flag, AmdSmiInitFlags):
            raise AmdSmiParameterException(flag)
        if not self.driver_present:
            raise AmdSmiLibraryException(AMDSMI_STATUS_DRIVER_NOT_LOADED)
        with self._lock:
            self.init_count += 1

    def amdsmi_shut_down(self) -> None:
        with self._lock:
            if self.init_count == 0:
                raise AmdSmiLibraryException(AMDSMI_STATUS_NOT_INIT)
            self.init_count -= 1

    def _check(self) -> None:
        self.calls += 1
        if self.init_count <= 0:
            raise AmdSmiLibraryException(AMDSMI_STATUS_NOT_INIT)

    def _gpu(self, processor_handle: Any) -> FakeAmdGpu:
        self._check()
        if not isinstance(processor_handle, _Handle):
            raise AmdSmiParameterException(processor_handle)
        gpu = self.gpus[processor_handle.index]
        if gpu.lost:
            raise AmdSmiLibraryException(AMDSMI_STATUS_NOT_FOUND)
        if not gpu.accessible:
            raise AmdSmiLibraryException(AMDSMI_STATUS_NO_PERM)
        if gpu.errors:
            raise AmdSmiLibraryException(gpu.errors.pop(0))
        return gpu

    # -- queries ------------------------------------------------------------------------------------
    def amdsmi_get_processor_handles(self) -> list[_Handle]:
        self._check()
        return [_Handle(i) for i in range(len(self.gpus))]

    def amdsmi_get_gpu_device_uuid(self, processor_handle: Any) -> str:
        return self._gpu(processor_handle).uuid

    def amdsmi_get_gpu_asic_info(self, processor_handle: Any) -> dict[str, Any]:
        gpu = self._gpu(processor_handle)
        return {"market_name": gpu.market_name, "vendor_id": "0x1002", "vendor_name": "Advanced Micro Devices Inc.",
                "subvendor_id": "0x1002", "device_id": "0x74a1", "rev_id": "0x00",
                "asic_serial": f"0x{int(gpu.asic_serial, 16):016X}", "oam_id": 0, "num_compute_units": 304,
                "target_graphics_version": "gfx942"}

    def amdsmi_get_energy_count(self, processor_handle: Any) -> dict[str, Any]:
        """Counts of ``counter_resolution`` uJ since the driver loaded (``power`` is the old key's alias)."""
        gpu = self._gpu(processor_handle)
        if not gpu.has_counter:
            raise AmdSmiLibraryException(AMDSMI_STATUS_NOT_SUPPORTED)
        counts = gpu.accumulator()
        return {"power": counts, "energy_accumulator": counts, "counter_resolution": gpu.counter_resolution_uj,
                "timestamp": 0}

    def amdsmi_get_power_info(self, processor_handle: Any) -> dict[str, Any]:
        """Whole watts; ``"N/A"`` for a figure the GPU does not report."""
        gpu = self._gpu(processor_handle)
        watts = int(round(gpu.power_w))
        return {"current_socket_power": watts if gpu.has_current_power else "N/A",
                "average_socket_power": "N/A" if gpu.has_current_power else watts,
                "gfx_voltage": "N/A", "soc_voltage": "N/A", "mem_voltage": "N/A", "power_limit": 750}

    def amdsmi_get_gpu_process_list(self, processor_handle: Any) -> list[dict[str, Any]]:
        return [{"name": "N/A", "pid": pid, "mem": 0, "engine_usage": {"gfx": 0, "enc": 0},
                 "memory_usage": {"gtt_mem": 0, "cpu_mem": 0, "vram_mem": 0}}
                for pid in self._gpu(processor_handle).processes]
