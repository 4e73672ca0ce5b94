"""A fake of nvidia-ml-py's ``pynvml`` module: same function names, arguments, units and errors."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

NVML_SUCCESS = 0
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_TIMEOUT = 10
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_UNKNOWN = 999
NVML_FI_DEV_POWER_INSTANT = 186
NVML_VALUE_TYPE_UNSIGNED_INT = 1

_MESSAGES = {
    NVML_ERROR_UNINITIALIZED: "Uninitialized",
    NVML_ERROR_INVALID_ARGUMENT: "Invalid Argument",
    NVML_ERROR_NOT_SUPPORTED: "Not Supported",
    NVML_ERROR_NO_PERMISSION: "Insufficient Permissions",
    NVML_ERROR_NOT_FOUND: "Not Found",
    NVML_ERROR_TIMEOUT: "Timeout",
    NVML_ERROR_LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
    NVML_ERROR_GPU_IS_LOST: "GPU is lost",
    NVML_ERROR_UNKNOWN: "Unknown Error",
}


class NVMLError(Exception):
    """Like pynvml's: ``NVMLError(code)`` builds the subclass for that code; ``.value`` is the code."""

    _classes: dict[int, type] = {}

    def __new__(cls, value: int) -> "NVMLError":
        if cls is NVMLError:
            cls = NVMLError._classes.get(value, cls)
        obj = Exception.__new__(cls)
        obj.value = value
        return obj

    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return _MESSAGES.get(self.value, f"Unknown Error ({self.value})")


for _code, _text in _MESSAGES.items():
    _name = "NVMLError_" + "".join(w.capitalize() for w in _text.replace("NVML ", "").split())
    NVMLError._classes[_code] = type(_name, (NVMLError,), {})

NVMLError_NotSupported = NVMLError._classes[NVML_ERROR_NOT_SUPPORTED]
NVMLError_GpuIsLost = NVMLError._classes[NVML_ERROR_GPU_IS_LOST]
NVMLError_LibraryNotFound = NVMLError._classes[NVML_ERROR_LIBRARY_NOT_FOUND]
NVMLError_NoPermission = NVMLError._classes[NVML_ERROR_NO_PERMISSION]
NVMLError_Timeout = NVMLError._classes[NVML_ERROR_TIMEOUT]
NVMLError_Unknown = NVMLError._classes[NVML_ERROR_UNKNOWN]


@dataclass
class FakeGpu:
    """One fake GPU. Change ``energy_mj``/``power_mw`` between reads; set ``lost`` to lose it.

    Faults, as a real driver shows them: ``lost`` makes every call on the GPU (getting its handle
    included) raise ``GPU is lost``; ``accessible=False`` makes getting its handle raise ``Insufficient
    Permissions`` (a GPU this process's cgroup may not open); ``errors`` is a queue of NVML error codes
    that the next queries on this GPU raise, one per call (e.g. ``[NVML_ERROR_TIMEOUT]`` for one
    transient timeout).

    A counter that updates like hardware: with ``update_period_s`` above 0 the GPU draws ``power_mw``
    continuously and its energy counter shows ``energy_mj`` plus what it drew, in whole steps of
    ``resolution_mj`` (the rest carried), as of its latest update: the value changes once per update
    period and holds between updates. With 0 (the default) it shows ``energy_mj`` as set, at once.

    Attributes:
        name: Product name.
        uuid: ``"GPU-..."`` identifier.
        energy_mj: Total-energy counter in millijoules (``has_counter`` GPUs).
        power_mw: Power in milliwatts.
        has_counter: Whether ``nvmlDeviceGetTotalEnergyConsumption`` is supported (Volta and newer).
        has_instant_power: Whether the ``NVML_FI_DEV_POWER_INSTANT`` field is supported.
        mig_instances: UUIDs (``"MIG-..."``) of its MIG instances; MIG is on when there is any.
        processes: Pids of the processes ``nvmlDeviceGetComputeRunningProcesses`` lists on it.
        lost: When True every call on this GPU raises ``GPU is lost``.
        accessible: When False getting a handle to this GPU raises ``Insufficient Permissions``.
        errors: NVML error codes the next queries on this GPU raise, first one first.
        update_period_s: Seconds between the energy counter's updates (0: none, the counter shows ``energy_mj``).
        resolution_mj: The energy counter's step (mJ).
    """

    name: str = "NVIDIA H200"
    uuid: str = "GPU-00000000-0000-0000-0000-000000000000"
    energy_mj: int = 0
    power_mw: int = 100_000
    has_counter: bool = True
    has_instant_power: bool = True
    mig_instances: list[str] = field(default_factory=list)
    processes: list[int] = field(default_factory=list)
    lost: bool = False
    accessible: bool = True
    errors: list[int] = field(default_factory=list)
    update_period_s: float = 0.0
    resolution_mj: int = 1


