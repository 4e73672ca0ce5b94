"""``energymeter validate`` (run the lambda sweep, then write every report) and ``energymeter report DIR``."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from energymeter.cliargs import EXIT_INTERRUPTED, UsageError, positive_int

DEFAULT_OUT = "energymeter-report"


def _lambdas(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"malformed lambda list {text!r}: give numbers separated by commas, "
                                         "e.g. 0,1e-5,1e-4") from None
    if any(not math.isfinite(v) or v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"malformed lambda list {text!r}: every lambda must be a finite number >= 0")
    return values


def _names(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise argparse.ArgumentTypeError("empty list")
    return names


def configure_validate(v: argparse.ArgumentParser) -> None:
    """Arguments of ``validate``."""
    v.add_argument("--device", default="cpu", help="cpu or cuda:N (default cpu)")
    v.add_argument("--models", type=_names, default=("mlp",), help="comma-separated (default mlp)")
    v.add_argument("--datasets", type=_names, default=("digits",), help="comma-separated (default digits)")
    v.add_argument("--lambdas", type=_lambdas, default=None,
                   help="comma-separated (default 0,1e-5,1e-4,1e-3,1e-2)")
    v.add_argument("--seeds", type=positive_int, default=None, help="seeds per lambda (default 3)")
    v.add_argument("--epochs", type=positive_int, default=None, help="training epochs (default 10)")
    v.add_argument("--backends", type=_names, default=None, help="energy backends (default: every available one)")
    v.add_argument("--root", help="directory with IDX files for mnist / fashion-mnist")
    v.add_argument("--out", default=DEFAULT_OUT, help=f"output directory (default ./{DEFAULT_OUT})")
    v.add_argument("--resume", action="store_true", help="skip runs already in DIR/results.jsonl")
    v.add_argument("--quick", action="store_true",
                   help="a small sweep for smoke tests (lambdas 0,1e-2, 2 seeds, 2 epochs, short windows); "
                        "explicit flags still win")
    v.add_argument("--country", help="also convert joules to CO2e with codecarbon's offline data for this ISO "
                                     "3166-1 alpha-3 country (modeled)")
    v.add_argument("--min-window-s", type=float, default=1.0, help="shortest inference window (s, default 1)")
    v.add_argument("--quiet", action="store_true", help="no progress bar")
    v.set_defaults(func=_validate)



def configure_report(r: argparse.ArgumentParser) -> None:
    """Arguments of ``report``."""
    r.add_argument("dir", help="a directory written by `energymeter validate`")
    r.add_argument("--format", action="append", choices=["html", "md", "csv", "json"],
                   help="format(s) to write (default: all four)")
    r.set_defaults(func=_report)


def _validate(args: argparse.Namespace) -> int:
    from .carbon import CarbonError, intensity_g_per_kwh
    from .report import write_reports
    from .sweep import SweepConfig, SweepError, run_sweep

    if args.country:
        try:
            intensity_g_per_kwh(args.country)
        except CarbonError as exc:
            raise UsageError(f"energymeter validate: {exc}") from exc
    if not args.min_window_s > 0:
        raise UsageError("energymeter validate: --min-window-s must be positive")
    quick = args.quick
    settings: dict[str, Any] = dict(
        models=args.models, datasets=args.datasets, device=args.device, backends=args.backends, root=args.root,
        country=args.country,
        lambdas=args.lambdas or ((0.0, 1e-2) if quick else (0.0, 1e-5, 1e-4, 1e-3, 1e-2)),
        seeds=args.seeds or (2 if quick else 3), epochs=args.epochs or (2 if quick else 10),
        min_window_s=min(args.min_window_s, 0.2) if quick else args.min_window_s)
    if quick:
        settings.update(snn_samples=50, snn_timesteps=20, inference_samples=64)
    config = SweepConfig(**settings)
    out = Path(args.out)
    try:
        outcome = run_sweep(config, out, resume=args.resume, quiet=args.quiet)
    except SweepError as exc:
        raise UsageError(f"energymeter validate: {exc}") from exc
    if outcome.ran + outcome.skipped:
        paths = write_reports(out, country=args.country)
        print(f"{outcome.ran} run(s) finished, {outcome.skipped} already done; reports: "
              f"{', '.join(str(p) for p in paths)}", file=sys.stderr)
    if outcome.interrupted:
        print("energymeter validate: interrupted; every finished run is kept (continue with --resume)", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


def _report(args: argparse.Namespace) -> int:
    from .report import ReportError, write_reports

    directory = Path(args.dir)
    if not directory.is_dir():
        raise UsageError(f"energymeter report: no such directory: {directory}")
    try:
        paths = write_reports(directory, tuple(args.format or ("html", "md", "csv", "json")))
    except ReportError as exc:
        raise UsageError(f"energymeter report: {exc}") from exc
    for path in paths:
        print(path)
    return 0
