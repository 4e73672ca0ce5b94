"""The paper's lambda table on digits and mnist-5k: E per test sample relative to lambda = 0 (same seed), under
each definition of E, and the accuracy change; the paper's claims judged by ``energymeter.validation.analysis.claims``
(the thresholds live there, not here).

For lambda in {0, 1e-5, 1e-4, 1e-3, 1e-2} and 3 seeds (mean [95% interval] over seeds, log scale for ratios).
The cost of computing E in a training step is in ``bench_e_overhead.py``.
"""

from __future__ import annotations

import argparse
import sys
import time

from energymeter.models import build, evaluate, load_dataset, train
from energymeter.validation.analysis import claims
from energymeter.validation.analysis.stats import accuracy_change
from energymeter.validation.analysis.tables import e_ratio

LAMBDAS = (0.0, 1e-5, 1e-4, 1e-3, 1e-2)
KINDS = ("l2", "l1", "l0")


def table(dataset_name: str, seeds: int, epochs: int, model: str) -> None:
    data = load_dataset(dataset_name)
    runs = {}
    start = time.perf_counter()
    for seed in range(seeds):
        for lam in LAMBDAS:
            net = build(model, data.in_shape, 10, seed=seed)
            result = train(net, data, lam=lam, epochs=epochs, seed=seed)
            by_kind = {k: evaluate(net, data.x_test, data.y_test, activation_energy=k).activation_energy for k in KINDS}
            runs[lam, seed] = (result, by_kind)
    elapsed = time.perf_counter() - start
    print(f"\n{model} on {dataset_name}: {epochs} epochs, batch 128, Adam lr 1e-3, seeds 0..{seeds - 1}, penalty "
          f"E = l2/sum ({elapsed:.0f} s for {len(runs)} runs); E(0)/E(lambda) under each definition of E, and the "
          "accuracy change, mean [95% interval] over seeds")
    header = "  ".join(f"{'E(0)/E as ' + k:>24}" for k in KINDS)
    print(f"  {'lambda':>7}  {header}  {'accuracy change (pp)':>26}  zeros")
    seeds_ = range(seeds)
    for lam in LAMBDAS[1:]:
        cells = []
        for k in KINDS:
            r = e_ratio([runs[lam, s][1][k] for s in seeds_], [runs[0.0, s][1][k] for s in seeds_])
            cells.append(f"{r.fmt(',.1f', 'x'):>24}" if r is not None else f"{'n/a':>24}")
        acc = accuracy_change([runs[lam, s][0].test_accuracy * 100 for s in seeds_],
                              [runs[0.0, s][0].test_accuracy * 100 for s in seeds_])
        zeros = sum(runs[lam, s][0].activation_sparsity for s in seeds_) / seeds * 100
        print(f"  {lam:>7g}  {'  '.join(cells)}  {acc.fmt('+.2f'):>26}  {zeros:.1f}%")
    top = LAMBDAS[-1]
    subject = {"model": model, "dataset": dataset_name, "activation_energy_kind": "l2/sum", "lambda": top}
    for k in KINDS:
        ratio = e_ratio([runs[top, s][1][k] for s in seeds_], [runs[0.0, s][1][k] for s in seeds_])
        if ratio is not None:
            print("  " + claims.e_reduction({**subject, "measured_as": f"{k}/sum"}, ratio).sentence)
    acc = accuracy_change([runs[top, s][0].test_accuracy * 100 for s in seeds_],
                          [runs[0.0, s][0].test_accuracy * 100 for s in seeds_])
    print("  " + claims.accuracy(subject, acc).sentence)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--model", default="mlp")
    parser.add_argument("--datasets", default="digits,mnist-5k")
    args = parser.parse_args()
    for name in args.datasets.split(","):
        table(name, args.seeds, args.epochs, args.model)
    return 0


if __name__ == "__main__":
    sys.exit(main())
