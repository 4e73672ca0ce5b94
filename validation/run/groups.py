"""A sweep's runs group by group, each group's networks measured together so the machine's drift cancels.

A group is model x dataset x E definition x seed, every lambda. With the chunked training design its networks are
trained round-robin, one epoch each per round (``chunks``); otherwise one after another. With the interleaved
inference design their inference is then measured in interleaved rounds (``rounds``); otherwise each network's
inference window follows its training at once. A group's records are yielded once all its networks are measured:
its run records first, then its rounds records, so a rounds record is only ever written for networks whose runs
are all recorded (a group interrupted among its run records is measured again, for the runs it lacks, on
``--resume``; read_rounds keeps the latest rounds record of a group).
"""

from __future__ import annotations

from typing import Any, Iterator

from ..records.record import RunRecord
from ..records.rounds import RoundsRecord
from ..records.spec import RunSpec
from .config import SweepConfig, group_of
from .machine_load import LoadSampler

#: A per-run inference window's cross-check note where the rounds replace it.
NO_PEERS = {"interleaved": "peers not run: the interleaved design measures many short windows"}


def run_groups(config: SweepConfig, pending: list[tuple[int, RunSpec]], reference_reps: int, meter: Any,
               load_dataset: Any) -> Iterator[RunRecord | RoundsRecord]:
    """Measure the pending runs group by group (see the module's docstring); ``load_dataset(name)`` -> data."""
    groups: dict[tuple[str, str, str, int], list[tuple[int, RunSpec]]] = {}
    for index, run in pending:
        groups.setdefault(group_of(run), []).append((index, run))
    for group, runs in groups.items():
        yield from _group(config, runs, reference_reps, meter, load_dataset(group[1]))


def _group(config: SweepConfig, runs: list[tuple[int, RunSpec]], reference_reps: int, meter: Any,
           data: Any) -> Iterator[RunRecord | RoundsRecord]:
    from .protocol import after_training, finish_run, idle_power_w, inference_window, prepare_run, train_run
    from .rounds import measure_rounds, pooled_window

    interleaved = config.inference_design == "interleaved"
    first = runs[0][1]
    group = (first.model, data.name, first.activation_energy_kind, first.seed)
    records: list[RoundsRecord] = []
    if config.training_design == "chunked":
        from .chunks import train_chunked

        prepared = {run.lam: prepare_run(config, run, data, meter, reference_reps, index) for index, run in runs}
        with LoadSampler() as load:
            trained_chunks, chunk_record = train_chunked(
                {lam: p.model for lam, p in prepared.items()}, data, meter, group, epochs=config.epochs,
                batch_size=config.batch_size, lr=config.lr, device=config.device, order_seed=config.order_seed)
        records.append(chunk_record)
        trained, cross = {}, {}
        for lam, p in prepared.items():
            window = None
            if not interleaved:
                window, cross[lam] = inference_window(p.model.to(config.device), data.x_test[:config.inference_samples],
                                                      meter, config.min_window_s, config.device, p.idle_before_w,
                                                      config.country)
            trained[lam] = (p, window)
        idle_after = idle_power_w(meter, config.idle_s)
        done = {lam: after_training(config, p, data, trained_chunks[lam].result, load.result, idle_after, window,
                                    cross.get(lam, {})) for lam, (p, window) in trained.items()}
    else:
        done = {run.lam: train_run(config, run, data, meter, reference_reps, index, inference=not interleaved)
                for index, run in runs}
    if interleaved:
        rounds = measure_rounds({lam: t.model for lam, t in done.items()}, data.x_test[:config.inference_samples],
                                meter, config, group)
        records.append(rounds)
    for lam, t in done.items():
        if interleaved:
            yield finish_run(t, pooled_window(records[-1], lam), NO_PEERS)
        else:
            yield finish_run(t, t.fields["inference"], t.fields["cross_checks"])
    yield from records
