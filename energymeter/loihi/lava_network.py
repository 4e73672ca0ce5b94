"""A plain lava-nc network written directly: LIF layers with their own parameters, joined by Dense weights.

Each ``LavaLayer`` is one lava ``LIF`` process (floating point: ``du``, ``dv``, ``vth``, per-neuron
``bias``), fed by one lava ``Dense`` process holding ``weights`` (out, in); the first layer may have no
weights, driven by its bias alone (lava's input port left unconnected). ``simulate(network, inputs,
timesteps)`` runs it in lava mode in float64, the dtype lava-nc's floating-point models use.

Parameters keep the precision they are given: tensors are stored as they come (integer tensors become
float64, exactly), Python numbers are float64; nothing is rounded to float32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    number = float(value)  # type: ignore[arg-type]
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return number


def _tensor(name: str, value: object) -> torch.Tensor:
    tensor = value if isinstance(value, torch.Tensor) else torch.as_tensor(value, dtype=torch.float64)
    if tensor.dtype == torch.bool or tensor.is_complex():
        raise TypeError(f"{name} must be real numbers, got dtype {tensor.dtype}")
    if not tensor.is_floating_point():
        tensor = tensor.to(torch.float64)  # integers are exact in float64 (below 2**53)
    tensor = tensor.detach()
    if not bool(torch.isfinite(tensor).all()):
        raise ValueError(f"{name} must be finite")
    return tensor


@dataclass(frozen=True, eq=False)
class LavaLayer:
    """One lava LIF process and the Dense process feeding it.

    lava's floating-point LIF, per timestep: ``u = u * (1 - du) + a_in``; ``v = v * (1 - dv) + u + bias``;
    spike where ``v > vth``; ``v = 0`` where spiked. ``a_in`` is what the Dense process sends: the
    weighted sum of the previous layer's spikes one timestep earlier.

    Attributes:
        du: Current decay per timestep (dimensionless; lava's ``du``).
        dv: Voltage decay per timestep (dimensionless; lava's ``dv``).
        vth: Threshold (strict ``>``), in the units of ``v``.
        weights: Dense weights, shape (neurons, inputs); ``None`` for a bias-driven first layer.
        bias: Per-neuron bias added to ``v`` every timestep, shape (neurons,) (lava's ``bias_mant``;
            the floating-point model has no exponent). A number is broadcast when ``weights`` give the width.
    """

    du: float
    dv: float
    vth: float
    weights: torch.Tensor | None = None
    bias: torch.Tensor | float = 0.0

    def __post_init__(self) -> None:
        for name in ("du", "dv", "vth"):
            object.__setattr__(self, name, _number(name, getattr(self, name)))
        weights = None if self.weights is None else _tensor("weights", self.weights)
        if weights is not None and weights.dim() != 2:
            raise ValueError(f"weights must be (neurons, inputs), got shape {tuple(weights.shape)}")
        bias = _tensor("bias", self.bias)
        if bias.dim() == 0:
            if weights is None:
                raise ValueError("a bias-driven layer (no weights) needs a bias per neuron, shape (neurons,)")
            bias = bias.expand(weights.shape[0]).clone()
        if bias.dim() != 1 or (weights is not None and bias.shape[0] != weights.shape[0]):
            expected = f"({weights.shape[0]},)" if weights is not None else "(neurons,)"
            raise ValueError(f"bias must have shape {expected}, got {tuple(bias.shape)}")
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "bias", bias)

    @property
    def neurons(self) -> int:
        """Number of LIF neurons."""
        return int(self.bias.shape[0])  # type: ignore[union-attr]


@dataclass(frozen=True, eq=False)
class LavaNetwork:
    """A feed-forward chain of ``LavaLayer``; layer names are their indices (``"0"``, ``"1"``, ...).

    Attributes:
        layers: In order. Only the first may lack weights (bias-driven); each later layer's weights
            take as many inputs as the layer before it has neurons.
    """

    layers: tuple[LavaLayer, ...]

    def __init__(self, layers: Sequence[LavaLayer]) -> None:
        layers = tuple(layers)
        if not layers:
            raise ValueError("a LavaNetwork needs at least one layer")
        for index, layer in enumerate(layers):
            if not isinstance(layer, LavaLayer):
                raise TypeError(f"layer {index} must be a LavaLayer, got {type(layer).__name__}")
            if index and layer.weights is None:
                raise ValueError(f"layer {index} has no weights: only the first layer may be bias-driven")
            inputs = 0 if layer.weights is None else int(layer.weights.shape[1])
            if index and inputs != layers[index - 1].neurons:
                raise ValueError(f"layer {index} weights take {inputs} inputs but layer {index - 1} has "
                                 f"{layers[index - 1].neurons} neurons")
        object.__setattr__(self, "layers", layers)

    @property
    def input_size(self) -> int:
        """External input neurons (0 when the first layer is bias-driven)."""
        first = self.layers[0].weights
        return 0 if first is None else int(first.shape[1])

    @property
    def sizes(self) -> tuple[int, ...]:
        """Neurons per layer, external inputs first: ``(input_size, n0, n1, ...)``."""
        return (self.input_size,) + tuple(layer.neurons for layer in self.layers)

    @property
    def names(self) -> tuple[str, ...]:
        """Layer names as they appear in ``SimResult`` (``"0"``, ``"1"``, ...)."""
        return tuple(str(i) for i in range(len(self.layers)))
