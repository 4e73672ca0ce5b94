"""Where a converted network's neurons sit on Loihi cores, and how many cores each neuron's axons reach.

Loihi sends one spike packet per destination core, not per synapse: a neuron whose synapses land on
neurons of three cores sends three packets when it fires (SANA-FE charges its axon-out cost per packet,
``pipeline_process_axon_out`` in ``src/chip.cpp``, with one output axon per distinct destination core,
``sim_get_post_synaptic_cores``). The mapping here packs each layer's neurons, in their flattened (C, H, W)
order, onto cores of ``neurons_per_core`` each, a layer starting on a fresh core, as SANA-FE's Loihi
examples lay networks out; tile placement (and so tile-hop energy) is not modeled.
"""

from __future__ import annotations

import math

import torch
from torch import nn

#: Neurons (compartments) one Loihi core holds: 1024 (Davies et al. 2018; ``max_neurons_supported: 1024``
#: in SANA-FE's ``arch/loihi.yaml``).
LOIHI_NEURONS_PER_CORE = 1024


def synapse_counts(kind: str, op: nn.Module, in_shape: tuple[int, ...], out_shape: tuple[int, ...],
                   out_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Non-zero synapses from each input element onto the outputs in ``out_mask`` (all outputs by default).

    Args:
        kind: ``"linear"``, ``"conv"`` or ``"avgpool"``.
        op: The layer's torch module.
        in_shape, out_shape: One sample's input and output shapes.
        out_mask: Float tensor of ``out_shape``, 1 where an output neuron counts.

    Returns:
        A float32 tensor of ``in_shape`` (NeuroBench's binary-weight fan-out when every output counts).
    """
    ones_out = torch.ones(1, *out_shape) if out_mask is None else out_mask.reshape(1, *out_shape).to(torch.float32)
    with torch.no_grad():
        if kind == "linear":
            return (ones_out.flatten(1) @ (op.weight != 0).to(torch.float32))[0]
        if kind == "conv":
            kernel = (op.weight != 0).to(torch.float32)
            fan = nn.functional.conv_transpose2d(ones_out, kernel, stride=op.stride, padding=op.padding,
                                                 dilation=op.dilation, groups=op.groups)
        else:
            channels = in_shape[0]
            k = op.kernel_size if isinstance(op.kernel_size, tuple) else (op.kernel_size, op.kernel_size)
            s = op.stride if isinstance(op.stride, tuple) else (op.stride, op.stride)
            fan = nn.functional.conv_transpose2d(ones_out, torch.ones(channels, 1, *k), stride=s, groups=channels)
        fan = fan[0]
        pad = [0, in_shape[-1] - fan.shape[-1], 0, in_shape[-2] - fan.shape[-2]]
        if any(pad):
            fan = nn.functional.pad(fan, pad)
        return fan.to(torch.float32)


def destination_cores(kind: str, op: nn.Module, in_shape: tuple[int, ...], out_shape: tuple[int, ...],
                      neurons_per_core: int = LOIHI_NEURONS_PER_CORE) -> torch.Tensor:
    """Cores of the next layer that each input element's synapses reach (packets per spike), float32.

    The next layer's ``prod(out_shape)`` neurons fill ``ceil(n / neurons_per_core)`` cores in flattened order;
    an input element reaches a core when at least one of its non-zero synapses lands on a neuron there.

    Raises:
        ValueError: ``neurons_per_core`` is not a positive integer.
    """
    if kind == "linear":
        return dense_destination_cores(op.weight.detach().to("cpu", torch.float32), neurons_per_core)
    _check(neurons_per_core)
    outputs = math.prod(out_shape)
    reached = torch.zeros(in_shape, dtype=torch.float32)
    for first in range(0, outputs, neurons_per_core):
        mask = torch.zeros(outputs)
        mask[first:first + neurons_per_core] = 1.0
        counts = synapse_counts(kind, op, in_shape, out_shape, mask).reshape(reached.shape)
        reached += (counts > 0).to(torch.float32)
    return reached


def dense_destination_cores(weights: torch.Tensor, neurons_per_core: int = LOIHI_NEURONS_PER_CORE) -> torch.Tensor:
    """``destination_cores`` of a Dense weight matrix (neurons, inputs), in the weights' dtype and device."""
    _check(neurons_per_core)
    nonzero = weights != 0
    reached = torch.zeros(weights.shape[1], dtype=weights.dtype, device=weights.device)
    for first in range(0, weights.shape[0], neurons_per_core):
        reached += nonzero[first:first + neurons_per_core].any(0).to(weights.dtype)
    return reached


def _check(neurons_per_core: int) -> None:
    if isinstance(neurons_per_core, bool) or not isinstance(neurons_per_core, int) or neurons_per_core < 1:
        raise ValueError(f"neurons_per_core must be a positive integer, got {neurons_per_core!r}")
