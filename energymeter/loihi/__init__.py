"""Loihi simulation: convert a trained ReLU network to a spiking one, count what Loihi would do, price it.

``convert(model, calibration_inputs)`` -> ``SpikingNetwork``; ``simulate(snn, inputs, timesteps)`` ->
``SimResult``; ``estimate_energy(sim, profile="loihi1")`` -> ``LoihiEnergy`` (provenance ``modeled``).
This subpackage imports torch.
"""

from .convert import ConversionError, SpikingLayer, SpikingNetwork, convert
from .energy import LoihiEnergy, estimate_energy
from .profile import LoihiProfile, load_loihi_profile
from .simulate import LavaLif, SimResult, simulate

__all__ = ["ConversionError", "LavaLif", "LoihiEnergy", "LoihiProfile", "SimResult", "SpikingLayer", "SpikingNetwork",
           "convert", "estimate_energy", "load_loihi_profile", "simulate"]
