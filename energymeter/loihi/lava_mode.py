"""lava-nc's floating-point Dense and LIF dynamics (``simulate(..., dynamics="lava")``), in float64 as lava computes.

Each Dense hop adds lava's one-step delay; the LIF update repeats lava's operations in lava's order;
``exact=True`` sums each Dense with numpy as lava does, so the arithmetic is lava's bit for bit.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import torch

from .conversion import SpikingNetwork
from .cores import dense_destination_cores
from .counting import _count_input, _count_neurons, _count_synops, _Totals
from .lava_network import LavaNetwork


@dataclass(frozen=True)
class LavaLif:
    """lava-nc's floating-point LIF: u = u(1-du) + a_in; v = v(1-dv) + u + bias; spike if v > vth; v = 0 on spike.

    One parameter set for every layer of a ``SpikingNetwork`` in lava mode; a ``LavaNetwork`` gives
    them per layer (``LavaLayer``).

    Attributes:
        du: Current decay (0..1).
        dv: Voltage decay (0..1).
        vth: Threshold (strict ``>``).
    """

    du: float = 1.0
    dv: float = 0.0
    vth: float = 1.0


@dataclass(frozen=True)
class _LavaStage:
    """One LIF process (or the non-spiking output layer of a converted network) and its Dense synapses, float64."""

    name: str
    kind: str
    synapses: Callable[[torch.Tensor], torch.Tensor] | None  # spikes -> a_in without bias; None: bias-driven
    bias: torch.Tensor
    lif: LavaLif
    spiking: bool
    fanout: torch.Tensor | None
    dense_synapses: int
    out_shape: tuple[int, ...]
    input_size: int
    core_fanout: torch.Tensor | None = None


def _numpy_dense(weights: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """lava's Dense sum, by lava's own operation: ``weights[:, s_in].sum(axis=1)`` per sample (numpy, float64)."""
    import numpy as np

    w = weights.detach().to("cpu", torch.float64).numpy()

    def apply(spikes: torch.Tensor) -> torch.Tensor:
        active = spikes.detach().cpu().numpy().astype(bool)
        out = np.stack([w[:, row].sum(axis=1) for row in active]) if len(active) else np.zeros((0, w.shape[0]))
        return torch.from_numpy(out).to(spikes.device)
    return apply


def _lava_stages(network: SpikingNetwork | LavaNetwork, lif: LavaLif, device: torch.device,
                 exact: bool = False) -> list[_LavaStage]:
    """Float64 copies of the network's parameters, in the shape the lava loop needs."""
    f64 = torch.float64
    stages = []
    if isinstance(network, LavaNetwork):
        for name, layer in zip(network.names, network.layers):
            weights = None if layer.weights is None else layer.weights.to(device=device, dtype=f64)
            if weights is None:
                synapses = None
            elif exact:
                synapses = _numpy_dense(weights)
            else:
                synapses = (lambda s, w=weights: torch.nn.functional.linear(s, w))
            fanout = None if weights is None else (weights != 0).sum(0).to(f64)
            stages.append(_LavaStage(name, "linear" if weights is not None else "bias", synapses,
                                     layer.bias.to(device=device, dtype=f64).view(1, -1),
                                     LavaLif(layer.du, layer.dv, layer.vth), True, fanout,
                                     0 if weights is None else weights.numel(), (layer.neurons,),
                                     0 if weights is None else int(weights.shape[1]),
                                     None if weights is None else dense_destination_cores(weights)))
        return stages
    if network.reset != "zero":
        raise ValueError(f"dynamics='lava' resets to zero as lava's LIF does; this network has reset="
                         f"{network.reset!r}, which lava mode would ignore: set network.reset = 'zero'")
    if network.threshold != lif.vth:
        raise ValueError(f"dynamics='lava' fires at lif.vth={lif.vth!r}; network.threshold={network.threshold!r} "
                         "would be ignored: make them equal")
    kwta = [layer.name for layer in network.layers if layer.winners is not None]
    if kwta:
        raise ValueError(f"dynamics='lava' has no k-WTA; layer(s) {', '.join(kwta)} would lose it: use dynamics='if'")
    for layer in network.layers:
        op = copy.deepcopy(layer.op).to(device=device, dtype=f64)
        bias = getattr(op, "bias", None)
        if bias is not None:
            bias = bias.detach().clone().view((1, -1) + (1,) * (len(layer.out_shape) - 1))
            op.bias = None  # the bias is lava's LIF bias, added to v, not to a_in
        else:
            bias = torch.zeros((), dtype=f64, device=device)
        synapses = (lambda s, op=op: op(s.flatten(1))) if layer.flatten else op
        fanout = None if layer.fanout is None else layer.fanout.to(device=device, dtype=f64)
        dense = int(layer.fanout.sum()) if layer.fanout is not None and layer.kind != "avgpool" else 0
        in_size = int(torch.tensor(layer.in_shape).prod()) if layer.in_shape else 0
        core_fanout = None if layer.core_fanout is None else layer.core_fanout.to(device=device, dtype=f64)
        stages.append(_LavaStage(layer.name, layer.kind, synapses, bias, lif, layer.spiking, fanout, dense,
                                 layer.out_shape, in_size, core_fanout))
    return stages


