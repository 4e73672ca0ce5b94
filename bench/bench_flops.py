"""What cached FLOP counting adds to a training step (issue 9): ``measure(["flops"], model=net)`` vs a plain step.

A 784-256-10 MLP, batch 128, SGD, one thread. After the first window (whose FLOPs are counted on a
shadow pass after it ends), every window with the same calls reuses the count: what remains is the
recording forward on the module, one post-accumulate-grad hook per trainable parameter (4 here), and the
window itself.
Variants run in interleaved rounds; the overhead is a ratio within each round, median [quartiles].
Target: < 1%. Run: ``.venv/bin/python bench/bench_flops.py``.
"""

from __future__ import annotations

import statistics
import sys
import time

import torch

from bench_window import CLOCK_NAME, interleaved, median_ci, percent_over, quartiles, verdict_at_most
from energymeter import Meter, measure

ROUNDS = 201
NUMBER = 5


def main() -> int:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    nets = [torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
            for _ in range(3)]
    opts = [torch.optim.SGD(n.parameters(), lr=0.01) for n in nets]
    x, y = torch.randn(128, 784), torch.randint(0, 10, (128,))

    def step(i: int) -> None:
        opts[i].zero_grad()
        torch.nn.functional.cross_entropy(nets[i](x), y).backward()
        opts[i].step()

    reused = measure(["flops"], model=nets[1])
    start = time.perf_counter()
    with reused:
        step(1)
    first_s = time.perf_counter() - start
    flops = reused.result.flops

    def plain() -> None:
        step(0)

    def measured_reused() -> None:
        with reused:
            step(1)

    def measured_each_time() -> None:
        with measure(["flops"], model=nets[2]):
            step(2)

    measured_each_time()  # its first (shadow-counted) window

    class _Slot:
        __slots__ = ("a", "b")

    def busy_python() -> None:
        """Pure Python work of about a hot window's cost, touching nothing of torch: the control."""
        [_Slot() for _ in range(60)]
        {i: i for i in range(20)}

    def control() -> None:
        busy_python()
        step(0)

    def window_alone() -> None:
        with reused:
            pass
    # The same window around a step of a module of the same structure with one-weight layers (the same
    # hooks: one pre-hook, 4 trainable parameters): what the window and its active hooks cost by
    # themselves, free of the big step's noise, as a share of the big plain step.
    tiny = torch.nn.Sequential(torch.nn.Linear(1, 1), torch.nn.ReLU(), torch.nn.Linear(1, 1))
    tiny_x = torch.randn(1, 1)
    tiny_m = measure(["flops"], model=tiny)

    def tiny_step() -> None:
        tiny.zero_grad()
        tiny(tiny_x).sum().backward()

    def tiny_measured() -> None:
        with tiny_m:
            tiny_step()

    # Where the direct cost goes: the same small step with the session's hooks installed but no window
    # open; with a bare FlopSession window (no meter); with a named Meter window.
    def small() -> torch.nn.Module:
        return torch.nn.Sequential(torch.nn.Linear(1, 1), torch.nn.ReLU(), torch.nn.Linear(1, 1))

    idle, bare, named = small(), small(), small()
    with measure(["flops"], model=idle):  # installs the hooks; no window is open on it afterwards
        idle(tiny_x).sum().backward()
    meter = Meter(["flops"])
    session = meter._counter  # the meter's FlopSession: its windows without the meter's own work

    def small_step(net: torch.nn.Module) -> None:
        net.zero_grad()
        net(tiny_x).sum().backward()

    def bare_window() -> None:
        w = session.begin(bare)
        small_step(bare)
        session.end(w)

    def named_window() -> None:
        meter.begin_window("step", model=named)
        small_step(named)
        meter.end_window("step")

    # The cached window's direct cost, free of backward's noise: a forward of one-weight layers, whose
    # count is cached after the first window (one pre-hook fires; no backward hooks run).
    fwd_net, fwd_plain_net = small(), small()
    fwd_m = measure(["flops"], model=fwd_net)

    def fwd_plain() -> None:
        fwd_plain_net(tiny_x)

    def fwd_measured() -> None:
        with fwd_m:
            fwd_net(tiny_x)

    fwd_measured()  # the first window: counted on a shadow pass after it; later ones reuse the count
    tiny_measured()
    bare_window()
    named_window()
    tiny_times = interleaved({"plain": tiny_step, "measured": tiny_measured, "idle": lambda: small_step(idle),
                              "bare": bare_window, "named": named_window}, rounds=ROUNDS, number=200)
    meter.close()
    times = interleaved({"plain": plain, "reused": measured_reused, "each": measured_each_time, "control": control},
                        rounds=ROUNDS, number=NUMBER)
    hot = interleaved({"window": window_alone, "busy": busy_python}, rounds=ROUNDS, number=200)
    fwd = interleaved({"plain": fwd_plain, "measured": fwd_measured}, rounds=ROUNDS, number=500)
    plain_s = statistics.median(times["plain"])
    print(f"Cached FLOP counting, 784-256-10 MLP train step, batch 128, 1 thread (plain step {plain_s * 1e3:.3f} ms, "
          f"{flops:,} FLOPs), {ROUNDS} interleaved rounds of {NUMBER} steps, clock: {CLOCK_NAME}:")
    print(f"  first window (shadow pass after the window, wall time): {first_s * 1e3:.2f} ms")
    for name, label in (("reused", "with m: step()  (one measure object)"),
                        ("each", "with measure(['flops'], model=net): step()")):
        overhead = percent_over(times, name, "plain")
        q1, med, q3 = quartiles(overhead)
        low, high = median_ci(overhead)
        print(f"  {label:<46} {med:+6.2f}% [{q1:+.2f}%, {q3:+.2f}%], median 95% CI [{low:+.2f}%, {high:+.2f}%]   "
              f"target < 1%: {verdict_at_most(overhead, 1.0)}")
    q1, med, q3 = quartiles(percent_over(times, "control", "plain"))
    print(f"  control: {statistics.median(hot['busy']) * 1e6:.1f} us of pure Python (a hot empty window: "
          f"{statistics.median(hot['window']) * 1e6:.1f} us) before each step: {med:+6.2f}% [{q1:+.2f}%, {q3:+.2f}%]")
    direct = [m - p for m, p in zip(tiny_times["measured"], tiny_times["plain"])]
    q1, med, q3 = quartiles(direct)
    print(f"  the window and its active hooks by themselves (around a step of one-weight layers, 200 calls per round): "
          f"{med * 1e6:.1f} us [{q1 * 1e6:.1f}, {q3 * 1e6:.1f}] = {med / plain_s * 100:.2f}% of the plain step")
    cached = [(m - p) * 1e6 for m, p in zip(fwd["measured"], fwd["plain"])]
    q1, med, q3 = quartiles(cached)
    low, high = median_ci(cached)
    print(f"  a cached measure(['flops'], model=net) window, direct cost (around a forward of one-weight layers, "
          f"500 calls per round): {med:.2f} us [{q1:.2f}, {q3:.2f}], median 95% CI [{low:.2f}, {high:.2f}]   "
          f"target <= 5 us: {verdict_at_most(cached, 5.0)}")
    for name, label in (("idle", "recorder installed, no window open (forward + 4 backward marks)"),
                        ("bare", "a FlopSession window alone (hooks active, no meter)"),
                        ("named", "a Meter(['flops']) named window"),
                        ("measured", "with m: (measure object)")):
        q1, med, q3 = quartiles([m - p for m, p in zip(tiny_times[name], tiny_times["plain"])])
        print(f"    {label:<64} {med * 1e6:5.1f} us [{q1 * 1e6:.1f}, {q3 * 1e6:.1f}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
