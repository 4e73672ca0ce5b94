"""Which GPUs NVML sees, as CUDA numbers them, and how each one's energy can be read.

``CUDA_VISIBLE_DEVICES`` maps CUDA indices onto NVML's; a GPU's UUID is its identity across processes;
a GPU with the total-energy counter (Volta and newer) is read directly, older ones are sampled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: The longest ``CUDA_VISIBLE_DEVICES`` entry read (characters): a UUID entry is at most about 60; a longer one
#: is invalid, as is an index of more than ``_INDEX_DIGITS`` significant digits (no machine has 10**9 GPUs).
MAX_ENTRY_CHARS = 256
_INDEX_DIGITS = 9


def parse_visible_devices(value: str | None, count: int, uuids: list[str],
                          mig_uuids: "list[tuple[str, ...]] | None" = None) -> list[int]:
    """Map ``CUDA_VISIBLE_DEVICES`` onto NVML indices, in CUDA order.

    CUDA's rules: unset means every device; entries are indices (ASCII digits) or (prefixes of) UUIDs;
    parsing stops at the first invalid entry (a non-ASCII digit such as ``"²"`` included; an entry longer
    than ``MAX_ENTRY_CHARS``, or an index of more than nine significant digits, is invalid: no such device);
    an empty value hides every device. A MIG instance's UUID (``"MIG-..."``, or the old ``"MIG-GPU-<uuid>/gi/ci"``)
    names the GPU that holds it: its energy counter is that whole GPU's.

    Args:
        value: The variable's value, or None when unset.
        count: Number of NVML devices.
        uuids: Each NVML device's UUID, by NVML index (``""`` where unknown; only consulted for UUID entries).
        mig_uuids: Each NVML device's MIG instance UUIDs, by NVML index (only consulted for MIG entries).

    Returns:
        NVML indices; position i is ``cuda:i``.
    """
    if value is None:
        return list(range(count))
    chosen: list[int] = []
    for entry in (e.strip() for e in value.split(",")):
        index: int | None = None
        if len(entry) > MAX_ENTRY_CHARS:
            break
        if entry.isascii() and (entry.isdigit() or (entry.startswith("-") and entry[1:].isdigit())):
            # Bounded before int(): Python refuses to convert more than 4,300 digits.
            if len(entry.lstrip("-").lstrip("0")) <= _INDEX_DIGITS:
                index = int(entry) if 0 <= int(entry) < count else None
        elif entry.startswith(("GPU-", "MIG-GPU-")):
            gpu_uuid = entry[4:].split("/")[0] if entry.startswith("MIG-") else entry
            matches = [i for i, u in enumerate(uuids) if u and u.startswith(gpu_uuid)]
            index = matches[0] if len(matches) == 1 else None
        elif entry.startswith("MIG-"):
            matches = [i for i, migs in enumerate(mig_uuids or ()) if any(m.startswith(entry) for m in migs)]
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
        mig_uuids: The UUIDs (``"MIG-..."``) of its MIG instances when MIG is on; its energy counter is then the
            whole GPU's, every instance's work included.
    """

    domain: str
    nvml_index: int
    name: str
    mode: str
    uuid: str = ""
    mig_uuids: tuple[str, ...] = ()


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


def mig_instances(nvml: Any, handle: Any) -> tuple[str, ...]:
    """The UUIDs of a GPU's MIG instances when MIG is on; ``()`` when it is off or the GPU has no MIG.

    Raises:
        NVMLError: an instance's UUID cannot be read (a GPU without MIG answers Not Supported, which is ``()``).
    """
    try:
        current, _pending = nvml.nvmlDeviceGetMigMode(handle)
    except nvml.NVMLError:
        return ()  # Not Supported: no MIG on this GPU (pre-Ampere, or a driver without it)
    if current != nvml.NVML_DEVICE_MIG_ENABLE:
        return ()
    uuids = []
    for index in range(nvml.nvmlDeviceGetMaxMigDeviceCount(handle)):
        try:
            mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, index)
        except nvml.NVMLError:
            continue  # an empty slot answers Not Found
        uuids.append(_text(nvml.nvmlDeviceGetUUID(mig)))
    return tuple(uuids)
