"""Loihi energy from operation counts and a per-operation profile; provenance ``modeled``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Mapping

from ..measurement import MODELED
from .profile import LoihiProfile, load_loihi_profile

if TYPE_CHECKING:  # pricing needs only the counts; the simulator (and torch) is not imported for it
    from .simulation import SimResult

PJ = 1e-12


@dataclass(frozen=True)
class LoihiEnergy:
    """Modeled energy of a simulation on Loihi, by component.

    Attributes:
        energy_j: Component to joules (``synaptic``, ``neuron``, ``spike``); sums to ``total_energy_j``.
        total_energy_j: All components (J).
        per_sample_j: ``total_energy_j`` / samples.
        profile: Profile name.
        source: The profile's source.
        provenance: Always ``modeled``.
        notes: What the model leaves out (tile hops without a placement).
    """

    energy_j: Mapping[str, float]
    total_energy_j: float
    per_sample_j: float
    profile: str
    source: str
    provenance: str = MODELED
    notes: tuple[str, ...] = field(default=())


def estimate_energy(sim: "SimResult", profile: str | Path | LoihiProfile = "loihi1") -> LoihiEnergy:
    """Price a simulation's operations with a Loihi profile.

    ``loihi1`` (Davies 2018): synaptic ops (effective + pooling) x synaptic_op, active and inactive
    neuron updates, and every spike x spike_within_tile. ``loihi1-calibrated`` (SANA-FE): spiking
    updates are priced apart from other active updates, and each spike costs axon_out.
    Tile hops are not priced: no core placement is modeled.

    Raises:
        ProfileError: a malformed or incomplete profile.
    """
    p = profile if isinstance(profile, LoihiProfile) else load_loihi_profile(profile)
    cost = p.energy_pj
    synops = sim.synops_effective + sim.pool_synops
    if "neuron_update_spiking" in cost:
        neuron_pj = ((sim.neuron_updates_active - sim.neuron_updates_spiking) * cost["neuron_update_active"]
                     + sim.neuron_updates_spiking * cost["neuron_update_spiking"]
                     + sim.neuron_updates_inactive * cost["neuron_update_inactive"])
    else:
        neuron_pj = (sim.neuron_updates_active * cost["neuron_update_active"]
                     + sim.neuron_updates_inactive * cost["neuron_update_inactive"])
    spike_pj = sim.total_spikes * cost.get("axon_out", cost.get("spike_within_tile", 0.0))
    parts = {"synaptic": synops * cost["synaptic_op"] * PJ, "neuron": neuron_pj * PJ, "spike": spike_pj * PJ}
    total = sum(parts.values())
    return LoihiEnergy(MappingProxyType(parts), total, total / max(sim.samples, 1), p.name, p.source,
                       notes=("tile-hop energy not included: no core placement is modeled",))
