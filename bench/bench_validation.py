"""Wall time of the default `energymeter validate` sweep, of `--preset paper --quick`, and optionally the
paper-sized sweep (mnist-5k, 5 lambdas x 10 seeds). Each runs into a temporary directory removed afterwards;
the claims with their verdicts are printed. Targets: the default sweep within 3 minutes, `--preset paper
--quick` within 10 minutes, on a 2-core machine.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from energymeter.validation.run.config import SweepConfig, preset
from energymeter.validation.report.report import load
from energymeter.validation.run.sweep import run_sweep


def timed(config: SweepConfig, label: str, claims: int = 4) -> float:
    out = Path(tempfile.mkdtemp(prefix="energymeter-bench-"))
    try:
        start = time.perf_counter()
        run_sweep(config, out / "r", quiet=True)
        wall = time.perf_counter() - start
        analysis = load(out / "r")
        runs = len(config.runs())
        print(f"{label}: {runs} runs in {wall:.0f} s ({wall / runs:.1f} s per run)")
        for claim in analysis.claims[:claims]:
            print(f"  [{claim.verdict}] {claim.sentence}")
        for claim in analysis.claims:
            if claim.kind == "architecture_anova":
                print(f"  [{claim.verdict}] {claim.sentence}")
        return wall
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paper-sized", action="store_true", help="also the mnist-5k 5 lambdas x 10 seeds sweep")
    parser.add_argument("--skip-default", action="store_true", help="skip the default sweep")
    args = parser.parse_args()
    if not args.skip_default:
        default_s = timed(SweepConfig(), "default sweep (digits, mlp, 5 lambdas x 3 seeds, 10 epochs)")
        print(f"  target: within 180 s -> {'met' if default_s <= 180 else 'NOT met'}")
    paper_s = timed(SweepConfig(**preset("paper", quick=True)), "--preset paper --quick (3 models x digits, mnist-5k)")
    print(f"  target: within 600 s -> {'met' if paper_s <= 600 else 'NOT met'}")
    if args.paper_sized:
        timed(SweepConfig(datasets=("mnist-5k",), seeds=10), "paper-sized sweep (mnist-5k, mlp, 5 lambdas x 10 seeds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
