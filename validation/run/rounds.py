"""Interleaved inference rounds: every trained network of one group measured once per round, in balanced orders.

The orders come from Williams squares (each network once in every position per block of n rounds; for even n
each network directly follows every other once; for odd n over two blocks), their labels freshly permuted by a
seeded generator at every square, so position in a round and the network before it fall on every lambda alike.
Rounds stop at the end of a block once every comparison's 95% interval of the mean log ratio is narrower than
``rounds_target_width``, or once ``rounds_budget_s`` is spent, or at ``rounds_max``. Each window runs the same fixed
batch until it held at least ``round_min_workloads`` repetitions and lasted ``round_min_window_s``; the Meter
synchronises CUDA at both window edges (``sync=True``), so queued GPU work lands in its own window.
"""

from __future__ import annotations

import random
import time
from typing import Any, Mapping, Sequence

from ..analysis.rounds import compared_domains, interval_width, round_log_ratios
from ..records.rounds import InferenceRound, RoundsRecord, RoundWindow
from .config import SweepConfig


def williams_rows(n: int) -> list[list[int]]:
    """A Williams design for ``n`` treatments: n rows (even n) or 2n (odd n), each a permutation of 0..n-1."""
    if n == 1:
        return [[0]]
    base, low, high = [0], 1, n - 1
    while len(base) < n:
        base.append(low)
        low += 1
        if len(base) < n:
            base.append(high)
            high -= 1
    rows = [[(b + r) % n for b in base] for r in range(n)]
    return rows + [row[::-1] for row in rows] if n % 2 else rows


def balanced_orders(n: int, rounds: int, seed: int) -> list[tuple[int, ...]]:
    """``rounds`` orders of 0..n-1: Williams squares one after another, each with its labels and rows shuffled
    by ``random.Random(seed)`` (so the orders are fresh per square, and the same seed gives the same orders)."""
    rng = random.Random(seed)
    out: list[tuple[int, ...]] = []
    while len(out) < rounds:
        labels = list(range(n))
        rng.shuffle(labels)
        rows = williams_rows(n)
        blocks = [rows[:n], rows[n:]] if len(rows) > n else [rows]
        for block in blocks:
            rng.shuffle(block)
            out.extend(tuple(labels[i] for i in row) for row in block)
    return out[:rounds]


def _window(model: Any, x: Any, meter: Any, config: SweepConfig, device: str,
            lam: float) -> tuple[RoundWindow, Any]:
    import torch

    meter.begin_window("inference-round")
    reps, start = 0, time.perf_counter()
    try:
        with torch.no_grad():
            while reps < config.round_min_workloads or time.perf_counter() - start < config.round_min_window_s:
                model(x)
                reps += 1
                if device.startswith("cuda"):
                    torch.cuda.synchronize(device)
    finally:
        m = meter.end_window("inference-round")
    return RoundWindow(lam, dict(m.energy_j), m.duration_s, reps), m


def stop_reason(record: RoundsRecord, config: SweepConfig, spent_s: float) -> str | None:
    """Why the rounds stop now (None: go on). Checked at a block's end only."""
    done = len(record.rounds)
    if done >= config.rounds_max:
        return f"stopped at the most rounds ({config.rounds_max})"
    if spent_s >= config.rounds_budget_s:
        return f"stopped at the time budget ({config.rounds_budget_s:g} s) after {done} rounds"
    if done < config.rounds_min:
        return None
    widths = [interval_width(round_log_ratios(record, lam, d)) for lam in record.lambdas if lam > 0
              for d in compared_domains(record)]
    if widths and max(widths) < config.rounds_target_width:
        return (f"every comparison's interval narrower than {config.rounds_target_width:g} (log units) after "
                f"{done} rounds")
    return None


def measure_rounds(networks: Mapping[float, Any], x: Any, meter: Any, config: SweepConfig,
                   group: Sequence[Any]) -> RoundsRecord:
    """Measure every network of one group (lambda -> trained model) in interleaved rounds.

    Args:
        networks: lambda -> the trained model (on ``config.device``).
        x: The fixed batch (every window runs it).
        meter: An open Meter.
        config: The sweep's settings (window minima, stopping rule, order seed).
        group: (model, dataset, E definition, seed).
    """
    model_name, dataset, kind, seed = group
    lambdas = sorted(networks)
    x = x.to(config.device)
    for model in networks.values():
        model.eval()
        with _no_grad():
            model(x)  # warm-up outside every window
    order_seed = hash_seed(config.order_seed, model_name, dataset, kind, seed)
    block = len(williams_rows(len(lambdas)))
    done: list[InferenceRound] = []
    provenance: dict[str, str] = {}
    start, reason = time.perf_counter(), None
    while reason is None:
        for order in balanced_orders(len(lambdas), len(done) + block, order_seed)[len(done):]:
            windows = []
            for index in order:
                window, m = _window(networks[lambdas[index]], x, meter, config, config.device, lambdas[index])
                windows.append(window)
                provenance.update(m.provenance)
            done.append(InferenceRound(len(done), tuple(windows)))
        # At a block's end only (2n rounds for an odd n): a stop inside a block would unbalance the orders.
        reason = stop_reason(_record(group, lambdas, len(x), provenance, done, config, order_seed, ""), config,
                             time.perf_counter() - start)
    for model in networks.values():
        model.train()
    return _record(group, lambdas, len(x), provenance, done, config, order_seed, reason)


def _record(group: Sequence[Any], lambdas: list[float], samples: int, provenance: dict[str, str],
            done: list[InferenceRound], config: SweepConfig, order_seed: int, reason: str) -> RoundsRecord:
    model_name, dataset, kind, seed = group
    return RoundsRecord(model_name, dataset, kind, seed, tuple(lambdas), samples, dict(provenance), tuple(done),
                        config.round_min_window_s, config.round_min_workloads, order_seed, config.rounds_target_width,
                        config.rounds_budget_s, config.rounds_max, reason)


def hash_seed(*parts: Any) -> int:
    """A stable seed from the sweep's order seed and the group (Python's ``hash`` of a str is salted)."""
    import hashlib

    return int(hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:12], 16)


def _no_grad() -> Any:
    import torch

    return torch.no_grad()


def pooled_window(record: RoundsRecord, lam: float) -> Any:
    """One network's windows over every round as one ``WindowRecord`` (joules, seconds and workloads summed),
    for its run record; only the domains measured in every window."""
    from energymeter.measurement import Measurement

    from ..records.record import WindowRecord

    windows = [w for r in record.rounds for w in r.windows if w.lam == lam]
    domains = compared_domains(record)
    m = Measurement("inference", sum(w.duration_s for w in windows),
                    {d: sum(w.energy_j[d] for w in windows) for d in domains},
                    provenance={d: record.provenance[d] for d in domains},
                    warnings=(f"pooled over {len(windows)} interleaved round windows",))
    return WindowRecord(m, {}, sum(w.workloads for w in windows), record.samples_per_workload)
