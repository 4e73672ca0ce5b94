"""How one run is measured: its idle baseline, a reference workload, training, inference, FLOPs, Loihi.

For each (model, dataset, lambda, seed, E definition):

1. An idle window (this process sleeping) before the run, and another after it: their mean power per
   domain is the run's baseline (a single baseline for a whole sweep goes stale as the machine drifts).
2. A fixed reference workload (the same matrix products every run, its size set once per sweep) in its
   own window: its energy over the sweep shows the machine's drift (reported, and corrected for when asked).
3. Training in one window, with cumulative windows to each epoch's end; per-epoch parameters are kept and
   the per-epoch test accuracy is computed after training, outside every window.
4. FLOPs, counted in a separate meter with no energy backend, after training (never inside the joules).
5. A fixed inference workload (the same test samples for every run) repeated until its window lasts
   ``min_window_s``; peers (pyRAPL, codecarbon) read the same window where a measured domain exists.
6. The network converted to a spiking one and simulated (modeled Loihi energy, counted spikes).
The machine's load is sampled throughout.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from typing import Any, Mapping

from energymeter.measurement import Measurement

from ..records.record import EpochRecord, LoihiRecord, RunRecord, WindowRecord
from ..records.spec import RunSpec
from .config import SweepConfig
from .machine_load import LoadSampler


def idle_power_w(meter: Any, seconds: float) -> dict[str, float]:
    """Mean power per domain while this process sleeps for ``seconds`` (W); {} when ``seconds`` is 0."""
    if seconds <= 0:
        return {}
    meter.begin_window("idle")
    time.sleep(seconds)
    m = meter.end_window("idle")
    return {d: j / m.duration_s for d, j in m.energy_j.items()} if m.duration_s > 0 else {}


def mean_power_w(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Per domain, the mean of two baselines (a domain in only one keeps that one)."""
    return {d: (before[d] + after[d]) / 2 if d in before and d in after else before.get(d, after.get(d, 0.0))
            for d in {*before, *after}}


def _reference_step(device: str = "cpu", size: int = 128) -> Any:
    """The reference step on the sweep's device (a GPU sweep's reference loads its GPU: the reference of its GPU
    domains; the Meter synchronises CUDA at the window's edges)."""
    import torch

    a = torch.ones(size, size, device=device) / size
    return lambda: torch.mm(a, a)


def calibrate_reference(seconds: float, device: str = "cpu") -> int:
    """Repetitions of the reference step that take about ``seconds`` now (fixed for the rest of the sweep)."""
    if seconds <= 0:
        return 0
    step = _reference_step(device)
    step()
    reps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds / 4:
        step()
        reps += 1
    return max(4 * reps, 1)


def reference_window(meter: Any, reps: int, idle_w: dict[str, float], device: str = "cpu") -> WindowRecord | None:
    """The fixed reference workload (``reps`` matrix products on ``device``) in its own window."""
    if reps <= 0:
        return None
    step = _reference_step(device)
    meter.begin_window("reference")
    for _ in range(reps):
        step()
    m = meter.end_window("reference")
    return WindowRecord(_named(m, "reference"), idle_w, reps, 0)


def _named(m: Measurement, name: str) -> Measurement:
    import dataclasses

    return dataclasses.replace(m, name=name)


def inference_window(model: Any, x: Any, meter: Any, min_window_s: float, device: str, idle_w: dict[str, float],
                     country: str | None = None) -> tuple[WindowRecord, dict[str, Any]]:
    """The fixed inference workload repeated until the window lasts ``min_window_s``, and peers' readings."""
    import torch

    from energymeter.crosscheck.peer_meters import peers

    model.eval()
    x = x.to(device)
    with torch.no_grad():
        model(x)  # warm-up outside the window
        with peers(meter.domains, country) as cross:
            meter.begin_window("inference")
            reps = 0
            start = time.perf_counter()
            try:
                while True:
                    model(x)
                    reps += 1
                    if device.startswith("cuda"):
                        torch.cuda.synchronize(device)
                    if time.perf_counter() - start >= min_window_s:
                        break
            finally:
                m = meter.end_window("inference")
    model.train()
    return WindowRecord(m, idle_w, reps, len(x)), cross


