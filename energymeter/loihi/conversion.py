"""Rate-coded conversion of a trained ReLU network into a spiking network of integrate-and-fire neurons.

Data-based weight normalisation (Diehl et al. 2015; Rueckauer et al. 2017): with lambda_l a high
percentile of layer l's non-zero ReLU outputs on calibration data (lambda_0 = 1 for inputs in [0, 1]),
a spiking layer gets W_l * lambda_{l-1} / lambda_l and b_l / lambda_l, so that its firing rate
(threshold 1) approximates the ReLU output / lambda_l. The output layer keeps W_L * lambda_{L-1} and
b_L and integrates without spiking; the prediction is the argmax of its accumulated potential.
Average pooling becomes a spiking layer with fixed weights (rates are averaged, lambda unchanged).
k-WTA layers keep their winner selection as lateral inhibition: at each timestep only the k neurons
with the largest input current accumulated so far integrate (for a static input these converge to the
top-k pre-activations); the spiking accuracy beside the source accuracy shows how close that is.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import EnergymeterError
from .cores import LOIHI_NEURONS_PER_CORE, destination_cores, synapse_counts

RESETS = ("subtract", "zero")


class ConversionError(EnergymeterError):
    """The network has layers the converter does not support, or is not a feed-forward stack."""


@dataclass
class SpikingLayer:
    """One layer of synapses followed by neurons.

    Attributes:
        name: The source module's name (e.g. ``"1"`` in an ``nn.Sequential``).
        kind: ``"linear"``, ``"conv"`` or ``"avgpool"``.
        op: The (normalised) torch module applying the synapses.
        flatten: Flatten the incoming spikes before ``op``.
        spiking: False for the output layer, which integrates without spiking.
        scale: lambda_l used in normalisation.
        source_activation: Name of the source activation module (for comparisons), if any.
        winners: For k-WTA layers, the most neurons that may fire per sample and timestep.
        fanout: Per input element, its non-zero synapses onto this layer (synaptic events per spike).
        core_fanout: Per input element, the cores of this layer its synapses reach (packets per spike).
        in_shape, out_shape: One sample's input and output shapes.
    """

    name: str
    kind: str
    op: nn.Module
    flatten: bool
    spiking: bool
    scale: float = 1.0
    source_activation: str | None = None
    winners: int | None = None
    fanout: torch.Tensor | None = field(default=None, repr=False)
    core_fanout: torch.Tensor | None = field(default=None, repr=False)
    in_shape: tuple[int, ...] = ()
    out_shape: tuple[int, ...] = ()

    @property
    def bias(self) -> torch.Tensor | None:
        """The layer's bias, or None (pooling)."""
        return getattr(self.op, "bias", None)


@dataclass
class SpikingNetwork:
    """A converted network: input encoder (IF neurons driven by pixel values), spiking layers, output layer.

    Attributes:
        layers: In order; the last is the non-spiking output layer.
        input_shape: One sample's shape.
        reset: ``"subtract"`` (reset by subtraction, default) or ``"zero"``.
        threshold: Firing threshold of every neuron.
        percentile: The normalisation percentile.
        notes: Approximations made (e.g. k-WTA converted as ReLU).
        neurons_per_core: The core packing the layers' ``core_fanout`` was computed with.
    """

    layers: list[SpikingLayer]
    input_shape: tuple[int, ...]
    reset: str = "subtract"
    threshold: float = 1.0
    percentile: float = 99.9
    notes: tuple[str, ...] = ()
    neurons_per_core: int = LOIHI_NEURONS_PER_CORE

    def to(self, device: str | torch.device) -> "SpikingNetwork":
        """Move every layer (in place) and return self."""
        for layer in self.layers:
            layer.op.to(device)
            if layer.fanout is not None:
                layer.fanout = layer.fanout.to(device)
            if layer.core_fanout is not None:
                layer.core_fanout = layer.core_fanout.to(device)
        return self


_SKIP = (nn.Dropout, nn.Identity)


def _is_kwta(module: nn.Module) -> bool:
    """A k-winners-take-all layer, recognised by what it does (it says how many winners it keeps), not by its class."""
    return callable(getattr(module, "k_for", None))


def _is_activation(module: nn.Module) -> bool:
    return isinstance(module, nn.ReLU) or _is_kwta(module)


def _flatten_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    if not isinstance(model, nn.Sequential):
        raise ConversionError(f"convert() needs an nn.Sequential feed-forward stack, got {type(model).__name__}")
    out = []
    for name, module in model.named_children():
        if isinstance(module, nn.Sequential):
            out += [(f"{name}.{n}", m) for n, m in _flatten_modules(module)]
        else:
            out.append((name, module))
    return out


