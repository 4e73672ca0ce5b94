"""Loihi energy-per-operation profiles (``hardware_profiles/loihi*.json``), checked on load."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

from ..errors import ProfileError
from ..profiles import load_profile, within_bounds

#: Costs every Loihi profile must give (pJ).
REQUIRED = ("synaptic_op", "neuron_update_active", "neuron_update_inactive")
#: Costs a profile may give; an operation a profile does not price costs nothing in it.
OPTIONAL = ("spike_out", "spike_within_tile", "axon_out_per_packet", "tile_hop_east_west", "tile_hop_north_south")


@dataclass(frozen=True)
class LoihiProfile:
    """Energy per operation in picojoules, with the source it comes from.

    Attributes:
        name: Profile name.
        source: Citation of the figures.
        energy_pj: Operation to pJ (``synaptic_op``, ``neuron_update_active``, ...).
    """

    name: str
    source: str
    energy_pj: Mapping[str, float]


def load_loihi_profile(name_or_path: str | Path = "loihi1") -> LoihiProfile:
    """Load and validate a Loihi profile.

    Raises:
        ProfileError: missing file, bad JSON, no source, a missing required cost, an unknown cost,
            or a cost that is not a non-negative number.
    """
    data = load_profile(name_or_path, "loihi")
    label = f"loihi profile {name_or_path}"
    if not isinstance(data.get("source"), str) or not data["source"].strip():
        raise ProfileError(f"{label}: needs a 'source' naming where its figures come from")
    costs = data.get("energy_pj")
    if not isinstance(costs, dict):
        raise ProfileError(f"{label}: needs an 'energy_pj' object")
    missing = [k for k in REQUIRED if k not in costs]
    if missing:
        raise ProfileError(f"{label}: incomplete, missing {', '.join(missing)} in energy_pj")
    unknown = sorted(set(costs) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        raise ProfileError(f"{label}: unknown cost(s) {', '.join(unknown)}; known: {', '.join(REQUIRED + OPTIONAL)}")
    for key, value in costs.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise ProfileError(f"{label}: energy_pj.{key} must be a non-negative number of pJ, got {value!r:.40}")
        within_bounds(float(value), f"energy_pj.{key}", label)
    return LoihiProfile(str(data.get("name", name_or_path)), data["source"],
                        MappingProxyType({k: float(v) for k, v in costs.items()}))
