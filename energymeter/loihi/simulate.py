"""Vectorised, batched simulation of a converted spiking network, counting what Loihi would do.

Counting definitions (NeuroBench's where one exists):

* ``synops_effective``: for each Linear/Conv layer and timestep, the sum over presynaptic spikes of
  that neuron's non-zero outgoing synapses (bias excluded); NeuroBench's Effective_ACs x samples.
* ``synops_dense``: the same with every input and weight counted; NeuroBench's Dense x samples.
* ``pool_synops``: synaptic events of average-pooling layers (not in NeuroBench's count; Loihi
  implements pooling with synapses, so the energy estimate adds them).
* ``neuron_updates_active``: neuron-timesteps with a non-zero input current (synaptic + bias);
  ``..._inactive`` the rest; ``..._spiking`` the active updates that emitted a spike.
* ``activation_sparsity``: zeros / all outputs of the hidden spiking layers over every timestep
  and sample (NeuroBench's ActivationSparsity on spiking layers).

The input encoder is a layer of IF neurons driven by pixel values (threshold 1); its spikes are
counted (they drive the first layer's synapses), its neuron updates are not (they are off-core).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable

import torch

from .convert import SpikingLayer, SpikingNetwork

DYNAMICS = ("if", "lava")

# Observers of finished simulations (e.g. an open ``loihi:sim`` measurement session). The simulator
# owns this list and calls each observer with the SimResult; it imports nothing of the observers.
_observers: list[Callable[["SimResult"], None]] = []
_observers_lock = threading.Lock()


def subscribe(observer: Callable[["SimResult"], None]) -> None:
    """Call ``observer(result)`` after every ``simulate()`` from now on."""
    with _observers_lock:
        _observers.append(observer)


def unsubscribe(observer: Callable[["SimResult"], None]) -> None:
    """Stop calling ``observer`` (no error when it was not subscribed)."""
    with _observers_lock:
        if observer in _observers:
            _observers.remove(observer)


def _notify(result: "SimResult") -> None:
    with _observers_lock:
        observers = list(_observers)
    for observer in observers:
        observer(result)


@dataclass(frozen=True)
class LavaLif:
    """lava-nc's floating-point LIF: u = u(1-du) + a_in; v = v(1-dv) + u + bias; spike if v > vth; v = 0 on spike.

    Attributes:
        du: Current decay (0..1).
        dv: Voltage decay (0..1).
        vth: Threshold (strict ``>``).
    """

    du: float = 1.0
    dv: float = 0.0
    vth: float = 1.0


@dataclass(frozen=True)
class SimResult:
    """What a simulation did, summed over samples and timesteps.

    Attributes:
        predictions: Predicted class per sample.
        timesteps: Timesteps simulated.
        samples: Samples simulated.
        spikes_per_layer: Layer name (``"input"`` first) to spikes emitted.
        spikes_per_timestep: Layer name to a list of spikes per timestep (summed over samples).
        synops_effective, synops_dense, pool_synops: See the module docstring.
        neuron_updates_active, neuron_updates_inactive, neuron_updates_spiking: Neuron-timesteps.
        activation_sparsity: Fraction of zero outputs of hidden spiking layers.
        output_potential: The output layer's accumulated potential (samples, classes).
    """

    predictions: torch.Tensor = field(repr=False)
    timesteps: int
    samples: int
    spikes_per_layer: dict[str, int]
    spikes_per_timestep: dict[str, list[int]] = field(repr=False)
    synops_effective: int
    synops_dense: int
    pool_synops: int
    neuron_updates_active: int
    neuron_updates_inactive: int
    neuron_updates_spiking: int
    activation_sparsity: float
    output_potential: torch.Tensor = field(repr=False)

    @property
    def total_spikes(self) -> int:
        """Spikes of every layer, input encoder included."""
        return sum(self.spikes_per_layer.values())

    def accuracy(self, labels: torch.Tensor) -> float:
        """Fraction of predictions equal to ``labels``."""
        return float((self.predictions.cpu() == labels.cpu()).float().mean())

    def per_sample(self) -> dict[str, float]:
        """Counts divided by the number of samples (NeuroBench reports per sample)."""
        n = max(self.samples, 1)
        return {"spikes": self.total_spikes / n, "synops_effective": self.synops_effective / n,
                "synops_dense": self.synops_dense / n, "pool_synops": self.pool_synops / n,
                "neuron_updates_active": self.neuron_updates_active / n,
                "neuron_updates_inactive": self.neuron_updates_inactive / n}


def _apply(layer: SpikingLayer, spikes: torch.Tensor, with_bias: bool = True) -> torch.Tensor:
    x = spikes.flatten(1) if layer.flatten else spikes
    out = layer.op(x)
    if not with_bias and layer.bias is not None:
        shape = (1, -1) + (1,) * (out.dim() - 2)
        out = out - layer.bias.view(shape)
    return out


class _Totals:
    def __init__(self, network: SpikingNetwork, timesteps: int) -> None:
        names = ["input"] + [layer.name for layer in network.layers if layer.spiking]
        self.spikes = {n: 0 for n in names}
        self.per_step = {n: [0] * timesteps for n in names}
        self.synops = 0
        self.dense = 0
        self.pool = 0
        self.active = 0
        self.inactive = 0
        self.spiking_updates = 0
        self.hidden_zeros = 0
        self.hidden_total = 0


def simulate(network: SpikingNetwork, inputs: torch.Tensor, timesteps: int, *, batch_size: int = 1000,
             dynamics: str = "if", lif: LavaLif | None = None, device: str | torch.device | None = None) -> SimResult:
    """Run the spiking network on ``inputs`` for ``timesteps`` steps.

    Args:
        network: From ``convert``.
        inputs: (N, ...) values in [0, 1], rate-coded by IF input neurons (threshold 1).
        timesteps: Steps per sample.
        batch_size: Samples simulated at once.
        dynamics: ``"if"`` (integrate-and-fire, the converted network's semantics) or ``"lava"``
            (lava-nc's LIF dynamics with ``lif`` parameters, reset to zero, and the one-step delay each
            Dense/LIF hop adds under lava's Loihi protocol; the input encoder is bypassed: inputs are
            taken as spikes per timestep of shape (N, T, features)).
        lif: LIF parameters for ``dynamics="lava"``.
        device: Where to simulate (default: where the network is).

    Raises:
        ValueError: bad timesteps or dynamics.
    """
    if timesteps < 1:
        raise ValueError(f"timesteps must be at least 1, got {timesteps!r}")
    if dynamics not in DYNAMICS:
        raise ValueError(f"dynamics must be one of {', '.join(DYNAMICS)}, got {dynamics!r}")
    device = torch.device(device) if device is not None else next(network.layers[0].op.parameters()).device
    totals = _Totals(network, timesteps)
    predictions, potentials = [], []
    with torch.no_grad():
        for start in range(0, len(inputs), batch_size):
            batch = inputs[start:start + batch_size].to(device)
            if dynamics == "if":
                potential = _run_if(network, batch, timesteps, totals)
            else:
                potential = _run_lava(network, batch, timesteps, totals, lif or LavaLif())
            potentials.append(potential.cpu())
            predictions.append(potential.argmax(1).cpu())
    for layer in network.layers:
        totals.dense += int(layer.fanout.sum()) * timesteps * len(inputs) if layer.kind != "avgpool" else 0
    result = SimResult(torch.cat(predictions), timesteps, len(inputs), totals.spikes, totals.per_step, totals.synops,
                       totals.dense, totals.pool, totals.active, totals.inactive, totals.spiking_updates,
                       totals.hidden_zeros / totals.hidden_total if totals.hidden_total else 0.0, torch.cat(potentials))
    _notify(result)
    return result


def _count_synops(layer: SpikingLayer, spikes: torch.Tensor, totals: _Totals) -> None:
    events = int((spikes.flatten(1) * layer.fanout.flatten()).sum())
    if layer.kind == "avgpool":
        totals.pool += events
    else:
        totals.synops += events


def _count_neurons(layer: SpikingLayer, current: torch.Tensor, fired: torch.Tensor | None, totals: _Totals,
                   step: int) -> None:
    active = int((current != 0).sum())
    totals.active += active
    totals.inactive += current.numel() - active
    if fired is not None:
        spikes = int(fired.sum())
        totals.spiking_updates += int((fired & (current != 0)).sum())
        totals.spikes[layer.name] += spikes
        totals.per_step[layer.name][step] += spikes
        totals.hidden_zeros += fired.numel() - spikes
        totals.hidden_total += fired.numel()


def _top_k_mask(v: torch.Tensor, k: int) -> torch.Tensor:
    flat = v.flatten(1)
    if k >= flat.shape[1]:
        return torch.ones_like(v, dtype=torch.bool)
    threshold = flat.topk(k, dim=1).values[:, -1:]
    return (flat >= threshold).view_as(v)


def _run_if(network: SpikingNetwork, batch: torch.Tensor, timesteps: int, totals: _Totals) -> torch.Tensor:
    threshold = network.threshold
    v_in = torch.zeros_like(batch)
    volts: list[torch.Tensor | None] = [None] * len(network.layers)
    drive: list[torch.Tensor | None] = [None] * len(network.layers)
    output = None
    for step in range(timesteps):
        v_in += batch
        spikes = (v_in >= threshold).to(batch.dtype)
        v_in -= spikes * threshold if network.reset == "subtract" else v_in * spikes
        n_in = int(spikes.sum())
        totals.spikes["input"] += n_in
        totals.per_step["input"][step] += n_in
        for i, layer in enumerate(network.layers):
            _count_synops(layer, spikes, totals)
            current = _apply(layer, spikes)
            if not layer.spiking:
                _count_neurons(layer, current, None, totals, step)
                output = current if output is None else output + current
                continue
            if layer.winners is not None:
                # k-WTA: the winners are the top k of the input current accumulated so far (for a static
                # input, the top k pre-activations); only winners integrate, as if inhibited laterally.
                drive[i] = current.clone() if drive[i] is None else drive[i].add_(current)
                current = current * _top_k_mask(drive[i], layer.winners)
            v = current.clone() if volts[i] is None else volts[i].add_(current)
            fired = v >= threshold
            _count_neurons(layer, current, fired, totals, step)
            spikes = fired.to(batch.dtype)
            if network.reset == "subtract":
                v.sub_(spikes * threshold)
            else:
                v.masked_fill_(fired, 0.0)
            volts[i] = v
    assert output is not None
    return output


def _run_lava(network: SpikingNetwork, batch: torch.Tensor, timesteps: int, totals: _Totals,
              lif: LavaLif) -> torch.Tensor:
    """lava-nc timing: Dense sends at step t what it received at t-1; LIF integrates and spikes in the same step."""
    if batch.dim() < 3 or batch.shape[1] != timesteps:
        raise ValueError(f"dynamics='lava' takes spike inputs of shape (N, timesteps={timesteps}, ...), "
                         f"got {tuple(batch.shape)}")
    n = len(network.layers)
    buffers: list[torch.Tensor | None] = [None] * n  # each Dense's a_out for the next step
    u: list[torch.Tensor | None] = [None] * n
    v: list[torch.Tensor | None] = [None] * n
    output = None
    for step in range(timesteps):
        spikes = batch[:, step].to(torch.float32)
        n_in = int(spikes.sum())
        totals.spikes["input"] += n_in
        totals.per_step["input"][step] += n_in
        for i, layer in enumerate(network.layers):
            arriving = buffers[i]
            _count_synops(layer, spikes, totals)
            buffers[i] = _apply(layer, spikes, with_bias=False)
            a_in = torch.zeros_like(buffers[i]) if arriving is None else arriving
            bias = layer.bias if layer.bias is not None else torch.zeros(())
            bias = bias.view((1, -1) + (1,) * (a_in.dim() - 2)) if bias.dim() else bias
            u[i] = a_in.clone() if u[i] is None else u[i].mul_(1 - lif.du).add_(a_in)
            v[i] = (u[i] + bias) if v[i] is None else v[i].mul_(1 - lif.dv).add_(u[i] + bias)
            current = a_in + bias
            if not layer.spiking:
                _count_neurons(layer, current, None, totals, step)
                output = v[i].clone()
                continue
            fired = v[i] > lif.vth
            _count_neurons(layer, current, fired, totals, step)
            v[i].masked_fill_(fired, 0.0)
            spikes = fired.to(torch.float32)
    # An all-spiking network (as lava builds them) has no integrating output layer: report the last voltages.
    return output if output is not None else v[-1]
