"""Training blocked against drift: a group's networks trained round-robin, one epoch each per round.

Every network of one group (model x dataset x E definition x seed, every lambda) advances by one epoch per round,
in a fresh balanced order per round (the Williams squares of the inference rounds), each epoch in a window of its
own. A drift of the machine during the group's training therefore falls on every lambda alike, and the energy of
epoch k of one lambda is paired with epoch k of lambda 0, measured in the same round. A network's training window is
its chunks' windows added up; its cumulative window to epoch k is its first k chunks. Training itself is unchanged:
each network keeps its own optimiser, batch order and seed, so a chunked network's parameters are the ones the
one-after-another order gives (bit for bit on CPU; the subject models use no global randomness once built).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

from energymeter.measurement import Measurement

from ..records.rounds import CHUNKED, InferenceRound, RoundsRecord, RoundWindow
from .rounds import balanced_orders, hash_seed


def concatenate(windows: Sequence[Measurement], name: str) -> Measurement:
    """Windows one after another as one: joules per domain and seconds added, FLOPs added where every window
    counted them; a domain failed in any window is failed in the sum (with that window's reason)."""
    failed: dict[str, str] = {}
    for m in windows:
        failed.update(m.failed)
    domains = set(windows[0].energy_j) if windows else set()
    for m in windows[1:]:
        domains &= set(m.energy_j)
    domains -= set(failed)
    flops = None if not windows or any(m.flops is None for m in windows) else sum(m.flops for m in windows)
    uncounted: dict[str, int] = {}
    for m in windows:
        for op, count in m.uncounted_ops.items():
            uncounted[op] = uncounted.get(op, 0) + count
    warnings = tuple(dict.fromkeys(w for m in windows for w in m.warnings))
    declared = {d: v for m in windows for d, v in m.domains.items()}
    return Measurement(name, sum(m.duration_s for m in windows), {d: sum(m.energy_j[d] for m in windows)
                                                                  for d in sorted(domains)},
                       flops=flops, uncounted_ops=uncounted, failed=failed, warnings=warnings,
                       start_time_s=windows[0].start_time_s if windows else 0.0,
                       domains={d: declared[d] for d in (*sorted(domains), *failed) if d in declared})


@dataclass(frozen=True)
class ChunkedTraining:
    """One network's training, chunk by chunk.

    Attributes:
        result: Its ``TrainResult`` (the measurement is its chunks added up; each epoch's the cumulative sum).
        chunks: Each epoch's own window.
    """

    result: Any
    chunks: tuple[Measurement, ...]


def train_chunked(models: Mapping[float, Any], data: Any, meter: Any, group: Sequence[Any], *, epochs: int,
                  batch_size: int, lr: float, device: str, order_seed: int,
                  keep_epoch_states: bool = True) -> tuple[dict[float, ChunkedTraining], RoundsRecord]:
    """Train a group's networks (lambda -> built model) one epoch each per round, in balanced orders.

    Args:
        models: lambda -> the built (untrained) model.
        data: The dataset.
        meter: An open Meter (each chunk is one window, FLOPs counted where the meter counts them).
        group: (model name, dataset name, E definition as ``"<kind>/<reduction>"``, seed).
        epochs, batch_size, lr, device: As ``energymeter.models.train``.
        order_seed: The sweep's order seed (the rounds' orders are drawn from it and the group).

    Returns:
        Each network's training, and the chunks as a ``RoundsRecord`` (design ``chunked-training``; one
        "workload" is one epoch over ``len(data.x_train)`` samples).
    """
    from energymeter.models import finish, train_epochs

    model_name, dataset, kind_name, seed = group
    kind = kind_name.split("/")[0]
    lambdas = sorted(models)
    steps = {lam: train_epochs(models[lam], data, lam=lam, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                               device=device, activation_energy=kind, keep_epoch_states=keep_epoch_states)
             for lam in lambdas}
    seed_of_orders = hash_seed(order_seed, "train", model_name, dataset, kind_name, seed)
    chunks: dict[float, list[Measurement]] = {lam: [] for lam in lambdas}
    history: dict[float, list[Any]] = {lam: [] for lam in lambdas}
    states: dict[float, list[Any]] = {lam: [] for lam in lambdas}
    rounds: list[InferenceRound] = []
    provenance: dict[str, str] = {}
    try:
        for index, order in enumerate(balanced_orders(len(lambdas), epochs, seed_of_orders)):
            windows = []
            for position in order:
                lam = lambdas[position]
                name = f"train-chunk-{id(models[lam])}-{time.monotonic_ns()}"
                meter.begin_window(name, model=models[lam])
                try:
                    stats, state = next(steps[lam])
                finally:
                    m = meter.end_window(name)
                chunks[lam].append(m)
                provenance.update(m.provenance)
                history[lam].append(replace(stats, measurement=concatenate(chunks[lam], "train")))
                if state is not None:
                    states[lam].append(state)
                windows.append(RoundWindow(lam, dict(m.energy_j), m.duration_s, 1))
            rounds.append(InferenceRound(index, tuple(windows)))
    finally:
        for gen in steps.values():
            gen.close()
    out = {}
    for lam in lambdas:
        measurement = concatenate(chunks[lam], "train")
        result = finish(models[lam], data, history[lam], history[lam][-1].duration_s, lam, seed, measurement,
                        states[lam], device=device, activation_energy=kind)
        out[lam] = ChunkedTraining(result, tuple(chunks[lam]))
    record = RoundsRecord(model_name, dataset, kind_name, seed, tuple(lambdas), len(data.x_train), provenance,
                          tuple(rounds), order_seed=seed_of_orders, max_rounds=epochs,
                          stop_reason=f"every network trained {epochs} epochs", design=CHUNKED)
    return out, record