def _plan(model: nn.Module) -> list[dict]:
    """Group modules into layers; raise for anything unsupported."""
    modules = _flatten_modules(model)
    unsupported = [f"{n} ({type(m).__name__})" for n, m in modules
                   if not (isinstance(m, (nn.Linear, nn.Conv2d, nn.AvgPool2d, nn.Flatten, *_SKIP)) or _is_activation(m))]
    if unsupported:
        raise ConversionError(f"cannot convert layer(s): {', '.join(unsupported)}; supported: Linear, Conv2d, "
                              "AvgPool2d, Flatten, ReLU, KWinnersTakeAll, Dropout, Identity")
    plan: list[dict] = []
    flatten = False
    for name, module in modules:
        if isinstance(module, _SKIP):
            continue
        if isinstance(module, nn.Flatten):
            flatten = True
        elif isinstance(module, (nn.Linear, nn.Conv2d, nn.AvgPool2d)):
            plan.append({"name": name, "module": module, "flatten": flatten, "activation": None})
            flatten = False
        else:  # an activation
            if not plan or plan[-1]["activation"] is not None or isinstance(plan[-1]["module"], nn.AvgPool2d):
                raise ConversionError(f"activation {name} must directly follow a Linear or Conv2d layer")
            plan[-1]["activation"] = (name, module)
    if not plan or plan[-1]["activation"] is not None or not isinstance(plan[-1]["module"], nn.Linear):
        raise ConversionError("the network must end in a Linear layer without activation (the output layer)")
    for step in plan[:-1]:
        if step["activation"] is None and not isinstance(step["module"], nn.AvgPool2d):
            raise ConversionError(f"hidden layer {step['name']} has no ReLU-family activation after it")
    return plan


def _percentile(values: torch.Tensor, q: float) -> float:
    positive = values[values > 0].float()
    if positive.numel() == 0:
        return 1.0
    if positive.numel() > 2_000_000:  # quantile() has a size limit; a fixed-stride subsample keeps it exact enough
        positive = positive[:: positive.numel() // 2_000_000 + 1]
    return float(torch.quantile(positive, q / 100.0))


def convert(model: nn.Module, calibration_inputs: torch.Tensor, *, percentile: float = 99.9,
            reset: str = "subtract", neurons_per_core: int = LOIHI_NEURONS_PER_CORE) -> SpikingNetwork:
    """Convert a trained ReLU network (mlp, cnn, kwta-mlp) into a rate-coded spiking network.

    Args:
        model: An ``nn.Sequential`` of Linear/Conv2d/AvgPool2d/Flatten/ReLU/k-WTA layers ending in Linear.
        calibration_inputs: A batch (N, ...) used to find each layer's activation scale.
        percentile: Percentile of non-zero activations used as the scale (99.9 by default).
        reset: ``"subtract"`` (reset by subtraction) or ``"zero"`` (reset to zero).
        neurons_per_core: Neurons packed onto one core, each layer from a fresh core (``cores``), which
            sets how many packets a spike sends (``SpikingLayer.core_fanout``); Loihi's 1024 by default.

    Raises:
        ConversionError: unsupported layers (named in the message) or a non-sequential network.
        ValueError: bad percentile, reset or neurons_per_core.
    """
    if reset not in RESETS:
        raise ValueError(f"reset must be one of {', '.join(RESETS)}, got {reset!r}")
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile!r}")
    plan = _plan(model)
    captured: dict[str, torch.Tensor] = {}
    handles = [m.register_forward_hook(lambda mod, a, out, n=n: captured.__setitem__(n, out.detach()))
               for n, m in _flatten_modules(model)
               if _is_activation(m) or isinstance(m, (nn.Linear, nn.Conv2d, nn.AvgPool2d))]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(calibration_inputs)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    layers: list[SpikingLayer] = []
    notes = []
    previous_scale = 1.0
    shape = tuple(calibration_inputs.shape[1:])
    for index, step in enumerate(plan):
        module = step["module"]
        is_output = index == len(plan) - 1
        op = copy.deepcopy(module).eval()
        for p in op.parameters():
            p.requires_grad_(False)
        if isinstance(module, nn.AvgPool2d):
            scale = previous_scale
            kind = "avgpool"
        else:
            kind = "linear" if isinstance(module, nn.Linear) else "conv"
            if is_output:
                scale = 1.0
                op.weight.mul_(previous_scale)
            else:
                act_name, act_module = step["activation"]
                scale = _percentile(captured[act_name], percentile)
                op.weight.mul_(previous_scale / scale)
                if op.bias is not None:
                    op.bias.div_(scale)
        in_shape = (int(torch.tensor(shape).prod()),) if step["flatten"] else shape
        with torch.no_grad():
            out_shape = tuple(op(torch.zeros(1, *in_shape)).shape[1:])
        layer = SpikingLayer(step["name"], kind, op, step["flatten"], not is_output, scale,
                             step["activation"][0] if step["activation"] else None,
                             in_shape=in_shape, out_shape=out_shape)
        if step["activation"] is not None and _is_kwta(step["activation"][1]):
            layer.winners = step["activation"][1].k_for(int(torch.tensor(out_shape).prod()))
            notes.append(f"{step['activation'][0]}: k-WTA as lateral inhibition: only the k={layer.winners} "
                         "neurons with the largest accumulated input integrate")
        layer.fanout = synapse_counts(kind, op, in_shape, out_shape)
        layer.core_fanout = destination_cores(kind, op, in_shape, out_shape, neurons_per_core)
        layers.append(layer)
        previous_scale = scale
        shape = out_shape
    return SpikingNetwork(layers, tuple(calibration_inputs.shape[1:]), reset, 1.0, percentile, tuple(notes),
                          neurons_per_core)
