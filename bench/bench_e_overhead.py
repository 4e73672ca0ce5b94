"""What computing E costs in a training step, against an unhooked twin and against E written inline (issue 9).

A 784-256-256-10 MLP, batch 128, one thread, loss = cross-entropy + 0.01 * E (l2, reduction "sum"), Adam:

* ``plain``: the same step without E (the twin);
* ``inline``: E written into the forward by hand (``h.pow(2).sum()`` per hidden layer): the floor;
* ``hooked``: ``ActivationEnergy(model)``, as ``energymeter.models.training`` uses it.

Variants run in interleaved rounds (the order alternates); each overhead is a ratio within a round, over
``plain``, reported as median [quartiles]. Target: ``hooked`` within 2 points of ``inline``.
Run: ``.venv/bin/python bench/bench_e_overhead.py``.
"""

from __future__ import annotations

import statistics
import sys

import torch
from torch import nn

from bench_window import CLOCK_NAME, interleaved, median_ci, percent_over, quartiles, verdict_at_most
from energymeter.models import ActivationEnergy

ROUNDS = 201
NUMBER = 3
BATCH = 128
LAM = 0.01


class InlineMlp(nn.Module):
    """784-256-256-10 whose forward also returns E (sum of squared hidden activations over the batch)."""

    def __init__(self) -> None:
        super().__init__()
        self.l1, self.l2, self.l3 = nn.Linear(784, 256), nn.Linear(256, 256), nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h1 = torch.relu(self.l1(x))
        h2 = torch.relu(self.l2(h1))
        return self.l3(h2), h1.pow(2).sum() + h2.pow(2).sum()


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))


def main() -> int:
    torch.set_num_threads(1)
    x, y = torch.randn(BATCH, 784), torch.randint(0, 10, (BATCH,))
    plain_net, hooked_net, inline_net = mlp(), mlp(), InlineMlp()
    opts = {name: torch.optim.Adam(net.parameters(), lr=1e-4)
            for name, net in (("plain", plain_net), ("hooked", hooked_net), ("inline", inline_net))}
    act = ActivationEnergy(hooked_net)

    def plain() -> None:
        opts["plain"].zero_grad(set_to_none=True)
        nn.functional.cross_entropy(plain_net(x), y).backward()
        opts["plain"].step()

    def hooked() -> None:
        opts["hooked"].zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(hooked_net(x), y) + LAM * act.value
        loss.backward()
        opts["hooked"].step()

    def inline() -> None:
        opts["inline"].zero_grad(set_to_none=True)
        logits, e_sum = inline_net(x)
        loss = nn.functional.cross_entropy(logits, y) + LAM * (e_sum * (1.0 / BATCH))
        loss.backward()
        opts["inline"].step()

    times = interleaved({"plain": plain, "inline": inline, "hooked": hooked}, rounds=ROUNDS, number=NUMBER)
    plain_s = statistics.median(times["plain"])
    print(f"E in a 784-256-256-10 training step, batch {BATCH}, 1 thread (plain step {plain_s * 1e3:.3f} ms), "
          f"{ROUNDS} interleaved rounds of {NUMBER} steps, clock: {CLOCK_NAME}; overhead over the unhooked twin, median [quartiles]:")
    overhead = {}
    for name, label in (("inline", "E inline in the forward (the floor)"), ("hooked", "ActivationEnergy hooks")):
        ratios = percent_over(times, name, "plain")
        q1, med, q3 = quartiles(ratios)
        overhead[name] = ratios
        print(f"  {label:<40} {med:+6.2f}% [{q1:+.2f}%, {q3:+.2f}%]")
    gaps = [h - i for h, i in zip(overhead["hooked"], overhead["inline"])]
    q1, med, q3 = quartiles(gaps)
    low, high = median_ci(gaps)
    print(f"  hooks minus floor, per round: {med:+.2f} points [{q1:+.2f}, {q3:+.2f}], median 95% CI "
          f"[{low:+.2f}, {high:+.2f}]   target within 2 points: {verdict_at_most(gaps, 2.0)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
