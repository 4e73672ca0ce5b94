"""Rate-coded integrate-and-fire dynamics of a converted network (the default of ``simulate``)."""

from __future__ import annotations

import torch

from .conversion import SpikingLayer, SpikingNetwork
from .counting import _count_input, _count_neurons, _count_synops, _Totals


def _apply(layer: SpikingLayer, spikes: torch.Tensor, with_bias: bool = True) -> torch.Tensor:
    x = spikes.flatten(1) if layer.flatten else spikes
    out = layer.op(x)
    if not with_bias and layer.bias is not None:
        shape = (1, -1) + (1,) * (out.dim() - 2)
        out = out - layer.bias.view(shape)
    return out


def _top_k_mask(v: torch.Tensor, k: int) -> torch.Tensor:
    flat = v.flatten(1)
    if k >= flat.shape[1]:
        return torch.ones_like(v, dtype=torch.bool)
    threshold = flat.topk(k, dim=1).values[:, -1:]
    return (flat >= threshold).view_as(v)


def _run_if(network: SpikingNetwork, batch: torch.Tensor, timesteps: int, totals: _Totals,
            trains: dict[str, list[torch.Tensor]] | None) -> torch.Tensor:
    threshold = network.threshold
    v_in = torch.zeros_like(batch)
    volts: list[torch.Tensor | None] = [None] * len(network.layers)
    drive: list[torch.Tensor | None] = [None] * len(network.layers)
    output = None
    for step in range(timesteps):
        v_in += batch
        spikes = (v_in >= threshold).to(batch.dtype)
        v_in -= spikes * threshold if network.reset == "subtract" else v_in * spikes
        _count_input(spikes, totals, step, trains)
        for i, layer in enumerate(network.layers):
            _count_synops(layer.kind, layer.fanout, spikes, totals, layer.core_fanout)
            current = _apply(layer, spikes)
            if not layer.spiking:
                _count_neurons(layer.name, current, None, totals, step, trains)
                output = current if output is None else output + current
                continue
            if layer.winners is not None:
                # k-WTA: the winners are the top k of the input current accumulated so far (for a static
                # input, the top k pre-activations); only winners integrate, as if inhibited laterally.
                drive[i] = current.clone() if drive[i] is None else drive[i].add_(current)
                current = current * _top_k_mask(drive[i], layer.winners)
            v = current.clone() if volts[i] is None else volts[i].add_(current)
            fired = v >= threshold
            _count_neurons(layer.name, current, fired, totals, step, trains)
            spikes = fired.to(batch.dtype)
            if network.reset == "subtract":
                v.sub_(spikes * threshold)
            else:
                v.masked_fill_(fired, 0.0)
            volts[i] = v
    assert output is not None
    return output