class _Value:
    def __init__(self, ui: int) -> None:
        self.uiVal = ui
        self.ullVal = ui
        self.dVal = float(ui)


class _FieldValue:
    def __init__(self, field_id: int, ret: int, value: int) -> None:
        self.fieldId = field_id
        self.scopeId = 0
        self.timestamp = 0
        self.latencyUsec = 0
        self.valueType = NVML_VALUE_TYPE_UNSIGNED_INT
        self.nvmlReturn = ret
        self.value = _Value(value)


def _migs(gpu: Any) -> list[str]:
    # A GPU object of one's own (duck-typed like FakeGpu, as the GPU check's ModelGpu) may predate these fields.
    return list(getattr(gpu, "mig_instances", ()))


@dataclass(frozen=True)
class _MigHandle:
    """A MIG instance's handle: the GPU's index and the instance's slot."""

    gpu: int
    slot: int


class _Process:
    """One entry of ``nvmlDeviceGetComputeRunningProcesses`` (the fields nvidia-ml-py's objects carry)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.usedGpuMemory = 0
        self.gpuInstanceId = 0xFFFFFFFF
        self.computeInstanceId = 0xFFFFFFFF


class FakeNVML:
    """Module-like fake of ``pynvml``; pass it as ``nvml_module=`` to a Meter or NvmlBackend.

    Args:
        gpus: The GPUs NVML lists, in NVML order.
        driver_present: When False, ``nvmlInit`` fails as on a machine without the driver.
        clock: Monotonic clock (s) that times the counters' updates (``FakeGpu.update_period_s``).
    """

    NVMLError = NVMLError
    NVML_SUCCESS = NVML_SUCCESS
    NVML_ERROR_NOT_SUPPORTED = NVML_ERROR_NOT_SUPPORTED
    NVML_ERROR_NO_PERMISSION = NVML_ERROR_NO_PERMISSION
    NVML_ERROR_TIMEOUT = NVML_ERROR_TIMEOUT
    NVML_ERROR_UNKNOWN = NVML_ERROR_UNKNOWN
    NVML_ERROR_GPU_IS_LOST = NVML_ERROR_GPU_IS_LOST
    NVML_ERROR_UNINITIALIZED = NVML_ERROR_UNINITIALIZED
    NVML_ERROR_LIBRARY_NOT_FOUND = NVML_ERROR_LIBRARY_NOT_FOUND
    NVML_FI_DEV_POWER_INSTANT = NVML_FI_DEV_POWER_INSTANT
    NVML_DEVICE_MIG_DISABLE = 0
    NVML_DEVICE_MIG_ENABLE = 1

    def __init__(self, gpus: list[FakeGpu] | None = None, driver_present: bool = True,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.gpus = list(gpus) if gpus is not None else [FakeGpu()]
        self.driver_present = driver_present
        self.init_count = 0
        self.calls = 0
        self._lock = threading.Lock()
        self._clock = clock
        #: GPU index -> [time of its counter's latest update (s), mJ drawn so far, mJ the counter shows on top].
        self._updates: dict[int, list[float]] = {}

    # -- library lifetime -------------------------------------------------------------------------
    def nvmlInit(self) -> None:
        if not self.driver_present:
            raise NVMLError(NVML_ERROR_LIBRARY_NOT_FOUND)
        with self._lock:
            self.init_count += 1

    def nvmlShutdown(self) -> None:
        with self._lock:
            if self.init_count == 0:
                raise NVMLError(NVML_ERROR_UNINITIALIZED)
            self.init_count -= 1

    def _check(self) -> None:
        self.calls += 1
        if self.init_count <= 0:
            raise NVMLError(NVML_ERROR_UNINITIALIZED)

    def _gpu(self, handle: Any) -> FakeGpu:
        self._check()
        if not isinstance(handle, int) or not 0 <= handle < len(self.gpus):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        gpu = self.gpus[handle]
        if gpu.lost:
            raise NVMLError(NVML_ERROR_GPU_IS_LOST)
        if gpu.errors:
            raise NVMLError(gpu.errors.pop(0))
        return gpu

    def _handle(self, index: int) -> int:
        gpu = self.gpus[index]
        if gpu.lost:
            raise NVMLError(NVML_ERROR_GPU_IS_LOST)
        if not gpu.accessible:
            raise NVMLError(NVML_ERROR_NO_PERMISSION)
        return index

    # -- queries ------------------------------------------------------------------------------------
    def nvmlSystemGetDriverVersion(self) -> str:
        self._check()
        return "999.99-fake"

    def nvmlDeviceGetCount(self) -> int:
        self._check()
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        self._check()
        if not 0 <= index < len(self.gpus):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return self._handle(index)

    def nvmlDeviceGetHandleByUUID(self, uuid: str | bytes) -> int:
        self._check()
        text = uuid.decode() if isinstance(uuid, bytes) else uuid
        for i, gpu in enumerate(self.gpus):
            if gpu.uuid == text:
                return self._handle(i)
        raise NVMLError(NVML_ERROR_NOT_FOUND)

    def nvmlDeviceGetUUID(self, handle: Any) -> str:
        if isinstance(handle, _MigHandle):  # a MIG instance's handle: its own UUID
            return _migs(self._gpu(handle.gpu))[handle.slot]
        return self._gpu(handle).uuid

    # -- MIG and processes ---------------------------------------------------------------------------
    def nvmlDeviceGetMigMode(self, device: int) -> list[int]:
        """[current, pending] mode: ``NVML_DEVICE_MIG_ENABLE`` where the GPU has MIG instances."""
        mode = 1 if _migs(self._gpu(device)) else 0
        return [mode, mode]

    def nvmlDeviceGetMaxMigDeviceCount(self, device: int) -> int:
        self._gpu(device)
        return 7  # an A100's or H100's most

    def nvmlDeviceGetMigDeviceHandleByIndex(self, device: int, index: int) -> _MigHandle:
        instances = _migs(self._gpu(device))
        if not instances:
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        if not 0 <= index < len(instances):
            raise NVMLError(NVML_ERROR_NOT_FOUND)  # an empty slot
        return _MigHandle(device, index)

    def nvmlDeviceGetComputeRunningProcesses(self, handle: int) -> list[_Process]:
        return [_Process(pid) for pid in getattr(self._gpu(handle), "processes", ())]

    def nvmlDeviceGetName(self, handle: int) -> str:
        return self._gpu(handle).name

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: int) -> int:
        """Millijoules since the driver loaded."""
        gpu = self._gpu(handle)
        if not gpu.has_counter:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        # A GPU object of the caller's own that has only FakeGpu's older attributes updates at once, by 1 mJ.
        if getattr(gpu, "update_period_s", 0.0) <= 0:
            step_mj = getattr(gpu, "resolution_mj", 1)
            return int(gpu.energy_mj) // step_mj * step_mj
        return self._updated_mj(handle, gpu)

    def _updated_mj(self, index: int, gpu: FakeGpu) -> int:
        """What a counter that updates every ``update_period_s`` shows now (see ``FakeGpu``)."""
        period_s, step_mj = gpu.update_period_s, gpu.resolution_mj
        with self._lock:
            now_s = self._clock()
            state = self._updates.get(index)
            if state is None:  # the first query: the counter's updates are timed from here
                state = self._updates[index] = [now_s, 0.0, float(int(gpu.energy_mj) // step_mj * step_mj)]
            updates = int((now_s - state[0]) // period_s)
            if updates:
                state[0] += updates * period_s
                state[1] += gpu.power_mw * period_s * updates  # mW x s = mJ
                state[2] = float((int(gpu.energy_mj) + int(state[1])) // step_mj * step_mj)
            return int(state[2])

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:
        """Milliwatts."""
        return int(self._gpu(handle).power_mw)

    def nvmlDeviceGetFieldValues(self, handle: int, fieldIds: list[Any]) -> list[_FieldValue]:
        gpu = self._gpu(handle)
        out = []
        for field_id in fieldIds:
            fid = field_id[0] if isinstance(field_id, tuple) else field_id
            if fid == NVML_FI_DEV_POWER_INSTANT and gpu.has_instant_power:
                out.append(_FieldValue(fid, NVML_SUCCESS, int(gpu.power_mw)))
            else:
                out.append(_FieldValue(fid, NVML_ERROR_NOT_SUPPORTED, 0))
        return out
