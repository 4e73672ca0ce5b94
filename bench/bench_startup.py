"""What ``energymeter measure -- true`` costs against ``python -c pass`` (issue 9; target <= 8x).

Both are started as fresh processes with the same interpreter, in interleaved rounds (the order
alternates); the ratio is taken within each round and reported as median [quartiles], wall time.
Run: ``.venv/bin/python bench/bench_startup.py``.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

from bench_window import median_ci, quartiles, verdict_at_most

ROUNDS = 9
NUMBER = 3
BASELINE = [sys.executable, "-c", "pass"]
MEASURE = [sys.executable, "-m", "energymeter", "measure", "--", "true"]


def run_s(command: list[str]) -> float:
    """Mean wall seconds of ``NUMBER`` runs of ``command`` (its output discarded; it must succeed)."""
    start = time.perf_counter()
    for _ in range(NUMBER):
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return (time.perf_counter() - start) / NUMBER


def main() -> int:
    run_s(BASELINE), run_s(MEASURE)  # warm the page cache
    times: dict[str, list[float]] = {"baseline": [], "measure": []}
    for r in range(ROUNDS):
        for name in (("baseline", "measure") if r % 2 == 0 else ("measure", "baseline")):
            times[name].append(run_s(BASELINE if name == "baseline" else MEASURE))
    ratios = [m / b for m, b in zip(times["measure"], times["baseline"])]
    q1, med, q3 = quartiles(ratios)
    low, high = median_ci(ratios)
    print(f"Start-up, {ROUNDS} interleaved rounds of {NUMBER} runs each, wall time:")
    print(f"  energymeter measure -- true / python -c pass   {med:.2f}x [{q1:.2f}, {q3:.2f}]   "
          f"({statistics.median(times['measure']) * 1e3:.0f} ms / {statistics.median(times['baseline']) * 1e3:.0f} ms)"
          f"   median 95% CI [{low:.2f}, {high:.2f}]; target <= 8x: "
          f"{verdict_at_most(ratios, 8.0)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
