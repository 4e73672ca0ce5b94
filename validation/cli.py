"""``energymeter validate`` (run the lambda sweep, write every report, print the claims) and ``energymeter report``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from energymeter.cliargs import EXIT_INTERRUPTED, UsageError, nonempty_path, nonnegative, positive, positive_int

DEFAULT_OUT = "energymeter-report"


def _lambdas(text: str) -> tuple[float, ...]:
    """``--lambdas``: parsed here, judged by the sweep's own rule (``run.config.check_lambdas``)."""
    from .run.config import SweepError, check_lambdas

    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"malformed lambda list {text!r}: give numbers separated by commas, "
                                         "e.g. 0,1e-5,1e-4") from None
    try:
        return check_lambdas(values)
    except SweepError as exc:
        raise argparse.ArgumentTypeError(f"lambda list {text!r}: {exc}") from None


def _sesoi(text: str) -> float:
    """``--sesoi``: the smallest energy change of interest, in percent (0 < it < 100), as a fraction."""
    value = positive(text)
    if not value < 100:
        raise argparse.ArgumentTypeError(f"must be a percentage below 100: {text!r}")
    return value / 100


def _names(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise argparse.ArgumentTypeError("empty list")
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"{text!r} repeats a name")
    return names


def configure_validate(v: argparse.ArgumentParser) -> None:
    """Arguments of ``validate`` (choices read from the sweep's own tables)."""
    from .run.config import (ACTIVATION_ENERGY_KINDS, DEFAULT_LAMBDAS, EXECUTORS, INFERENCE_DESIGNS, PRESETS,
                              TRAINING_DESIGNS)

    v.add_argument("--preset", default=PRESETS[0], choices=PRESETS,
                   help="default: mlp on digits; paper: mlp, cnn, kwta-mlp on every available dataset (the paper's "
                        "architecture x dataset claim)")
    v.add_argument("--quick", action="store_true",
                   help="a small version of the preset for smoke tests; explicit flags still win")
    v.add_argument("--device", default="cpu", help="cpu or cuda:N (default cpu)")
    v.add_argument("--models", type=_names, help="comma-separated (default from the preset)")
    v.add_argument("--datasets", type=_names, help="comma-separated (default from the preset)")
    v.add_argument("--lambdas", type=_lambdas,
                   help=f"comma-separated (default {','.join(f'{v:g}' for v in DEFAULT_LAMBDAS)})")
    v.add_argument("--activation-energy", type=_names, dest="activation_energies",
                   help=f"E definitions to run as a factor, from {','.join(ACTIVATION_ENERGY_KINDS)} (default l2)")
    v.add_argument("--seeds", type=positive_int, help="seeds per lambda (default 3)")
    v.add_argument("--epochs", type=positive_int, help="training epochs (default 10)")
    v.add_argument("--backends", type=_names, default=None, help="energy backends (default: every available one)")
    v.add_argument("--root", help="directory with IDX files for mnist / fashion-mnist, or a scikit-learn data home "
                   "holding 20newsgroups (default: scikit-learn's own)")
    v.add_argument("--download", action="store_true",
                   help="fetch missing mnist / fashion-mnist / 20newsgroups files (network)")
    v.add_argument("--out", type=nonempty_path, default=DEFAULT_OUT, help=f"output directory (default ./{DEFAULT_OUT})")
    v.add_argument("--resume", action="store_true", help="continue a sweep in DIR (its sweep.json must match)")
    v.add_argument("--allow-backend-change", action="store_true",
                   help="with --resume: continue although this machine finds other energy backends than the sweep "
                        "began with (recorded in sweep.json; the report says which runs used which)")
    v.add_argument("--country", help="also convert joules to CO2e with codecarbon's offline data for this ISO "
                                     "3166-1 alpha-3 country (modeled)")
    v.add_argument("--min-window-s", type=positive, help="shortest inference window (s, default 1)")
    v.add_argument("--idle-s", type=nonnegative, help="idle-baseline window before and after each run (s, default 0.5)")
    v.add_argument("--reference-s", type=nonnegative, help="reference workload before each run (s, default 0.2; 0: none)")
    v.add_argument("--order-seed", type=int, help="seed of the random run order (default 0)")
    v.add_argument("--inference-design", choices=INFERENCE_DESIGNS, default=None,
                   help="interleaved (default: a group's trained networks measured in balanced rounds, paired by "
                        "round) or per-run (one window after each run's training; unprotected against drift; "
                        "the default with --executor ray)")
    v.add_argument("--training-design", choices=TRAINING_DESIGNS, default=None,
                   help="chunked (default: a group's networks trained round-robin, an epoch each per round, in "
                        "balanced orders, paired by round) or sequential (one run after another; unprotected "
                        "against drift; the default with --executor ray)")
    v.add_argument("--rounds-target-width", type=nonnegative,
                   help="stop the rounds once every comparison's 95%% interval of the mean log ratio is narrower "
                        "(log units, default 0.05)")
    v.add_argument("--rounds-budget-s", type=nonnegative, help="at most this long on one group's rounds (s, default 10)")
    v.add_argument("--round-min-window-s", type=nonnegative, help="shortest round window (s, default 0.1)")
    v.add_argument("--round-min-workloads", type=positive_int, help="fewest repetitions of the batch per round "
                                                                      "window (default 5)")
    v.add_argument("--sesoi", type=_sesoi, default=None, metavar="PERCENT",
                   help="smallest energy change of interest, in percent (default 10; the paper's 5-33%% gains need 5 or less)")
    _multiplicity_flag(v)
    v.add_argument("--drift-correction", action="store_true",
                   help="divide each run's energies by its reference workload's drift factor in the reports")
    v.add_argument("--executor", choices=EXECUTORS, default=EXECUTORS[0],
                   help="run the runs in this process (local, default) or as Ray tasks (pip install 'energymeter[ray]')")
    v.add_argument("--ray-address", help="an existing Ray cluster: auto, HOST:PORT or ray://HOST:PORT (default with "
                                         "--executor ray: a local instance)")
    v.add_argument("--ray-timeout-s", type=positive, default=None,
                   help="seconds to wait for --ray-address to accept a connection (default 30)")
    v.add_argument("--quiet", action="store_true", help="no progress bar")
    v.set_defaults(func=_validate)


