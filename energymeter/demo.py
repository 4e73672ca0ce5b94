"""``energymeter demo``: measure real training steps of a small MLP on scikit-learn's bundled digits."""

from __future__ import annotations

import argparse
from typing import Any

from .cliargs import positive_int
from .display import format_measurement, format_statuses


#: Steps run before the window: torch's first steps allocate, pick kernels and fill caches, which drew
#: about 10x a warm step's joules in the window they landed in (98.4 J against 8.7-12.95 J on one host).
WARMUP_STEPS = 5


def run_demo(steps: int = 50, batch_size: int = 128, seed: int = 0, warmup_steps: int = WARMUP_STEPS) -> str:
    """Train ``steps`` steps on digits inside one window (after ``warmup_steps`` outside it); return the report.

    Args:
        steps: Training steps in the measured window.
        batch_size: Samples per step.
        seed: Seed for weights and batch order.
        warmup_steps: Steps trained before the window opens, so it measures warm steps only.
    """
    import torch
    from sklearn.datasets import load_digits

    from . import backends
    from .meter import Meter

    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target, dtype=torch.long)
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(seed)
    def step() -> Any:
        idx = torch.randint(0, len(x), (batch_size,), generator=generator)
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(x[idx]), y[idx])
        loss.backward()
        opt.step()
        return loss

    meter = Meter()
    try:
        for _ in range(warmup_steps):  # outside the window: the first steps' one-off costs are not a step's
            step()
        meter.begin_window("train", model=net)
        for _ in range(steps):
            loss = step()
        result = meter.end_window("train")
    finally:
        meter.close()
    return "\n".join([format_statuses(backends.available()), "",
                      f"{steps} training steps of a 64-128-10 MLP on digits (batch {batch_size}; {warmup_steps} "
                      f"warm-up steps before the window), final loss {loss.item():.3f}:", format_measurement(result)])


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``demo``."""
    parser.add_argument("--steps", type=positive_int, default=50, help="training steps in the window (default 50)")
    parser.set_defaults(func=lambda args: print(run_demo(steps=args.steps)) or 0)
