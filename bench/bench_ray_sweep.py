"""Wall time of the default `energymeter validate` sweep in-process and as Ray tasks, in one run.

Both sweeps run the same settings into temporary directories removed afterwards, one after the other
(in-process first). The Ray sweep starts its own local instance (loopback only, `--num-cpus` CPUs,
every core by default) and its wall time includes that start, which is also printed on its own.
Both sweeps must finish with the same runs, each once; the bench says so or fails.

The two differ in more than the executor: in-process, one run at a time uses torch's default threads
(one per core); under Ray each run is a 1-CPU task, so Ray sets OMP_NUM_THREADS=1 and runs go side by
side, one per CPU. ``--in-process-threads 1`` matches the in-process sweep's torch threads to a task's.

Where an installed ``amdsmi`` package cannot load ROCm's libamd_smi.so (``make bench`` installs zeus,
which brings it), ``import ray`` fails in the driver and in every worker; the bench then puts a stand-in
``amdsmi`` that raises ImportError first on the path (in its temporary directory) and says so.

Run: ``.venv/bin/python bench/bench_ray_sweep.py [--quick] [--num-cpus N] [--in-process-threads N]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from energymeter.validation.records import store
from energymeter.validation.run.config import SweepConfig, SweepError, preset
from energymeter.validation.run.ray_executor import RayExecutor
from energymeter.validation.run.sweep import LocalExecutor, run_sweep


class TimedRayExecutor(RayExecutor):
    """RayExecutor that notes how long connecting to (or starting) Ray took (s)."""

    start_s = 0.0

    def _start(self) -> tuple[Any, bool]:
        began = time.perf_counter()
        try:
            return super()._start()
        finally:
            self.start_s = time.perf_counter() - began


def route_around_broken_amdsmi(work: Path) -> str | None:
    """Make ``import ray`` work despite an amdsmi that raises at import; a note saying so, or None."""
    import contextlib
    import importlib.util
    import io

    if importlib.util.find_spec("amdsmi") is None:
        return None
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # amdsmi prints its failure before raising
            import amdsmi  # noqa: F401
        return None
    except ImportError:
        return None
    except Exception as exc:  # noqa: BLE001 - the breakage this works around, named in the note
        reason = f"{type(exc).__name__}: {exc}"
    stub = work / "stub"
    stub.mkdir()
    (stub / "amdsmi.py").write_text('raise ImportError("left out by bench_ray_sweep: it fails to import")\n')
    os.environ["PYTHONPATH"] = os.pathsep.join([str(stub)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    sys.modules["amdsmi"] = None  # type: ignore[assignment]
    return (f"note: the installed amdsmi fails to import ({reason}), which breaks `import ray`; Ray runs with a "
            "stand-in amdsmi that raises ImportError (so Ray finds no AMD GPU)")


def timed(config: SweepConfig, executor: Any, out: Path) -> tuple[float, list[str]]:
    """Wall time of one sweep (s) and the keys it wrote."""
    start = time.perf_counter()
    run_sweep(config, out, quiet=True, executor=executor)
    wall_s = time.perf_counter() - start
    records, problems = store.read_records(out)
    if problems:
        raise SystemExit(f"bench_ray_sweep: unreadable results in {out}: {problems}")
    return wall_s, [r.key for r in records]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the default preset's --quick sweep")
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray instance (default: all)")
    parser.add_argument("--in-process-threads", type=int, default=None,
                        help="torch threads of the in-process sweep (default: torch's own, one per core)")
    args = parser.parse_args()
    config = SweepConfig(**preset("default", quick=args.quick))
    runs = len(config.runs())
    label = "default --quick" if args.quick else "default"
    print(f"{label} sweep: {'/'.join(config.models)} on {'/'.join(config.datasets)}, {len(config.lambdas)} lambdas x "
          f"{config.seeds} seeds = {runs} runs, {config.epochs} epochs")
    work = Path(tempfile.mkdtemp(prefix="energymeter-bench-ray-"))
    try:
        note = route_around_broken_amdsmi(work)
        if note:
            print(f"  {note}")
        import torch

        default_threads = torch.get_num_threads()
        torch.set_num_threads(args.in_process_threads or default_threads)
        try:
            local_s, local_keys = timed(config, LocalExecutor(), work / "local")
            threads = torch.get_num_threads()
        finally:
            torch.set_num_threads(default_threads)
        print(f"  in-process:  {local_s:7.1f} s ({local_s / runs:.1f} s per run; one run at a time, "
              f"{threads} torch thread(s))")
        executor = TimedRayExecutor(num_cpus=args.num_cpus)
        try:
            ray_s, ray_keys = timed(config, executor, work / "ray")
        except SweepError as exc:
            print(f"bench_ray_sweep: {exc}", file=sys.stderr)
            return 2
        print(f"  Ray:         {ray_s:7.1f} s ({ray_s / runs:.1f} s per run; up to {args.num_cpus or os.cpu_count()} "
              f"runs at a time, 1 torch thread each; starting the local instance {executor.start_s:.1f} s of it)")
        print(f"  Ray / in-process: {ray_s / local_s:.2f}x wall time "
              f"({(ray_s - executor.start_s) / local_s:.2f}x without the instance start)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    grid = sorted(run.key for run in config.runs())
    same = sorted(local_keys) == sorted(ray_keys) == grid
    print(f"  same runs, each once: {'yes' if same else 'NO'} ({len(ray_keys)} records)")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
