"""The observer effect in joules (issue 13): what a window reads when the meter's own work would show as energy.

A fake powercap tree whose package counter a background thread advances at 100 J per CPU second of
this process: any CPU work inside a window, the training step's or the meter's, is joules. Around
15 training steps of a 784-256-256-10 MLP (batch 256, SGD, one thread), each round measures, in
alternating order:

* ``rapl``: ``measure(["rapl"])``, the reference;
* ``default``: ``measure()`` (the default selection: rapl and the FLOP counter, which counts nothing
  without ``model=`` rather than counting inside the window);
* ``first``: ``measure(["rapl", "flops"], model=net)`` on a fresh module, so the window is its first,
  uncached one (its shadow pass runs after the closing reading);
* ``cached``: the same on a module whose counts are cached (only the recording forward and the backward marks
  run inside the window).

Printed: each variant's joules over the ``rapl`` reference of the same round, median [quartiles], and the
joules a shadow pass would have added had it run inside the window (its CPU time x 100 W). Nothing is
asserted: the exact, timing-free checks are ``tests/test_meter_integrity.py``.
Run: ``.venv/bin/python bench/bench_observer.py``.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import threading
import time

import torch

from bench_window import quartiles
from energymeter import measure
from energymeter.shared import close_shared_meters
from energymeter.testing import FakePowercap

POWER_W = 100.0
ROUNDS = 15
STEPS = 15


class CpuPoweredTree:
    """A fake package counter that follows this process's CPU time (``POWER_W`` per CPU second)."""

    def __init__(self, directory: str) -> None:
        self.powercap = FakePowercap(os.path.join(directory, "powercap"))
        self.powercap.add_package(0)
        self._fd = os.open(self.powercap.root / "intel-rapl:0" / "energy_uj", os.O_WRONLY)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._advance, daemon=True)

    def _advance(self) -> None:
        while not self._stop.is_set():
            # One fixed-width pwrite in place: a reader never sees a truncated file.
            os.pwrite(self._fd, f"{int(time.process_time() * POWER_W * 1e6):020d}\n".encode(), 0)
            time.sleep(0.0005)

    def __enter__(self) -> "CpuPoweredTree":
        self._switch = sys.getswitchinterval()
        sys.setswitchinterval(0.0005)  # the writer gets the GIL back within half a millisecond
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        os.close(self._fd)
        sys.setswitchinterval(self._switch)


def rig() -> tuple[torch.nn.Module, object]:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256),
                              torch.nn.ReLU(), torch.nn.Linear(256, 10))
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    x, y = torch.randn(256, 784), torch.randint(0, 10, (256,))

    def steps(n: int = STEPS) -> None:
        for _ in range(n):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
    return net, steps


def joules(m: measure, steps: object) -> float:
    with m:
        steps()
    return m.result.energy_j["cpu:0:package"]


def main() -> int:
    torch.set_num_threads(1)  # CPU time = work: no spinning of idle intra-op threads
    with tempfile.TemporaryDirectory() as directory, CpuPoweredTree(directory) as tree:
        root = tree.powercap.root
        cached_net, cached_steps = rig()
        cached_steps(3)
        joules(measure(["rapl", "flops"], powercap_root=root, model=cached_net), cached_steps)  # fills the cache
        shared_steps = rig()[1]
        shared_steps(3)
        figures: dict[str, list[float]] = {"rapl": [], "default": [], "first": [], "cached": []}
        shadow_j = []
        for r in range(ROUNDS):
            fresh_net, fresh_steps = rig()  # every round: a module no window has seen
            fresh_steps(3)
            variants = {
                "rapl": lambda: joules(measure(["rapl"], powercap_root=root), shared_steps),
                "default": lambda: joules(measure(powercap_root=root), shared_steps),
                "first": lambda: joules(measure(["rapl", "flops"], powercap_root=root, model=fresh_net), fresh_steps),
                "cached": lambda: joules(measure(["rapl", "flops"], powercap_root=root, model=cached_net),
                                         cached_steps),
            }
            names = list(variants) if r % 2 == 0 else list(variants)[::-1]
            for name in names:
                before = time.process_time()
                figures[name].append(variants[name]())
                if name == "first":
                    # CPU seconds of the whole call, minus what the window read: the shadow pass and the meter.
                    shadow_j.append((time.process_time() - before) * POWER_W - figures[name][-1])
        close_shared_meters()
    print(f"Observer effect on a fake package counter driven by this process's CPU time ({POWER_W:.0f} J per CPU "
          f"second), {STEPS} steps of a 784-256-256-10 MLP (batch 256, one thread), {ROUNDS} interleaved rounds:")
    print(f"  rapl-only window: {statistics.median(figures['rapl']):.3f} J (median)")
    for name, label in (("default", "measure() (default selection)"),
                        ("first", "first window with model= (uncached)"),
                        ("cached", "cached window with model=")):
        ratios = [(a / b - 1) * 100 for a, b in zip(figures[name], figures["rapl"])]
        q1, med, q3 = quartiles(ratios)
        print(f"  {label:<40} {med:+6.2f}% [{q1:+.2f}%, {q3:+.2f}%] over rapl-only")
    q1, med, q3 = quartiles(shadow_j)
    print(f"  joules outside the first window (its shadow pass and the meter's exit), had they been inside: "
          f"{med:.3f} J [{q1:.3f}, {q3:.3f}] = {med / statistics.median(figures['rapl']) * 100:.1f}% of a window")
    return 0


if __name__ == "__main__":
    sys.exit(main())
