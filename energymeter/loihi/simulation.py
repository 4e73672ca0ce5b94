"""Vectorised, batched simulation of a spiking network, counting what Loihi would do.

Two dynamics: ``"if"``, the rate-coded integrate-and-fire semantics of a network from ``convert``
(computed in the network's parameter dtype, float32 from ``convert``), and ``"lava"``, lava-nc's
floating-point Dense and LIF processes, computed in float64 as lava does, for a ``LavaNetwork`` (per-layer
LIF parameters, optional bias-driven first layer) or a converted network with one ``LavaLif``.

Counting definitions (NeuroBench's where one exists):

* ``synops_effective``: for each Linear/Conv layer and timestep, the sum over presynaptic spikes of
  that neuron's non-zero outgoing synapses (bias excluded); NeuroBench's Effective_ACs x samples.
* ``synops_dense``: the same with every input and weight counted; NeuroBench's Dense x samples.
* ``pool_synops``: synaptic events of average-pooling layers (not in NeuroBench's count; Loihi
  implements pooling with synapses, so the energy estimate adds them).
* ``neuron_updates_active``: neuron-timesteps with a non-zero input current (synaptic + bias);
  ``..._inactive`` the rest; ``..._spiking`` the active updates that emitted a spike.
* ``packets``: spike packets sent, one per spike and destination core its neuron's synapses reach
  (``cores``: each layer packed onto cores of ``neurons_per_core`` neurons); input-encoder spikes included,
  as they reach the first layer's cores as packets.
* ``activation_sparsity``: zeros / all outputs of the hidden spiking layers over every timestep
  and sample (NeuroBench's ActivationSparsity on spiking layers).

The input encoder is a layer of IF neurons driven by pixel values (threshold 1); its spikes are
counted (they drive the first layer's synapses), its neuron updates are not (they are off-core).

Observers of finished simulations (the ``loihi`` measuring backend's open sessions) register with
``subscribe(observer)`` / ``unsubscribe(observer)``, this module's registry: each is called with every
``SimResult`` after ``simulate`` returns it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Callable, Mapping

import torch

from .conversion import SpikingNetwork
from .counting import _Totals
from .if_mode import _run_if
from .lava_mode import LavaLif, _lava_stages, _run_lava
from .lava_network import LavaNetwork

__all__ = ["DYNAMICS", "RECORDS", "LavaLif", "SimResult", "simulate", "subscribe", "unsubscribe"]

DYNAMICS = ("if", "lava")
RECORDS = ("counts", "neurons")

# The registry of observers of finished simulations (e.g. an open ``loihi:sim`` measurement session).
# The simulator owns it and calls each observer with the SimResult; it imports nothing of the observers.
_observers: list[Callable[["SimResult"], None]] = []
_observers_lock = threading.Lock()


def subscribe(observer: Callable[["SimResult"], None]) -> None:
    """Call ``observer(result)`` after every ``simulate()`` from now on.

    Raises:
        ValueError: ``observer`` is already subscribed (it would be called, and count, twice).
    """
    with _observers_lock:
        if observer in _observers:
            raise ValueError(f"{observer!r} is already subscribed to finished simulations")
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
        output_potential: The output layer's accumulated potential (samples, classes); in lava mode the
            last layer's voltages after the last step, float64.
        neuron_spikes: With ``record="neurons"``: layer name (``"input"`` first) to a bool tensor
            (samples, timesteps, *neurons), True where that neuron spiked; ``None`` otherwise.
        packets: Spike packets sent, one per spike and destination core (see the module docstring).
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
    neuron_spikes: Mapping[str, torch.Tensor] | None = field(default=None, repr=False)
    packets: int = 0

    @property
    def total_spikes(self) -> int:
        """Spikes of every layer, input encoder included."""
        return sum(self.spikes_per_layer.values())

    @property
    def neuron_spikes_on_core(self) -> int:
        """Spikes of the on-core neurons: every layer's but the input encoder's."""
        return self.total_spikes - self.spikes_per_layer.get("input", 0)

    def accuracy(self, labels: torch.Tensor) -> float:
        """Fraction of predictions equal to ``labels``."""
        return float((self.predictions.cpu() == labels.cpu()).float().mean())

    def per_sample(self) -> dict[str, float]:
        """Counts divided by the number of samples (NeuroBench reports per sample)."""
        n = max(self.samples, 1)
        return {"spikes": self.total_spikes / n, "synops_effective": self.synops_effective / n,
                "synops_dense": self.synops_dense / n, "pool_synops": self.pool_synops / n,
                "neuron_updates_active": self.neuron_updates_active / n,
                "neuron_updates_inactive": self.neuron_updates_inactive / n, "packets": self.packets / n}


def simulate(network: SpikingNetwork | LavaNetwork, inputs: torch.Tensor | None, timesteps: int, *,
             batch_size: int = 1000, dynamics: str | None = None, lif: LavaLif | None = None,
             device: str | torch.device | None = None, record: str = "counts", exact: bool = False) -> SimResult:
    """Run a spiking network on ``inputs`` for ``timesteps`` steps.

    Two dynamics:

    * ``"if"`` (the default for a ``SpikingNetwork`` from ``convert``): rate-coded integrate-and-fire.
      It computes in the dtype of the network's parameters (float32 from ``convert``; a network whose
      layers were cast to float64 runs in float64); inputs are cast to that dtype.
    * ``"lava"`` (the only dynamics of a ``LavaNetwork``): lava-nc's floating-point LIF and Dense, in
      float64 whatever the parameters' dtype, because lava computes in float64 (float32 flips spikes
      whose potential lands within ~1e-7 of the threshold). Each Dense hop adds lava's one-step delay.
      The LIF update repeats lava's operations in lava's order; the Dense sum is a matrix product (BLAS)
      where lava sums the active columns with numpy, in another order, so potentials may differ in the
      last bits (median 1e-15 x vth; at most 1.1e-10 x vth over 200 random networks at 120 steps, where
      du = 0 lets the current grow large): a potential closer than that to its threshold could still
      fall the other way. ``exact=True`` closes that gap: each Dense sum is computed as lava computes it,
      ``weights[:, active].sum(axis=1)`` with numpy on the CPU, sample by sample, so every potential is
      the same float64 number as lava's and every spike the same on any network (slower: a numpy call per
      sample, layer and step).
      Inputs are spikes per timestep, shape (N, timesteps, inputs); the input encoder is bypassed.
      A ``SpikingNetwork`` is run with the one ``lif`` for every layer; it must reset to zero, have
      ``threshold == lif.vth`` and no k-WTA layer (lava would ignore them: an error, not a silent
      change). Per-layer parameters and a bias-driven first layer: use a ``LavaNetwork``.

    Args:
        network: A ``SpikingNetwork`` (from ``convert``) or a ``LavaNetwork``.
        inputs: ``"if"``: (N, ...) values in [0, 1], rate-coded by IF input neurons (threshold 1).
            ``"lava"``: (N, timesteps, inputs) spikes. ``None`` for a ``LavaNetwork`` whose first layer
            is bias-driven: one sample.
        timesteps: Steps per sample.
        batch_size: Samples simulated at once.
        dynamics: ``"if"`` or ``"lava"``; default ``"if"`` for a ``SpikingNetwork``, ``"lava"`` for a
            ``LavaNetwork``.
        lif: LIF parameters of every layer of a ``SpikingNetwork`` in lava mode (default ``LavaLif()``).
        device: Where to simulate (default: where the network is; CPU for a ``LavaNetwork``). Lava mode
            needs float64, which Apple's MPS lacks.
        record: ``"counts"`` (default) or ``"neurons"``: also keep every neuron's spike train in
            ``SimResult.neuron_spikes`` (one bool per sample, timestep and neuron).
        exact: Lava mode with a ``LavaNetwork`` only: sum each Dense as lava does (numpy, CPU), so the
            arithmetic is lava's bit for bit.

    Raises:
        ValueError: bad timesteps, dynamics, record or input shape; a parameter lava mode would ignore.
    """
    if timesteps < 1:
        raise ValueError(f"timesteps must be at least 1, got {timesteps!r}")
    if record not in RECORDS:
        raise ValueError(f"record must be one of {', '.join(RECORDS)}, got {record!r}")
    is_lava_network = isinstance(network, LavaNetwork)
    if dynamics is None:
        dynamics = "lava" if is_lava_network else "if"
    if dynamics not in DYNAMICS:
        raise ValueError(f"dynamics must be one of {', '.join(DYNAMICS)}, got {dynamics!r}")
    if is_lava_network:
        if dynamics != "lava":
            raise ValueError("a LavaNetwork runs only with dynamics='lava'")
        if lif is not None:
            raise ValueError("lif= would be ignored: a LavaNetwork's LIF parameters are given per LavaLayer")
        device = torch.device(device) if device is not None else network.layers[-1].bias.device
        if inputs is None:
            if network.input_size:
                raise ValueError(f"this LavaNetwork takes {network.input_size} input spikes per timestep: "
                                 f"pass inputs of shape (N, {timesteps}, {network.input_size})")
            inputs = torch.zeros(1, timesteps, 0)
    else:
        if inputs is None:
            raise ValueError("inputs is None: only a LavaNetwork with a bias-driven first layer runs without inputs")
        device = torch.device(device) if device is not None else next(network.layers[0].op.parameters()).device
    if dynamics == "lava":
        if device.type == "mps":
            raise ValueError("dynamics='lava' computes in float64, which the MPS device does not support")
        if exact and not is_lava_network:
            raise ValueError("exact=True is for a LavaNetwork (lava's own Dense); a converted network's synapses "
                             "are torch layers")
        stages = _lava_stages(network, lif or LavaLif(), device, exact)
        names = [stage.name for stage in stages if stage.spiking]
    else:
        if lif is not None:
            raise ValueError("lif= would be ignored: it sets the LIF of dynamics='lava' only")
        if exact:
            raise ValueError("exact= applies to dynamics='lava' only")
        names = [layer.name for layer in network.layers if layer.spiking]
        dtype = next(network.layers[0].op.parameters()).dtype
    totals = _Totals(names, timesteps)
    trains: dict[str, list[torch.Tensor]] | None = {n: [] for n in ["input"] + names} if record == "neurons" else None
    predictions, potentials = [], []
    with torch.no_grad():
        for start in range(0, len(inputs), batch_size):
            steps: dict[str, list[torch.Tensor]] | None = {n: [] for n in trains} if trains is not None else None
            if dynamics == "if":
                batch = inputs[start:start + batch_size].to(device=device, dtype=dtype)
                potential = _run_if(network, batch, timesteps, totals, steps)
            else:
                batch = inputs[start:start + batch_size].to(device=device, dtype=torch.float64)
                potential = _run_lava(stages, batch, timesteps, totals, steps)
            if trains is not None and steps is not None:
                for name, per_step in steps.items():
                    trains[name].append(torch.stack(per_step, dim=1).cpu())
            potentials.append(potential.cpu())
            predictions.append(potential.argmax(1).cpu())
    if dynamics == "lava":
        totals.dense += sum(stage.dense_synapses for stage in stages) * timesteps * len(inputs)
    else:
        for layer in network.layers:
            totals.dense += int(layer.fanout.sum()) * timesteps * len(inputs) if layer.kind != "avgpool" else 0
    neuron_spikes = None if trains is None else MappingProxyType({n: torch.cat(t) for n, t in trains.items()})
    result = SimResult(torch.cat(predictions), timesteps, len(inputs), totals.spikes, totals.per_step, totals.synops,
                       totals.dense, totals.pool, totals.active, totals.inactive, totals.spiking_updates,
                       totals.hidden_zeros / totals.hidden_total if totals.hidden_total else 0.0, torch.cat(potentials),
                       neuron_spikes, totals.packets)
    _notify(result)
    return result

