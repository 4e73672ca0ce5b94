"""Loihi simulation: convert a trained ReLU network to a spiking one, count what Loihi would do, price it.

``convert(model, calibration_inputs)`` -> ``SpikingNetwork``; ``simulate(snn, inputs, timesteps)`` ->
``SimResult``; ``estimate_energy(sim, profile="loihi1")`` -> ``LoihiEnergy`` (provenance ``modeled``).
A plain lava-nc network is written as ``LavaNetwork([LavaLayer(...), ...])`` (per-layer du, dv, vth,
bias; Dense weights; an optional bias-driven first layer) and run by ``simulate`` in lava's float64 LIF.
Names are imported on first use: ``energymeter.loihi.profile`` (the pJ-per-operation profiles) loads
without torch; the converter and simulator need it.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

_EXPORTS = {
    "ConversionError": "convert", "SpikingLayer": "convert", "SpikingNetwork": "convert", "convert": "convert",
    "LoihiEnergy": "energy", "estimate_energy": "energy",
    "LoihiProfile": "profile", "load_loihi_profile": "profile",
    "LavaLif": "simulate", "SimResult": "simulate", "simulate": "simulate",
    "LavaLayer": "lava_network", "LavaNetwork": "lava_network",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'energymeter.loihi' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


class _Package(types.ModuleType):
    """This package, keeping ``convert`` and ``simulate`` the functions when their same-named modules load.

    Python records a newly loaded submodule on its package (``setattr(package, "simulate", module)``),
    which would shadow the function of the same name whenever the module is loaded indirectly (by
    ``lava_check``, or by ``simulate`` importing ``convert``). The modules stay in ``sys.modules``
    (``importlib.import_module("energymeter.loihi.simulate")``).
    """

    def __setattr__(self, name: str, value: Any) -> None:
        same_named = _EXPORTS.get(name) == name
        if isinstance(value, types.ModuleType) and same_named and value.__name__ == f"{__name__}.{name}":
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
