"""Speed of the torch spiking simulator (lava mode, float64) against lava-nc on one 784-256-256-10 LIF network over
100 timesteps, and of the converted MNIST-sized MLP in IF mode. Ratios measured in this run; nothing asserted.

Against lava, three figures, each stating what it compares:

* lava's ``run()`` alone (it compiles, starts lava's runtime and steps) vs the simulator on one input;
* lava including its build (processes, wiring, monitors) and read-out (``get_data()``, ``stop()``) vs the
  simulator on one input;
* the same lava total per input vs the simulator's time per input in a batch of 32.

lava-nc builds and runs each input separately; it runs in its own Python 3.10 (see README); without one
the comparison is skipped with the reason. Usage: ``python bench/bench_loihi_speed.py [--lava-inputs N]
[--no-mnist]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch

from energymeter.crosscheck.lava_check import (LavaUnavailable, find_lava_python, random_network, random_spikes,
                                               run_lava)
from energymeter.loihi import convert, simulate

SIZES = (784, 256, 256, 10)
TIMESTEPS = 100
BATCH = 32


def _best_of(fn, repeats: int) -> float:
    """Fastest of ``repeats`` wall-clock timings (s) of ``fn()``, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _span(values: list[float]) -> str:
    return f"{min(values):,.0f}-{max(values):,.0f}x (median {statistics.median(values):,.0f}x)"


def against_lava(lava_inputs: int) -> None:
    try:
        python = find_lava_python()
    except LavaUnavailable as exc:
        print(f"lava-nc comparison skipped: {exc}")
        return
    network = random_network(0, widths=list(SIZES[1:]), input_size=SIZES[0], weight_kind="signed")
    spikes = random_spikes(BATCH, TIMESTEPS, SIZES[0], 0.1, seed=0)
    (run,) = run_lava([(network, spikes[:lava_inputs], TIMESTEPS)], record="neurons", python=python, timeout_s=1800)
    ours = simulate(network, spikes[:lava_inputs], TIMESTEPS, record="neurons")
    identical = all(torch.equal(ours.neuron_spikes[n], run.neuron_spikes[n]) for n in network.names)
    one_s = _best_of(lambda: simulate(network, spikes[:1], TIMESTEPS), 5)
    batch_s = _best_of(lambda: simulate(network, spikes, TIMESTEPS), 3)
    per_input_s = batch_s / BATCH
    print(f"lava-nc 0.10 (Loihi2SimCfg floating_pt, float64) vs the torch simulator (dynamics='lava', float64), one "
          f"{'-'.join(map(str, SIZES))} LIF network, {TIMESTEPS} timesteps, input spike rate 0.1, "
          f"{torch.get_num_threads()} torch CPU thread(s), {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f} at the start; lava ran {lava_inputs} inputs, each built and run alone; "
          f"spikes identical per neuron and timestep: {identical}")
    print(f"  lava build (processes, wiring, monitors): {', '.join(f'{s:.2f}' for s in run.build_s)} s")
    print(f"  lava run() alone:                         {', '.join(f'{s:.2f}' for s in run.run_s)} s")
    print(f"  lava read-out (get_data, stop):           {', '.join(f'{s:.2f}' for s in run.readout_s)} s")
    print(f"  torch, one input:                         {one_s * 1e3:.1f} ms (best of 5)")
    print(f"  torch, batch of {BATCH}:                      {batch_s * 1e3:.1f} ms (best of 3), "
          f"{per_input_s * 1e3:.2f} ms per input")
    print(f"  lava run() alone vs torch one input:               {_span([s / one_s for s in run.run_s])} faster")
    print(f"  lava build+run+read-out vs torch one input:        {_span([s / one_s for s in run.total_s])} faster")
    print(f"  lava build+run+read-out per input vs torch batch:  {_span([s / per_input_s for s in run.total_s])} "
          f"faster per input (batch of {BATCH})")


def mnist_mlp() -> None:
    from energymeter.models import build, load_dataset, train

    data = load_dataset("mnist-5k")
    model = build("mlp", data.in_shape, 10, seed=0)
    result = train(model, data, lam=0.0, epochs=3, seed=0)
    snn = convert(model, data.x_train[:500])
    x, y = data.x_test[:1000], data.y_test[:1000]
    start = time.perf_counter()
    sim = simulate(snn, x, 100)
    wall = time.perf_counter() - start
    print(f"MNIST-sized MLP 784-256-256-10 (mnist-5k, 3 epochs; source accuracy {result.test_accuracy * 100:.1f}%), "
          f"IF mode (float32, the converted network's dtype), 1,000 inputs x 100 timesteps on "
          f"{torch.get_num_threads()} CPU thread(s): {wall:.2f} s ({wall / 1000 * 1e3:.2f} ms per input); spiking "
          f"accuracy {sim.accuracy(y) * 100:.1f}%, {sim.per_sample()['synops_effective']:,.0f} synaptic ops and "
          f"{sim.per_sample()['spikes']:,.0f} spikes per input")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lava-inputs", type=int, default=5, help="inputs lava builds and runs (default 5)")
    parser.add_argument("--no-mnist", action="store_true", help="skip the converted MNIST MLP")
    args = parser.parse_args(argv)
    against_lava(args.lava_inputs)
    if not args.no_mnist:
        mnist_mlp()
    return 0


if __name__ == "__main__":
    sys.exit(main())
