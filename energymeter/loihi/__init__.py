"""Loihi simulation: convert a trained ReLU network to a spiking one, count what Loihi would do, price it.

``convert(model, calibration_inputs)`` -> ``SpikingNetwork``; ``simulate(snn, inputs, timesteps)`` ->
``SimResult``; ``estimate_energy(sim, profile="loihi1")`` -> ``LoihiEnergy`` (provenance ``modeled``).
A plain lava-nc network is written as ``LavaNetwork([LavaLayer(...), ...])`` (per-layer du, dv, vth,
bias; Dense weights; an optional bias-driven first layer) and run by ``simulate`` in lava's float64 LIF.

Modules are named apart from their functions (``conversion`` holds ``convert``, ``simulation`` holds
``simulate`` and the registry of simulation observers), so a loaded submodule never shadows a function.
The pricing half (``profile``, ``energy``) loads without torch and is imported here; the torch half
(``conversion``, ``lava_network``, ``simulation``) on first use of one of its names.
"""

from __future__ import annotations

from typing import Any

from .energy import LoihiEnergy, estimate_energy
from .profile import LoihiProfile, load_loihi_profile

#: The names of the torch half, imported on first use.
_NEED_TORCH = ("ConversionError", "LavaLayer", "LavaLif", "LavaNetwork", "SimResult", "SpikingLayer",
               "SpikingNetwork", "convert", "simulate")

__all__ = sorted(("LoihiEnergy", "LoihiProfile", "estimate_energy", "load_loihi_profile", *_NEED_TORCH))


def __getattr__(name: str) -> Any:
    if name not in _NEED_TORCH:
        raise AttributeError(f"module 'energymeter.loihi' has no attribute {name!r}")
    from . import conversion, lava_network, simulation

    for module in (conversion, lava_network, simulation):
        globals().update({n: getattr(module, n) for n in _NEED_TORCH if hasattr(module, n)})
    return globals()[name]