def configure_report(r: argparse.ArgumentParser) -> None:
    """Arguments of ``report``."""
    from .report.report import FORMATS

    r.add_argument("dir", help="a directory written by `energymeter validate`")
    r.add_argument("--format", action="append", choices=FORMATS,
                   help="format(s) to write (default: all four)")
    r.add_argument("--out", type=nonempty_path, help="write the reports here instead of DIR (e.g. a read-only sweep)")
    r.add_argument("--country", help="CO2e for this ISO 3166-1 alpha-3 country (default: the sweep's own --country)")
    r.add_argument("--drift-correction", action="store_true", help="correct energies by the reference workload")
    r.add_argument("--sesoi", type=_sesoi, default=None, metavar="PERCENT",
                   help="smallest energy change of interest, in percent (default 10)")
    _multiplicity_flag(r)
    r.set_defaults(func=_report)


def _multiplicity_flag(parser: argparse.ArgumentParser) -> None:
    from .analysis.multiplicity import METHODS

    parser.add_argument("--multiplicity", choices=METHODS, default=METHODS[0],
                        help="how each family of verdicts is controlled for its size: holm (family-wise error, "
                             "default) or bh (false discovery rate)")


def _available_datasets(root: str | None, download: bool = False) -> tuple[str, ...]:
    """The paper preset's datasets: every dataset of the models' table that loads here without the network
    (``download`` with ``root`` adds the IDX ones); a note on stderr names each one left out and why.

    Raises:
        UsageError: ``root`` is given but is not a directory.
    """
    if root and not Path(root).is_dir():
        raise UsageError(f"energymeter validate: --root {root}: no such directory (it should hold the mnist / "
                         "fashion-mnist IDX files; --download fetches them there)")
    from energymeter.models.datasets import DATASETS, available_datasets

    present = set(available_datasets(root))
    if download and root:
        present |= {"mnist", "fashion-mnist"}
    names = tuple(name for name in DATASETS if name in present)
    missing = [name for name in DATASETS if name not in present]
    if missing:
        print(f"energymeter validate: --preset paper runs on {', '.join(names)}; left out (files not found"
              f"{'' if root else ', no --root given'}): {', '.join(missing)}; --root DIR --download fetches them",
              file=sys.stderr)
    return names


def config_from(args: argparse.Namespace) -> Any:
    """The SweepConfig the flags describe (preset first, explicit flags over it)."""
    from .run.config import SweepConfig, preset, with_overrides

    settings = preset(args.preset, args.quick,
                      _available_datasets(args.root, bool(args.download)) if args.preset == "paper" else ())
    config = SweepConfig(**settings)
    return with_overrides(config, models=args.models, datasets=args.datasets, lambdas=args.lambdas,
                          activation_energies=args.activation_energies, seeds=args.seeds, epochs=args.epochs,
                          device=args.device, backends=args.backends, root=args.root, download=args.download or None,
                          country=args.country, min_window_s=args.min_window_s, idle_s=args.idle_s,
                          reference_s=args.reference_s, order_seed=args.order_seed,
                          inference_design=args.inference_design or ("per-run" if args.executor == "ray" else None),
                          training_design=args.training_design or ("sequential" if args.executor == "ray" else None),
                          rounds_target_width=args.rounds_target_width, rounds_budget_s=args.rounds_budget_s,
                          round_min_window_s=args.round_min_window_s, round_min_workloads=args.round_min_workloads)


