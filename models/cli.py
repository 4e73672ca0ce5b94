"""``energymeter train``: train one subject model with the energy-regularised loss and print the result."""

from __future__ import annotations

import argparse
import json

from energymeter.cliargs import UsageError, nonnegative, positive, positive_int
from energymeter.cliargs import seed as seed_type

from .datasets import DATASETS
from .zoo import MODELS


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``train``."""
    parser.add_argument("--model", default="mlp", help=f"one of {', '.join(MODELS)} (default mlp)")
    parser.add_argument("--dataset", default="digits", help=f"one of {', '.join(DATASETS)} (default digits)")
    parser.add_argument("--root", help="directory with the IDX files (mnist, fashion-mnist) or a scikit-learn data "
                        "home holding 20newsgroups")
    parser.add_argument("--download", action="store_true", help="fetch missing dataset files from the official sites")
    parser.add_argument("--lam", type=nonnegative, default=0.0, help="lambda, the weight of E (finite, >= 0; default 0)")
    parser.add_argument("--epochs", type=positive_int, default=10, help="epochs (default 10)")
    parser.add_argument("--batch-size", type=positive_int, default=128)
    parser.add_argument("--lr", type=positive, default=1e-3, help="Adam learning rate (finite, > 0; default 1e-3)")
    parser.add_argument("--seed", type=seed_type, default=0)
    parser.add_argument("--activation-energy", default="l2", choices=["l2", "l1", "l0"],
                        help="definition of E (default l2)")
    parser.add_argument("--backend", action="append", metavar="NAME",
                        help="measure training with these backends (repeatable); default: every available one")
    parser.add_argument("--no-measure", action="store_true", help="do not measure energy")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--progress", action="store_true", help="print one line per epoch")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from energymeter.display import format_measurement
    from energymeter.meter import Meter

    from .datasets import load_dataset
    from .training import train
    from .zoo import build

    if args.model not in MODELS:
        raise UsageError(f"energymeter train: unknown model {args.model!r}; known models: {', '.join(MODELS)}")
    if args.activation_energy == "l0" and args.lam > 0:
        raise UsageError("energymeter train: --activation-energy l0 has no gradient; use l1 or l2 with --lam > 0")
    dataset = load_dataset(args.dataset, root=args.root, download=args.download)
    model = build(args.model, dataset.in_shape, dataset.num_classes, seed=args.seed)
    meter = None if args.no_measure else Meter(args.backend)
    try:
        result = train(model, dataset, lam=args.lam, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                       seed=args.seed, activation_energy=args.activation_energy, meter=meter,
                       progress=args.progress and not args.json)
    finally:
        if meter is not None:
            meter.close()
    if args.json:
        print(json.dumps({"model": args.model, "dataset": args.dataset, **result.to_dict()}, indent=2))
        return 0
    print(f"{args.model} on {args.dataset}, lambda={args.lam:g}, E={result.activation_energy_kind}, seed {args.seed}, "
          f"{args.epochs} epochs in {result.duration_s:.2f} s")
    print(f"  test accuracy        {result.test_accuracy * 100:.2f}%")
    print(f"  activation energy E  {result.activation_energy:.6g} per test sample (arbitrary units)")
    print(f"  activation sparsity  {result.activation_sparsity * 100:.1f}% zeros")
    if result.measurement is not None:
        print(format_measurement(result.measurement))
    return 0