def flops_per_sample(model: Any, x: Any, y: Any) -> tuple[float | None, float | None, dict[str, int]]:
    """(inference FLOPs per sample, training-step FLOPs per sample, uncounted operators), counted outside
    every energy window, in a meter that has only the FLOP counter. None where torch cannot count."""
    import torch

    from energymeter import BackendUnavailable, Meter

    try:
        meter = Meter(["flops"], sync=False)
    except BackendUnavailable:
        return None, None, {}
    with meter:
        with torch.no_grad():
            meter.begin_window("forward")
            model(x)
            forward = meter.end_window("forward")
        meter.begin_window("train-step")
        torch.nn.functional.cross_entropy(model(x), y).backward()
        step = meter.end_window("train-step")
    model.zero_grad(set_to_none=True)
    n = len(x)
    per = (lambda f: None if f is None else f / n)
    return per(forward.flops), per(step.flops), dict(forward.uncounted_ops)


def loihi_record(model: Any, data: Any, config: SweepConfig) -> LoihiRecord | None:
    """Convert and simulate the trained network; None when the sweep skips Loihi."""
    if config.snn_samples <= 0:
        return None
    import torch

    from energymeter.loihi import ConversionError, convert, estimate_energy, simulate

    try:
        snn = convert(model.cpu(), data.x_train[:500])
    except ConversionError as exc:
        return LoihiRecord(error=str(exc))
    x, y = data.x_test[:config.snn_samples], data.y_test[:config.snn_samples]
    sim = simulate(snn, x, config.snn_timesteps)
    per = sim.per_sample()
    model.eval()
    with torch.no_grad():
        source_accuracy = float((model(x).argmax(1) == y).float().mean())
    model.train()
    return LoihiRecord(config.snn_timesteps, sim.samples, sim.accuracy(y), source_accuracy, per["spikes"],
                       per["synops_effective"], per["synops_dense"], sim.activation_sparsity,
                       {p: estimate_energy(sim, p).per_sample_j for p in ("loihi1", "loihi1-calibrated")},
                       tuple(snn.notes))


def _history(result: Any, model: Any, data: Any, device: str, kind: str,
             train_flops: float | None) -> tuple[EpochRecord, ...]:
    """Per-epoch records; each epoch's test accuracy is evaluated from its kept parameters, after training."""
    import torch

    from energymeter.models import activation_energies, evaluate

    out = []
    current = {k: v.detach().clone() for k, v in model.state_dict().items()}
    n_train = len(data.x_train)
    for stats, state in zip(result.history, result.epoch_states or [None] * len(result.history)):
        accuracy, test_e = None, {}
        if state is not None:
            model.load_state_dict(state)
            accuracy = evaluate(model, data.x_test, data.y_test, activation_energy=kind, device=device).accuracy
            test_e = activation_energies(model, data.x_test, device=device)
        m = stats.measurement
        out.append(EpochRecord(stats.epoch, stats.loss, stats.ce, stats.activation_energy, stats.accuracy, accuracy,
                               stats.duration_s, dict(m.energy_j) if m is not None else {},
                               None if train_flops is None else train_flops * n_train * stats.epoch, test_e))
    with torch.no_grad():
        model.load_state_dict(current)
    return tuple(out)


@dataclass(frozen=True)
class TrainedRun:
    """A trained run before its inference is measured: the model, its idle baseline and its record's other fields."""

    model: Any
    idle_w: Mapping[str, float]
    fields: Mapping[str, Any]


def one_run(config: SweepConfig, run: RunSpec, data: Any, meter: Any, reference_reps: int,
            run_index: int) -> RunRecord:
    """Train and measure one (model, dataset, lambda, seed, E kind), its inference window right after training
    (the ``per-run`` design); returns its record (not yet written)."""
    trained = train_run(config, run, data, meter, reference_reps, run_index, inference=True)
    return finish_run(trained, trained.fields["inference"], trained.fields["cross_checks"])


def finish_run(trained: TrainedRun, inference: WindowRecord, cross: Mapping[str, Any]) -> RunRecord:
    """The run's record with its inference window (its idle baseline applied) and the peers' readings."""
    window = WindowRecord(inference.measurement, trained.idle_w, inference.workloads, inference.samples_per_workload)
    return RunRecord(**{**trained.fields, "inference": window, "cross_checks": dict(cross),
                        "finished_at": time.time()})


