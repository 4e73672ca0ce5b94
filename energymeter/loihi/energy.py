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
        energy_j: Component to joules (``synaptic``; ``neuron``: updates and, in SANA-FE's accounting,
            spike-out; ``spike``: spikes within a tile and axon-out packets); sums to ``total_energy_j``.
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

    Every profile: synaptic ops (effective + pooling) x ``synaptic_op``; neuron-timesteps with input x
    ``neuron_update_active``, the rest x ``neuron_update_inactive``; every spike x ``spike_within_tile``
    and every packet x ``axon_out_per_packet`` where the profile gives them.

    A profile with ``spike_out`` follows SANA-FE's soma accounting (``calculate_soma_default_energy_latency``
    in its ``src/pipeline.hpp``): every neuron-timestep pays the access (``neuron_update_inactive``), one that
    is updated or fires pays the update too (``neuron_update_active`` = access + update), and a neuron that
    fires pays ``spike_out`` on top, so a firing neuron with input costs ``neuron_update_active + spike_out``.
    Its axon-out is charged per packet (``SimResult.packets``: one per destination core, SANA-FE's
    ``pipeline_process_axon_out``), not per spike. Tile hops are not priced: no tile placement is modeled.

    Raises:
        ProfileError: a malformed or incomplete profile.
    """
    p = profile if isinstance(profile, LoihiProfile) else load_loihi_profile(profile)
    cost = p.energy_pj
    synops = sim.synops_effective + sim.pool_synops
    active, inactive = sim.neuron_updates_active, sim.neuron_updates_inactive
    neuron_pj = 0.0
    if "spike_out" in cost:
        fired = sim.neuron_spikes_on_core
        fired_without_input = fired - sim.neuron_updates_spiking  # updated because it fired (SANA-FE's status)
        active, inactive = active + fired_without_input, inactive - fired_without_input
        neuron_pj = fired * cost["spike_out"]
    neuron_pj += active * cost["neuron_update_active"] + inactive * cost["neuron_update_inactive"]
    spike_pj = sim.total_spikes * cost.get("spike_within_tile", 0.0) + sim.packets * cost.get("axon_out_per_packet",
                                                                                              0.0)
    parts = {"synaptic": synops * cost["synaptic_op"] * PJ, "neuron": neuron_pj * PJ, "spike": spike_pj * PJ}
    total = sum(parts.values())
    return LoihiEnergy(MappingProxyType(parts), total, total / max(sim.samples, 1), p.name, p.source,
                       notes=("tile-hop energy not included: no tile placement is modeled",))
