"""An independent numpy re-implementation of lava-nc's floating-point Dense and LIF, for cross-checks.

It repeats lava 0.10's ``PyDenseModelFloat`` and ``PyLifModelFloat`` operation by operation
(``a_out = weights[:, s_in].sum(axis=1)`` sent one step later; ``u = u * (1 - du); u += a_in;
v = v * (1 - dv) + u + bias; s = v > vth; v[s] = 0``), in float64 as lava does, or in float32 to show
what a float32 simulator gets wrong. It shares no code with ``simulate`` (torch), so agreement between
the two and lava is evidence, not a tautology. It also reports each neuron's potential before reset,
so a test can tell how close to its threshold a network came, and ``plant_near_tie`` can move one
layer's threshold to within 1e-7 of a potential that a random network actually reaches.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch

from ..loihi.lava_network import LavaLayer, LavaNetwork


@dataclass(frozen=True)
class ReferenceRun:
    """One sample through the reference.

    Attributes:
        spikes: Per layer, bool array (timesteps, neurons).
        potentials: Per layer, float array (timesteps, neurons): ``v`` compared with ``vth`` (before reset).
        thresholds: Per layer, the threshold as compared (rounded to the dtype).
    """

    spikes: tuple[np.ndarray, ...]
    potentials: tuple[np.ndarray, ...]
    thresholds: tuple[float, ...]

    def closest_to_threshold(self) -> tuple[float, int, int, int]:
        """(|v - vth|, layer, timestep, neuron) of the neuron-step whose potential came closest to its threshold."""
        best = (float("inf"), -1, -1, -1)
        for layer, (v, vth) in enumerate(zip(self.potentials, self.thresholds)):
            if v.size == 0:
                continue
            gap = np.abs(v.astype(np.float64) - vth)
            step, neuron = np.unravel_index(int(gap.argmin()), gap.shape)
            if gap[step, neuron] < best[0]:
                best = (float(gap[step, neuron]), layer, int(step), int(neuron))
        return best


def run_reference(network: LavaNetwork, spikes: np.ndarray | None, timesteps: int,
                  dtype: type = np.float64) -> ReferenceRun:
    """Run one sample (spikes (timesteps, inputs), or None for a bias-driven first layer) as lava would.

    Args:
        network: The network.
        spikes: The sample's input spikes.
        timesteps: Steps.
        dtype: ``np.float64`` (lava's) or ``np.float32`` (what the simulator used to compute in).
    """
    layers = network.layers
    weights = [None if layer.weights is None else layer.weights.double().numpy().astype(dtype) for layer in layers]
    biases = [layer.bias.double().numpy().astype(dtype) for layer in layers]
    one = dtype(1)
    du = [one - dtype(layer.du) for layer in layers]
    dv = [one - dtype(layer.dv) for layer in layers]
    vth = [dtype(layer.vth) for layer in layers]
    u = [np.zeros(layer.neurons, dtype) for layer in layers]
    v = [np.zeros(layer.neurons, dtype) for layer in layers]
    a_buff = [np.zeros(layer.neurons, dtype) for layer in layers]
    trains = [np.zeros((timesteps, layer.neurons), bool) for layer in layers]
    volts = [np.zeros((timesteps, layer.neurons), dtype) for layer in layers]
    for t in range(timesteps):
        s_in = None if spikes is None else np.asarray(spikes[t]) != 0
        for i in range(len(layers)):
            a_in = a_buff[i]  # what Dense received last step
            if weights[i] is not None:
                a_buff[i] = weights[i][:, s_in].sum(axis=1)
            else:
                a_in = np.zeros(layers[i].neurons, dtype)
            u[i][:] = u[i] * du[i]
            u[i][:] += a_in
            v[i][:] = v[i] * dv[i] + u[i] + biases[i]
            volts[i][t] = v[i]
            fired = v[i] > vth[i]
            v[i][fired] = 0
            trains[i][t] = fired
            s_in = fired
    return ReferenceRun(tuple(trains), tuple(volts), tuple(float(x) for x in vth))


def _with_threshold(network: LavaNetwork, index: int, vth: float) -> LavaNetwork:
    layers = list(network.layers)
    old = layers[index]
    layers[index] = LavaLayer(du=old.du, dv=old.dv, vth=vth, weights=old.weights, bias=old.bias)
    return LavaNetwork(layers)


def plant_near_tie(network: LavaNetwork, timesteps: int, seed: int, *, within: float = 1e-7,
                   attempts: int = 60) -> tuple[LavaNetwork, float] | None:
    """Move one layer's threshold to within ``within`` of a potential a (bias-driven) network reaches.

    Candidates are neuron-steps where float64 and float32 potentials differ by 4e-9..2*within before
    the two computations first disagree on a spike; one is drawn at random (``seed``) and its layer's
    threshold set midway between the two potentials, so float64 and float32 fall on opposite sides of
    it while float64 keeps a margin of at least 2e-9. That margin is above the float64 rounding
    differences between the torch simulator (BLAS sums) and lava (numpy sums over active columns):
    median 1e-15, at most 1.1e-10 x vth over 200 random networks of this family at 120 steps.

    Returns:
        The new network and the float64 reference's closest |v - vth| in it, where float64 and float32
        then give different spikes and that closest approach is under ``within``; None if no attempt did.
    """
    rng = random.Random(seed)
    ref64 = run_reference(network, None, timesteps, np.float64)
    ref32 = run_reference(network, None, timesteps, np.float32)
    first_difference = timesteps
    for a, b in zip(ref64.spikes, ref32.spikes):
        rows = np.nonzero((a != b).any(axis=1))[0]
        if rows.size:
            first_difference = min(first_difference, int(rows[0]))
    candidates = []
    for layer, (v64, v32, vth) in enumerate(zip(ref64.potentials, ref32.potentials, ref64.thresholds)):
        gap = np.abs(v64[:first_difference] - v32[:first_difference].astype(np.float64))
        near = (gap > 4e-9) & (gap < 2 * within) & (np.abs(v64[:first_difference] - vth) < 0.25 * abs(vth) + 0.05)
        candidates += [(layer, int(t), int(n)) for t, n in zip(*np.nonzero(near))]
    rng.shuffle(candidates)
    for layer, t, n in candidates[:attempts]:
        vth = (float(ref64.potentials[layer][t, n]) + float(ref32.potentials[layer][t, n])) / 2
        planted = _with_threshold(network, layer, vth)
        new64 = run_reference(planted, None, timesteps, np.float64)
        new32 = run_reference(planted, None, timesteps, np.float32)
        gap = new64.closest_to_threshold()[0]
        differs = any(not np.array_equal(a, b) for a, b in zip(new64.spikes, new32.spikes))
        if differs and gap < within:
            return planted, gap
    return None


def reference_spikes(network: LavaNetwork, spikes: torch.Tensor | None, timesteps: int,
                     dtype: type = np.float64) -> list[ReferenceRun]:
    """``run_reference`` for every sample of ``spikes`` (samples, timesteps, inputs), or once for None."""
    if spikes is None:
        return [run_reference(network, None, timesteps, dtype)]
    return [run_reference(network, sample.numpy(), timesteps, dtype) for sample in spikes]
