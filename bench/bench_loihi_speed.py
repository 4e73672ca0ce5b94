"""Speed of the torch spiking simulator: against lava-nc on the same network, inputs and timesteps, and on
an MNIST-sized MLP (784-256-256-10, 100 timesteps, 1,000 inputs). Ratios measured in this run; nothing asserted.

Target (issue 4): at least 50x faster than lava-nc. lava-nc runs in its own Python 3.10 (see README);
without one the comparison is skipped with the reason.
"""

from __future__ import annotations

import sys
import time

import torch

from energymeter.loihi import LavaLif, convert, simulate
from energymeter.loihi.lava_check import (LavaUnavailable, find_lava_python, lava_spikes, random_network,
                                          random_spikes, torch_spikes)
from energymeter.models import build, load_dataset, train


def against_lava() -> None:
    try:
        python = find_lava_python()
    except LavaUnavailable as exc:
        print(f"lava-nc comparison skipped: {exc}")
        return
    sizes, samples, timesteps = [64, 128, 64, 10], 10, 100
    network = random_network(sizes, seed=0, lif=LavaLif(du=0.5, dv=0.1, vth=1.0), weight_scale=0.3)
    spikes = random_spikes(samples, timesteps, sizes[0], 0.2, seed=0)
    theirs, lava_s = lava_spikes(network, spikes, python=python, timeout_s=600)
    start = time.perf_counter()
    ours = torch_spikes(network, spikes)  # one sample at a time, as lava runs them
    per_sample_s = time.perf_counter() - start
    snn = network.to_spiking()
    start = time.perf_counter()
    simulate(snn, spikes, timesteps, dynamics="lava", lif=network.lif)  # the whole batch at once
    batched_s = time.perf_counter() - start
    print(f"lava-nc vs torch simulator, {'-'.join(map(str, sizes))} LIF network, {samples} inputs x {timesteps} "
          f"timesteps (spikes identical: {ours == theirs}):")
    print(f"  lava-nc (Loihi2SimCfg, floating point): {lava_s:.2f} s")
    print(f"  torch, one input at a time:             {per_sample_s:.3f} s -> {lava_s / per_sample_s:,.0f}x faster")
    print(f"  torch, all inputs batched:              {batched_s:.3f} s -> {lava_s / batched_s:,.0f}x faster "
          f"(target >= 50x: {'met' if lava_s / batched_s >= 50 else 'NOT met'})")


def mnist_mlp() -> None:
    data = load_dataset("mnist-5k")
    model = build("mlp", data.in_shape, 10, seed=0)
    result = train(model, data, lam=0.0, epochs=3, seed=0)
    snn = convert(model, data.x_train[:500])
    x, y = data.x_test[:1000], data.y_test[:1000]
    start = time.perf_counter()
    sim = simulate(snn, x, 100)
    wall = time.perf_counter() - start
    print(f"MNIST-sized MLP 784-256-256-10 (mnist-5k, 3 epochs; source accuracy {result.test_accuracy * 100:.1f}%), "
          f"1,000 inputs x 100 timesteps on {torch.get_num_threads()} CPU thread(s): {wall:.2f} s "
          f"({wall / 1000 * 1e3:.2f} ms per input); spiking accuracy {sim.accuracy(y) * 100:.1f}%, "
          f"{sim.per_sample()['synops_effective']:,.0f} synaptic ops and {sim.per_sample()['spikes']:,.0f} spikes "
          "per input")


def main() -> int:
    against_lava()
    mnist_mlp()
    return 0


if __name__ == "__main__":
    sys.exit(main())
