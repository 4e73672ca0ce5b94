"""Which GPUs NVML sees, as CUDA numbers them, and how each one's energy can be read.

``CUDA_VISIBLE_DEVICES`` maps CUDA indices onto NVML's; a GPU's UUID is its identity across processes;
a GPU with the total-energy counter (Volta and newer) is read directly, older ones are sampled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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
