"""What a power timeline costs (issue 19): a window with ``timeline_period_s=`` against one without.

On one fake two-socket powercap tree (4 zones), both meters ``Meter(["rapl"])``, one with
``timeline_period_s=0.1``. Rows:

* an empty window (begin + end) with a timeline against one without: the timeline's edge samples (one read of
  every session at each edge) and its bookkeeping, paid by the thread that opens and closes the window;
* one background sample (``Recorder.sample``: a read of every session, stored), timed in this thread: the shared
  poller thread pays it once per period while a window is open, so at period ``p`` it costs ``sample / p`` of
  one core's time.

Variants run in interleaved rounds (their order alternates), each ratio taken within a round, on the CPU time of
the calling thread; median [quartiles] and a distribution-free 95% interval of the median. Nothing is asserted.
Run: ``.venv/bin/python bench/bench_timeline.py``.
"""

from __future__ import annotations

import statistics
import sys
import tempfile

from bench_window import CLOCK_NAME, interleaved, median_ci, quartiles, two_socket_tree
from energymeter import Meter

ROUNDS = 31
NUMBER = 200
PERIOD_S = 0.1


def main() -> int:
    tmp = tempfile.mkdtemp(prefix="energymeter-bench-")
    tree, _ = two_socket_tree(f"{tmp}/powercap")
    plain = Meter(["rapl"], powercap_root=tree.root)
    kept = Meter(["rapl"], powercap_root=tree.root, timeline_period_s=PERIOD_S)
    recorder = kept.timeline_recorder

    def plain_window() -> None:
        plain.begin_window("w")
        plain.end_window("w")

    def timeline_window() -> None:
        kept.begin_window("w")
        kept.end_window("w")

    def one_sample() -> None:
        recorder.sample()
        del recorder._times_s[:], recorder._readings[:]  # no window is open: nothing would keep it

    times = interleaved({"plain": plain_window, "timeline": timeline_window, "sample": one_sample}, ROUNDS, NUMBER)
    ratios = [t / p for t, p in zip(times["timeline"], times["plain"])]
    extra_us = [(t - p) * 1e6 for t, p in zip(times["timeline"], times["plain"])]
    q1, med, q3 = quartiles(ratios)
    low, high = median_ci(ratios)
    e1, emed, e3 = quartiles(extra_us)
    elow, ehigh = median_ci(extra_us)
    sample_us = statistics.median(times["sample"]) * 1e6
    slow, shigh = (v * 1e6 for v in median_ci(times["sample"]))
    print(f"{ROUNDS} interleaved rounds x {NUMBER} calls; clock: {CLOCK_NAME}; fake tree of 4 RAPL zones")
    print(f"  empty window with a timeline / without        {med:6.2f}x [{q1:.2f}, {q3:.2f}]  median 95% CI "
          f"[{low:.2f}, {high:.2f}]  ({statistics.median(times['timeline']) * 1e6:.1f} us / "
          f"{statistics.median(times['plain']) * 1e6:.1f} us)")
    print(f"  extra per window                              {emed:6.1f} us [{e1:.1f}, {e3:.1f}]  median 95% CI "
          f"[{elow:.1f}, {ehigh:.1f}] us")
    print(f"  one background sample                         {sample_us:6.1f} us  median 95% CI [{slow:.1f}, "
          f"{shigh:.1f}] us: at a {PERIOD_S:g} s period, {sample_us / PERIOD_S / 1e4:.4f}% of one core while a "
          "window is open")
    plain.close()
    kept.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