@dataclass(frozen=True)
class PreparedRun:
    """A run before its training: its idle power and reference window measured, its model built."""

    run: RunSpec
    run_index: int
    idle_before_w: Mapping[str, float]
    reference: Any
    model: Any


def prepare_run(config: SweepConfig, run: RunSpec, data: Any, meter: Any, reference_reps: int,
                run_index: int) -> PreparedRun:
    """Measure a run's idle power before it and its reference window, and build its model (seeded)."""
    from energymeter.models import build

    idle_before = idle_power_w(meter, config.idle_s)
    reference = reference_window(meter, reference_reps, idle_before, config.device)
    return PreparedRun(run, run_index, idle_before, reference,
                       build(run.model, data.in_shape, data.num_classes, seed=run.seed))


def train_run(config: SweepConfig, run: RunSpec, data: Any, meter: Any, reference_reps: int, run_index: int,
              inference: bool = False) -> TrainedRun:
    """Train one run and measure all but its inference (``inference``: its window too, right after training)."""
    from energymeter.models import train

    prepared = prepare_run(config, run, data, meter, reference_reps, run_index)
    window, cross = None, {}
    with LoadSampler() as load:
        result = train(prepared.model, data, lam=run.lam, epochs=config.epochs, batch_size=config.batch_size,
                       lr=config.lr, seed=run.seed, device=config.device, activation_energy=run.activation_energy,
                       meter=meter, per_epoch=True, keep_epoch_states=True)
        model = prepared.model.to(config.device)
        if inference:
            window, cross = inference_window(model, data.x_test[:config.inference_samples], meter,
                                             config.min_window_s, config.device, prepared.idle_before_w,
                                             config.country)
    idle_after = idle_power_w(meter, config.idle_s)
    return after_training(config, prepared, data, result, load.result, idle_after, window, cross)


def after_training(config: SweepConfig, prepared: PreparedRun, data: Any, result: Any, load: Any,
                   idle_after_w: Mapping[str, float], window: WindowRecord | None,
                   cross: Mapping[str, Any]) -> TrainedRun:
    """Everything a trained run's record holds but its inference: FLOPs, E by kind, history, Loihi (all outside
    the energy windows)."""
    run, model, device = prepared.run, prepared.model.to(config.device), config.device
    idle_w = mean_power_w(dict(prepared.idle_before_w), dict(idle_after_w))
    inf_flops, train_flops, uncounted = flops_per_sample(model, data.x_test[:64].to(device),
                                                         data.y_test[:64].to(device))
    from energymeter.models import activation_energies, evaluate

    kind = run.activation_energy
    evaluation = evaluate(model, data.x_test, data.y_test, activation_energy=kind, device=device)
    # Every definition of E (ACTIVATION_ENERGY_KINDS) and the scale-free ones, in one pass over the test split.
    by_kind = activation_energies(model, data.x_test, device=device)
    history = _history(result, model, data, device, kind, train_flops)
    reference = prepared.reference
    fields = dict(
        model=run.model, dataset=data.name, lam=run.lam, seed=run.seed, test_accuracy=result.test_accuracy,
        activation_energy=result.activation_energy, inference=window,
        activation_energy_kind=run.activation_energy_kind,
        epochs=config.epochs, activation_energy_per_layer=evaluation.activation_energy_per_layer,
        activation_energy_by_kind=by_kind,
        activation_sparsity=result.activation_sparsity, history=history, train_duration_s=result.duration_s,
        train=None if result.measurement is None else WindowRecord(result.measurement, idle_w),
        reference=None if reference is None else WindowRecord(reference.measurement, idle_w, reference.workloads),
        inference_flops_per_sample=inf_flops, train_flops_per_sample=train_flops, uncounted_ops=uncounted,
        loihi=loihi_record(model, data, config), cross_checks=dict(cross), load=load, host=socket.gethostname(),
        run_index=prepared.run_index, finished_at=time.time())
    model.to(device)
    return TrainedRun(model, idle_w, fields)