def _check_country(country: str | None, command: str) -> None:
    from .analysis.carbon import CarbonError, intensity_g_per_kwh

    if country is not None and not country.strip():
        raise UsageError(f"energymeter {command}: --country needs an ISO 3166-1 alpha-3 code (e.g. FRA); "
                         "leave it out for no CO2e")
    if country:
        try:
            intensity_g_per_kwh(country)
        except CarbonError as exc:
            raise UsageError(f"energymeter {command}: {exc}") from exc


def print_claims(analysis: Any) -> None:
    """The claims with their verdicts, one per line, on stderr."""
    print("\nclaims:", file=sys.stderr)
    for claim in analysis.claims:
        print(f"  [{claim.verdict}] {claim.sentence}", file=sys.stderr)


def _validate(args: argparse.Namespace) -> int:
    from .run.config import SweepError
    from .report.report import ReportError, write_reports
    from .run.sweep import run_sweep

    _check_country(args.country, "validate")
    if (args.ray_address or args.ray_timeout_s) and args.executor != "ray":
        raise UsageError("energymeter validate: --ray-address and --ray-timeout-s need --executor ray")
    if args.executor == "ray" and (args.inference_design == "interleaved" or args.training_design == "chunked"):
        raise UsageError("energymeter validate: the interleaved and chunked designs run in this process only; with "
                         "--executor ray each run is one task (--inference-design per-run --training-design "
                         "sequential)")
    try:
        config = config_from(args)
        out = Path(args.out)
        executor = None
        if args.executor == "ray":
            from .run.ray_address import DEFAULT_CONNECT_TIMEOUT_S, parse_ray_address, probe
            from .run.ray_executor import RayExecutor

            if args.ray_address is not None:  # checked and reached before anything is written to --out
                probe(parse_ray_address(args.ray_address), args.ray_timeout_s or DEFAULT_CONNECT_TIMEOUT_S)
            executor = RayExecutor(address=args.ray_address, out=out)
        from .run.ray_session import end_leftovers

        left = end_leftovers(out)  # a local Ray instance that a killed driver of this sweep left running
        if left is not None:
            print(f"energymeter validate: {left}", file=sys.stderr)
        outcome = run_sweep(config, out, resume=args.resume, quiet=args.quiet, executor=executor,
                            allow_backend_change=args.allow_backend_change)
    except SweepError as exc:
        raise UsageError(f"energymeter validate: {exc}") from exc
    if outcome.ran + outcome.skipped:
        try:
            analysis, paths = write_reports(out, country=args.country, drift_correction=args.drift_correction,
                                            multiplicity=args.multiplicity,
                                            **({} if args.sesoi is None else {"sesoi": args.sesoi}))
        except ReportError as exc:
            raise UsageError(f"energymeter validate: {exc}") from exc
        for problem in analysis.problems:
            print(f"energymeter validate: {problem}", file=sys.stderr)
        print(f"{outcome.ran} run(s) finished, {outcome.skipped} already done; reports: "
              f"{', '.join(str(p) for p in paths)}", file=sys.stderr)
        print_claims(analysis)
    if outcome.interrupted:
        print("energymeter validate: interrupted; every finished run is kept (continue with --resume)", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


def _report(args: argparse.Namespace) -> int:
    from .report.report import FORMATS, ReportError, write_reports

    directory = Path(args.dir)
    if not directory.is_dir():
        if directory.exists():
            raise UsageError(f"energymeter report: {directory} is a file, not a sweep directory")
        raise UsageError(f"energymeter report: no such directory: {directory}")
    _check_country(args.country, "report")
    try:
        analysis, paths = write_reports(directory, tuple(args.format or FORMATS),
                                        out=Path(args.out) if args.out else None, country=args.country,
                                        drift_correction=args.drift_correction, multiplicity=args.multiplicity,
                                        **({} if args.sesoi is None else {"sesoi": args.sesoi}))
    except ReportError as exc:
        raise UsageError(f"energymeter report: {exc}") from exc
    for problem in analysis.problems:
        print(f"energymeter report: {problem}", file=sys.stderr)
    for path in paths:
        print(path)
    return 0
