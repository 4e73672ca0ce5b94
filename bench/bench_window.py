"""What a window costs, as ratios measured in this run (issue 9): interleaved A/B rounds, median and quartiles.

Rows, all on one fake two-socket powercap tree (4 zones: two packages, each with DRAM):

* the pread limit: the 8 ``pread`` calls a window needs at least (4 counters, read at both edges);
* a reused ``Meter(["rapl"])`` window (begin + end), against the limit (target <= 2x, issue 16);
* where that cost goes: the window's two fast reads (``RaplSession.read_fast``: lock, clock, parse and
  bounds checks), the careful read (``RaplSession.read``) for comparison, and the meter's own share
  (the same window with its reads answered by a stored reading);
* ``with measure(["rapl"]): ...`` built each time, against a reused window (target <= 2x);
* Zeus's ``ZeusMonitor`` window and codecarbon's RAPL reader (start + delta), where installed, against ours.

Every variant runs ``NUMBER`` calls per round; rounds alternate the order of the variants, and each
ratio is taken within a round, so drift on a shared machine hits both sides alike. A target is judged on
a distribution-free 95% interval of the median ratio: met, NOT met, or inconclusive where the interval
straddles it. Nothing is asserted.
Run: ``.venv/bin/python bench/bench_window.py`` (``make bench`` installs zeus and codecarbon first).
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import statistics
import sys
import tempfile
import time
from typing import Callable

from energymeter import Meter, measure
from energymeter.testing import FakePowercap

ROUNDS = int(os.environ.get("BENCH_WINDOW_ROUNDS", "101"))  # not BENCH_ROUNDS: bench_callbacks reads 0 there
NUMBER = 200


#: The clock every bench here reads: CPU seconds of the calling thread. On a shared machine, wall time
#: also counts the time other processes held the core; this clock does not, so A/B pairs stay comparable.
#: Work a variant hands to other threads or processes is not in it (none of ours does per window).
CLOCK = time.thread_time
CLOCK_NAME = "CPU time of the calling thread (time.thread_time)"


def per_call_s(fn: Callable[[], object], number: int) -> float:
    """Mean seconds per call over ``number`` calls, on ``CLOCK``."""
    start = CLOCK()
    for _ in range(number):
        fn()
    return (CLOCK() - start) / number


def interleaved(variants: dict[str, Callable[[], object]], rounds: int = ROUNDS,
                number: int = NUMBER) -> dict[str, list[float]]:
    """Per-call seconds of each variant in each round; the order of the variants alternates by round."""
    names = list(variants)
    for name in names:  # warm up
        per_call_s(variants[name], max(1, number // 10))
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            times[name].append(per_call_s(variants[name], number))
    return times


def quartiles(values: list[float]) -> tuple[float, float, float]:
    """(first quartile, median, third quartile)."""
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], statistics.median(values), q[2]


def median_ci(values: list[float], confidence: float = 0.95) -> tuple[float, float]:
    """A distribution-free confidence interval for the median: two order statistics of ``values``.

    The interval [x_(j), x_(n+1-j)] (sorted, 1-based) covers the median with probability
    1 - 2 P(Binomial(n, 1/2) < j); j is the largest rank that keeps that at least ``confidence``.
    With too few values for any such j, the interval is the whole range (the verdict is then inconclusive).
    """
    xs = sorted(values)
    n = len(xs)
    alpha = 1.0 - confidence
    tail, j = 0.0, 0
    while j < n // 2:
        tail += math.comb(n, j) / 2 ** n  # P(Binomial(n, 1/2) <= j)
        if 2 * tail > alpha:
            break
        j += 1
    if j == 0:
        return xs[0], xs[-1]
    return xs[j - 1], xs[n - j]


def verdict_at_most(values: list[float], target: float) -> str:
    """"met" when the median's 95% interval lies at or below ``target``, "NOT met" when above, else "inconclusive"."""
    low, high = median_ci(values)
    if high <= target:
        return "met"
    if low > target:
        return "NOT met"
    return "inconclusive"


def percent_over(times: dict[str, list[float]], a: str, b: str) -> list[float]:
    """``a``'s extra time over ``b``, round by round, in percent of ``b``."""
    return [(x / y - 1) * 100 for x, y in zip(times[a], times[b])]


def ratio_line(label: str, times: dict[str, list[float]], a: str, b: str, target: float | None = None) -> str:
    """``a`` over ``b``, round by round: median [quartiles], with the medians in microseconds."""
    ratios = [x / y for x, y in zip(times[a], times[b])]
    q1, med, q3 = quartiles(ratios)
    text = (f"  {label:<52} {med:8.2f}x [{q1:.2f}, {q3:.2f}]   ({statistics.median(times[a]) * 1e6:9.1f} us / "
            f"{statistics.median(times[b]) * 1e6:7.1f} us)")
    if target is not None:
        low, high = median_ci(ratios)
        text += f"   median 95% CI [{low:.2f}, {high:.2f}]; target <= {target:g}x: {verdict_at_most(ratios, target)}"
    return text


