"""Window cost per backend, against an empty ``with`` block and codecarbon's start/stop; FLOP-cache overhead.

Every figure is a ratio (or a per-window cost) measured in this run; nothing is asserted.
Targets (issue 2): < 50 us per window over a two-zone powercap tree; >= 1000x cheaper than
codecarbon's OfflineEmissionsTracker start/stop; cached FLOP counting adds < 1% to a training step
of a 784-256-10 MLP at batch 128.
"""

from __future__ import annotations

import contextlib
import logging
import statistics
import sys
import tempfile
import time

import torch

from energymeter import Meter
from energymeter.testing import FakeGpu, FakeNVML, FakePowercap


def per_call_s(fn, repeats: int = 7, number: int = 2000) -> float:
    """Median over ``repeats`` of the mean time of ``number`` calls (seconds)."""
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - start) / number)
    return statistics.median(samples)


def window_cost(meter: Meter) -> float:
    def one() -> None:
        meter.begin_window("w")
        meter.end_window("w")
    return per_call_s(one)


def empty_with_cost() -> float:
    def one() -> None:
        with contextlib.nullcontext():
            pass
    return per_call_s(one, number=20000)


def codecarbon_costs(tmp: str) -> tuple[float, float] | None:
    """Seconds for a fresh OfflineEmissionsTracker's start + stop: the process's first, and the median of later ones.

    The first pays codecarbon's hardware detection; later trackers in the same process reuse it. A
    stopped tracker does nothing when restarted, so each sample builds a new one.
    """
    try:
        from codecarbon import OfflineEmissionsTracker
    except ImportError:
        return None
    logging.disable(logging.CRITICAL)

    def one() -> float:
        start = time.perf_counter()
        tracker = OfflineEmissionsTracker(country_iso_code="FRA", save_to_file=False, output_dir=tmp,
                                          log_level="critical", measure_power_secs=1)
        tracker.start()
        tracker.stop()
        return time.perf_counter() - start
    try:
        first = one()
        return first, statistics.median(one() for _ in range(5))
    finally:
        logging.disable(logging.NOTSET)


def flop_overhead() -> tuple[float, float, list[float], float]:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    x, y = torch.randn(128, 784), torch.randint(0, 10, (128,))

    def step() -> None:
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()

    meter = Meter(["flops"])
    first_start = time.perf_counter()
    meter.begin_window("first", model=net)
    step()
    meter.end_window("first")
    first_s = time.perf_counter() - first_start

    def measured_step() -> None:
        meter.begin_window("s", model=net)
        step()
        meter.end_window("s")

    def empty_window() -> None:
        meter.begin_window("e", model=net)
        meter.end_window("e")

    window_s = per_call_s(empty_window, number=500)
    # Paired blocks: each measured block is compared with the plain block just before it, so drift on
    # a shared machine hits both alike; the median of the paired ratios is reported with its quartiles.
    plain, ratios = [], []
    for _ in range(41):
        p = per_call_s(step, repeats=1, number=20)
        m = per_call_s(measured_step, repeats=1, number=20)
        plain.append(p)
        ratios.append(m / p)
    ratios.sort()
    measured = [ratios[10], ratios[20], ratios[30]]
    return first_s, statistics.median(plain), measured, window_s


def main() -> int:
    tmp = tempfile.mkdtemp(prefix="energymeter-bench-")
    tree = FakePowercap(f"{tmp}/powercap")
    tree.add_package(0, dram=True)
    empty_s = empty_with_cost()
    rows = [("empty with-block", empty_s)]
    for label, meter in (
        ("rapl, two-zone powercap tree", Meter(["rapl"], powercap_root=tree.root, sync=False)),
        ("nvml, fake GPU with energy counter", Meter(["nvml"], nvml_module=FakeNVML([FakeGpu()]), sync=False)),
        ("cpu-model", Meter(["cpu-model"], sync=False)),
        ("rapl + cpu-model + nvml", Meter(["rapl", "cpu-model", "nvml"], powercap_root=tree.root,
                                          nvml_module=FakeNVML([FakeGpu()]), sync=False)),
    ):
        rows.append((label, window_cost(meter)))
        meter.close()
    print("Window cost (begin + end), median of 7 x 2000:")
    for label, seconds in rows:
        print(f"  {label:<38} {seconds * 1e6:9.2f} us   {seconds / empty_s:9.1f}x an empty with-block")
    rapl_s = rows[1][1]
    print(f"  target: rapl window < 50 us -> {'met' if rapl_s < 50e-6 else 'NOT met'} ({rapl_s * 1e6:.1f} us)")
    carbon = codecarbon_costs(tmp)
    if carbon is None:
        print("codecarbon not installed: comparison skipped (pip install 'energymeter[carbon]')")
    else:
        for label, carbon_s in (("first tracker in the process", carbon[0]), ("later trackers (median of 5)", carbon[1])):
            ratio = carbon_s / rapl_s
            print(f"codecarbon OfflineEmissionsTracker start+stop, {label}: {carbon_s * 1e3:,.1f} ms = "
                  f"{ratio:,.0f}x the rapl window (target >= 1000x: {'met' if ratio >= 1000 else 'NOT met'})")
    first_s, plain_s, quartiles, window_s = flop_overhead()
    q1, median, q3 = ((r - 1) * 100 for r in quartiles)
    print(f"FLOP counting, 784-256-10 MLP train step, batch 128 (plain step median {plain_s * 1e3:.3f} ms):")
    print(f"  first (counted) window: {first_s * 1e3:.2f} ms = {first_s / plain_s:.1f}x a plain step")
    print(f"  cached window, 41 paired blocks of 20 steps: median {median:+.2f}% [quartiles {q1:+.2f}%, {q3:+.2f}%] "
          f"(target < 1%: {'met' if median < 1 else 'NOT met'})")
    print(f"  cached window's own begin+end (model hooks idle): {window_s * 1e6:.1f} us = "
          f"{window_s / plain_s * 100:.2f}% of a plain step")
    return 0


if __name__ == "__main__":
    sys.exit(main())
