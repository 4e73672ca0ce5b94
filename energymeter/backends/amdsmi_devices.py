"""Which AMD GPUs a HIP process sees, as HIP numbers them, and how each one's energy can be read.

ROCm's runtime applies ``ROCR_VISIBLE_DEVICES`` first (indices into the library's list, or ``GPU-<unique id>``
UUIDs), then HIP applies ``HIP_VISIBLE_DEVICES`` (or ``CUDA_VISIBLE_DEVICES`` when that is unset, as HIP does)
to what is left. The library's processor order is taken to be the runtime's (both follow the kernel driver's
order); a GPU's ``amdsmi_get_gpu_device_uuid`` is its identity across processes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from .nvml_devices import parse_visible_devices

#: Domain names: ``gpu:amd:N`` (N the HIP index), never NVML's ``gpu:N``, so both sit in one meter.
DOMAIN_PREFIX = "gpu:amd:"
#: The power fields of ``amdsmi_get_power_info`` (whole watts), best first: the instant figure (MI300 and
#: newer), then the socket figure of newer libraries, then the average (MI200 and older, Navi).
POWER_FIELDS = ("current_socket_power", "socket_power", "average_socket_power")


@dataclass(frozen=True)
class AmdGpu:
    """One visible AMD GPU.

    Attributes:
        domain: ``"gpu:amd:N"`` with N the HIP index.
        index: The library's index (its position in ``amdsmi_get_processor_handles()``).
        name: Product name.
        mode: ``"counter"`` (energy accumulator) or the power field sampled (``POWER_FIELDS``).
        uuid: The library's UUID, the GPU's identity across processes.
        resolution_uj: Microjoules per count of the energy accumulator (counter GPUs).
    """

    domain: str
    index: int
    name: str
    mode: str
    uuid: str = ""
    resolution_uj: float = 0.0


def rocm_uuid(asic_serial: str) -> str:
    """ROCm's name of a GPU (``"GPU-<16 lowercase hex digits>"``) from its asic serial (``"0x..."``); ``""`` if none."""
    try:
        return f"GPU-{int(asic_serial, 16):016x}"
    except (TypeError, ValueError):
        return ""


def visible_indices(env: Mapping[str, str], count: int, uuids: list[str]) -> list[int]:
    """The library indices a HIP process sees, in HIP order.

    Args:
        env: The environment (or the ``visible_devices`` override as ``{"HIP_VISIBLE_DEVICES": ...}``).
        count: Number of GPUs the library lists.
        uuids: Each GPU's ROCm UUID (``rocm_uuid``), by library index (``""`` where unknown).

    Returns:
        Library indices; position i is HIP device i. Each variable follows CUDA's rules (unset: all; an empty
        value: none; parsing stops at the first invalid entry).
    """
    chosen = parse_visible_devices(env.get("ROCR_VISIBLE_DEVICES"), count, uuids)
    hip = env.get("HIP_VISIBLE_DEVICES", env.get("CUDA_VISIBLE_DEVICES"))
    picked = parse_visible_devices(hip, len(chosen), [uuids[i] for i in chosen])
    return [chosen[i] for i in picked]


def counter_resolution_uj(smi: Any, handle: Any) -> float:
    """The energy accumulator's resolution (uJ per count), or 0.0 where the GPU has no usable counter."""
    try:
        info = smi.amdsmi_get_energy_count(handle)
    except smi.AmdSmiException:
        return 0.0
    resolution = info.get("counter_resolution") if isinstance(info, dict) else None
    if not isinstance(resolution, (int, float)) or not resolution > 0 or counter_counts(info) is None:
        return 0.0
    return float(resolution)


def counter_counts(info: Any) -> "int | None":
    """The accumulator of an ``amdsmi_get_energy_count`` answer (``energy_accumulator``, before 6.2.1 ``power``)."""
    value = info.get("energy_accumulator", info.get("power")) if isinstance(info, dict) else None
    return value if isinstance(value, int) and value >= 0 else None


def power_field(smi: Any, handle: Any) -> str:
    """The first of ``POWER_FIELDS`` the GPU reports (a number, not ``"N/A"``).

    Raises:
        AmdSmiException: the power query fails, or reports none of the fields.
    """
    info = smi.amdsmi_get_power_info(handle)
    for name in POWER_FIELDS:
        if watts(info.get(name)) is not None:
            return name
    raise smi.AmdSmiLibraryException(2)  # AMDSMI_STATUS_NOT_SUPPORTED: no power figure at all


def watts(value: Any) -> "float | None":
    """A power field's watts, or None for ``"N/A"`` and the all-ones values the library uses for "unsupported"."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 0xFFFF:
        return None
    return float(value)
