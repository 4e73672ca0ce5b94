"""A default-sized sweep on a fake powercap tree whose power steps down 30% part-way, whatever the model does.

The truth: energy does not depend on E or lambda at all (the tree's power is set by this script), so every
"tracks" or "saves" verdict is false. The same sweep (mlp on digits, lambda 0 and 1e-2, 3 seeds) runs twice: one run
after another (``--inference-design per-run --training-design sequential``, the old default) with the step halfway
through its runs, and with the grouped designs (chunked training, interleaved inference rounds: the default) with
the step at the same second. Printed: each design's verdicts on the package's figures, and the width of each
inference and training interval (energy change over seeds, percentage points).

Run: ``.venv/bin/python bench/bench_design_drift.py [--seeds 3] [--epochs 3] [--out DIR]``
"""

from __future__ import annotations

import argparse
import math
import tempfile
import threading
import time
from pathlib import Path

from energymeter import Meter
from energymeter.testing import FakePowercap
from energymeter.validation.analysis.analysis import analyse
from energymeter.validation.records import store
from energymeter.validation.run.config import SweepConfig
from energymeter.validation.run.sweep import LocalExecutor, run_sweep

ZONE = "intel-rapl:0"
HIGH_W, LOW_W = 60.0, 42.0


def one_sweep(out: Path, design: dict, seeds: int, epochs: int, step_at_s: float | None) -> tuple[float, float, int]:
    """Run the sweep on a fresh tree; the step at ``step_at_s`` (None: after half the runs). Returns (the
    second the step fell at, the sweep's seconds, records written before the step)."""
    tree = FakePowercap(out / "powercap")
    tree.add_package(0)
    tree.draw(ZONE, HIGH_W)
    config = SweepConfig(models=("mlp",), datasets=("digits",), lambdas=(0.0, 1e-2), seeds=seeds, epochs=epochs,
                         idle_s=0.05, reference_s=0.05, snn_samples=0, backends=("rapl",), **design)
    written, stepped = [], []
    start = time.monotonic()

    def step() -> None:
        if not stepped:
            tree.draw(ZONE, LOW_W)
            stepped.append((time.monotonic() - start, len(written)))

    def on_record(record) -> None:
        written.append(record.key)
        if step_at_s is None and len(written) == seeds:  # half of the 2 x seeds runs
            step()

    timer = threading.Timer(step_at_s, step) if step_at_s is not None else None
    with tree.running():
        meter = Meter(["rapl"], powercap_root=str(tree.root))
        if timer is not None:
            timer.start()
        try:
            run_sweep(config, out / "sweep", quiet=True, executor=LocalExecutor(meter), on_record=on_record,
                      characterise_s=0.0)
        finally:
            if timer is not None:
                timer.cancel()
            meter.close()
    at_s, before = stepped[0] if stepped else (float("nan"), len(written))
    return at_s, time.monotonic() - start, before


def report(out: Path) -> None:
    records, _ = store.read_records(out / "sweep")
    rounds, _ = store.read_rounds(out / "sweep")
    a = analyse(records, rounds=rounds)
    print(f"  inference design: {a.inference_design}; training design: {a.training_design}")
    for c in sorted(a.claims, key=lambda c: (c.kind, c.figure)):
        if c.kind in ("energy_tracking", "energy_saving") and "cpu:0:package" in c.figure:
            width = "n/a" if c.low is None or c.high is None else f"{c.high - c.low:.3g}"
            estimate = "n/a" if c.estimate is None else f"{c.estimate:+.4g}"
            print(f"  {c.kind:16s} {c.figure:45s} {c.verdict:15s} estimate {estimate} interval width {width}")
    for label, comparisons in (("inference paired by round", a.inference_rounds),
                               ("training paired by chunk", a.training_rounds)):
        for p in comparisons:
            if p.domain == "cpu:0:package":
                iv = p.across_seeds
                width = "n/a" if iv.low is None else f"{(math.exp(iv.high) - math.exp(iv.low)) * 100:.2f} pp"
                se = "n/a" if p.measurement_se is None else f"{p.measurement_se:.4f}"
                sd = "n/a" if p.seed_sd is None else f"{p.seed_sd:.4f}"
                print(f"  {label}: ratio {p.ratio:.4f}, 95% interval width {width} over {len(p.seeds)} seeds "
                      f"(measurement SE {se}, seed SD {sd}; log units)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    base = args.out or Path(tempfile.mkdtemp(prefix="bench-design-drift-"))
    sequential = dict(inference_design="per-run", training_design="sequential")
    at_s, seconds, before = one_sweep(base / "sequential", sequential, args.seeds, args.epochs, None)
    print(f"one run after another: power {HIGH_W:g} W -> {LOW_W:g} W at {at_s:.1f} s of {seconds:.1f} s "
          f"(after {before} of {2 * args.seeds} runs)")
    report(base / "sequential")
    grouped = dict(inference_design="interleaved", training_design="chunked")
    at2, seconds2, before2 = one_sweep(base / "grouped", grouped, args.seeds, args.epochs, at_s)
    print(f"grouped (chunked training, interleaved rounds): the step at {at2:.1f} s of {seconds2:.1f} s "
          f"(after {before2} of {2 * args.seeds} runs written)")
    report(base / "grouped")
    print(f"records under {base}")


if __name__ == "__main__":
    main()