def two_socket_tree(root: str) -> tuple[FakePowercap, list[str]]:
    tree = FakePowercap(root)
    tree.add_package(0, dram=True)
    tree.add_package(1, dram=True)
    zones = ["intel-rapl:0", "intel-rapl:0:0", "intel-rapl:1", "intel-rapl:1:0"]
    return tree, [os.path.join(tree.root, z, "energy_uj") for z in zones]


def zeus_window(root: str) -> Callable[[], object] | str:
    """Zeus's begin/end window over the same tree (its RAPL directory pointed at it), or why not."""
    try:
        import zeus.device.cpu.rapl as zeus_rapl
        from zeus.monitor import ZeusMonitor
    except ImportError:
        return "zeus not installed (pip install zeus)"
    zeus_rapl.RAPL_DIR = root
    logging.disable(logging.CRITICAL)
    monitor = ZeusMonitor(cpu_indices=[0, 1], gpu_indices=[], approx_instant_energy=False)

    def window() -> object:
        monitor.begin_window("w", sync_execution=False)
        return monitor.end_window("w", sync_execution=False)
    return window


def codecarbon_window(root: str) -> Callable[[], object] | str:
    """codecarbon's RAPL reader over the same tree: ``start()`` then ``get_cpu_details()``, or why not."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # codecarbon prints about absent AMD libraries
            from codecarbon.core.cpu import IntelRAPL
            from codecarbon.core.units import Time
    except ImportError:
        return "codecarbon not installed (pip install codecarbon)"
    logging.disable(logging.CRITICAL)
    rapl = IntelRAPL(rapl_dir=root, rapl_include_dram=True)
    duration = Time.from_seconds(0.001)

    def window() -> object:
        rapl.start()
        return rapl.get_cpu_details(duration)
    return window


def main() -> int:
    tmp = tempfile.mkdtemp(prefix="energymeter-bench-")
    tree, paths = two_socket_tree(f"{tmp}/powercap")
    fds = [os.open(p, os.O_RDONLY) for p in paths]

    def pread_limit() -> None:
        for _ in range(2):
            for fd in fds:
                os.pread(fd, 32, 0)

    meter = Meter(["rapl"], powercap_root=tree.root)

    def reused_window() -> None:
        meter.begin_window("w")
        meter.end_window("w")

    session = meter._energy[0]

    def two_fast_reads() -> None:
        session.read_fast()
        session.read_fast()

    def two_careful_reads() -> None:
        session.read()
        session.read()

    # The meter's own share: a second meter whose one session answers with a stored fast reading.
    bare = Meter(["rapl"], powercap_root=tree.root)
    stored = bare._energy[0].read_fast()
    bare._read_locked = lambda: stored

    def meter_only() -> None:
        bare.begin_window("w")
        bare.end_window("w")

    def measure_each_time() -> None:
        with measure(["rapl"], powercap_root=tree.root):
            pass

    variants: dict[str, Callable[[], object]] = {"pread": pread_limit, "window": reused_window,
                                                 "measure": measure_each_time, "fast": two_fast_reads,
                                                 "careful": two_careful_reads, "meter": meter_only}
    notes = []
    for name, make in (("zeus", zeus_window), ("codecarbon", codecarbon_window)):
        peer = make(str(tree.root))
        if isinstance(peer, str):
            notes.append(f"  {name}: {peer}")
        else:
            variants[name] = peer
    times = interleaved(variants)
    print(f"Window cost on a fake two-socket powercap tree (4 zones), {ROUNDS} interleaved rounds of {NUMBER} calls, "
          f"clock: {CLOCK_NAME};")
    print("ratio within each round: median [quartiles] (median per-call times):")
    print(ratio_line("reused Meter(['rapl']) window / the 8-pread limit", times, "window", "pread", 2))
    print("  where it goes:")
    print(ratio_line("  2 x read_fast() (the window's reads) / limit", times, "fast", "pread"))
    print(ratio_line("  2 x read() (the careful path) / limit", times, "careful", "pread"))
    print(ratio_line("  the meter's share (stored reads) / limit", times, "meter", "pread"))
    print(ratio_line("with measure(['rapl']) built each time / reused window", times, "measure", "window", 2))
    for name in ("zeus", "codecarbon"):
        if name in times:
            print(ratio_line(f"{name} window / reused Meter(['rapl']) window", times, name, "window"))
    for note in notes:
        print(note)
    for fd in fds:
        os.close(fd)
    meter.close()
    bare.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
