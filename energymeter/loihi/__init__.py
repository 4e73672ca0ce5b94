"""Loihi simulation: convert a trained ReLU network to a spiking one, count what Loihi would do, price it.

``convert(model, calibration_inputs)`` -> ``SpikingNetwork``; ``simulate(snn, inputs, timesteps)`` ->
``SimResult``; ``estimate_energy(sim, profile="loihi1")`` -> ``LoihiEnergy`` (provenance ``modeled``).
Names are imported on first use: ``energymeter.loihi.profile`` (the pJ-per-operation profiles) loads
without torch; the converter and simulator need it.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ConversionError": "convert", "SpikingLayer": "convert", "SpikingNetwork": "convert", "convert": "convert",
    "LoihiEnergy": "energy", "estimate_energy": "energy",
    "LoihiProfile": "profile", "load_loihi_profile": "profile",
    "LavaLif": "simulate", "SimResult": "simulate", "simulate": "simulate",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'energymeter.loihi' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