def _run_lava(stages: list[_LavaStage], batch: torch.Tensor, timesteps: int, totals: _Totals,
              trains: dict[str, list[torch.Tensor]] | None) -> torch.Tensor:
    """lava-nc, float64: Dense sends at step t what it received at t-1; LIF integrates and spikes in the same step.

    The arithmetic follows lava's PyLifModelFloat operation by operation (same order, same dtype):
    ``u = u * (1 - du); u += a_in; v = v * (1 - dv) + u + bias; s = v > vth; v[s] = 0``.
    """
    if batch.dim() < 3 or batch.shape[1] != timesteps:
        raise ValueError(f"dynamics='lava' takes spike inputs of shape (N, timesteps={timesteps}, ...), "
                         f"got {tuple(batch.shape)}")
    first = stages[0]
    if first.synapses is None and batch[0, 0].numel() != 0:
        raise ValueError(f"layer {first.name} is bias-driven and takes no input spikes, got inputs of shape "
                         f"{tuple(batch.shape)}")
    if first.synapses is not None and first.input_size and batch[0, 0].numel() != first.input_size:
        raise ValueError(f"layer {first.name} takes {first.input_size} input spikes per timestep, got inputs of "
                         f"shape {tuple(batch.shape)}")
    n = len(stages)
    samples = batch.shape[0]
    f64 = torch.float64
    buffers: list[torch.Tensor | None] = [None] * n  # each Dense's a_out for the next step
    u = [torch.zeros((samples,) + stage.out_shape, dtype=f64, device=batch.device) for stage in stages]
    v = [torch.zeros_like(x) for x in u]
    output = None
    for step in range(timesteps):
        spikes = batch[:, step]
        _count_input(spikes, totals, step, trains)
        for i, stage in enumerate(stages):
            arriving = buffers[i]
            if stage.synapses is not None:
                _count_synops(stage.kind, stage.fanout, spikes, totals, stage.core_fanout)
                buffers[i] = stage.synapses(spikes)
            a_in = torch.zeros_like(u[i]) if arriving is None else arriving
            u[i].mul_(1 - stage.lif.du).add_(a_in)
            v[i].mul_(1 - stage.lif.dv).add_(u[i]).add_(stage.bias)
            current = a_in + stage.bias
            if not stage.spiking:
                _count_neurons(stage.name, current, None, totals, step, trains)
                output = v[i].clone()
                continue
            fired = v[i] > stage.lif.vth
            _count_neurons(stage.name, current, fired, totals, step, trains)
            v[i].masked_fill_(fired, 0.0)
            spikes = fired.to(f64)
    # An all-spiking network (as lava builds them) has no integrating output layer: report the last voltages.
    return output if output is not None else v[-1].clone()
