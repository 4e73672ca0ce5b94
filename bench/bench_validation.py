"""Wall time of the default `energymeter validate` sweep and of the paper-sized one (mnist-5k, 5 lambdas x 10 seeds).

Both run in this process into temporary directories that are removed afterwards; the claims table of
the default sweep is printed. Target (issue 5): the default sweep within 3 minutes on a 2-core machine.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from energymeter.validation.report import load
from energymeter.validation.sweep import SweepConfig, run_sweep


def timed(config: SweepConfig, label: str) -> float:
    out = Path(tempfile.mkdtemp(prefix="energymeter-bench-"))
    try:
        start = time.perf_counter()
        run_sweep(config, out / "r", quiet=True)
        wall = time.perf_counter() - start
        analysis, _ = load(out / "r")
        print(f"{label}: {len(config.runs())} runs in {wall:.0f} s ({wall / len(config.runs()):.1f} s per run)")
        for claim in analysis.claims[:2]:
            print(f"  {claim}")
        return wall
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-paper", action="store_true", help="only the default sweep")
    args = parser.parse_args()
    default_s = timed(SweepConfig(), "default sweep (digits, mlp, 5 lambdas x 3 seeds, 10 epochs)")
    print(f"  target: within 180 s -> {'met' if default_s <= 180 else 'NOT met'}")
    if not args.skip_paper:
        paper_s = timed(SweepConfig(datasets=("mnist-5k",), seeds=10),
                        "paper-sized sweep (mnist-5k, mlp, 5 lambdas x 10 seeds, 10 epochs)")
        print(f"  paper-sized / default = {paper_s / default_s:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
