"""Training with the energy-regularised loss ``L = L_CE + lambda * E(theta, x)``."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator

import torch
from torch import nn

from energymeter.measurement import Measurement

from .activation_energy import ActivationEnergy, Kind
from .datasets import Dataset


@dataclass(frozen=True)
class EpochStats:
    """Means over one epoch's training batches.

    Attributes:
        epoch: 1-based epoch number.
        loss: Mean total loss (CE + lambda E).
        ce: Mean cross-entropy.
        activation_energy: Mean activation energy E per sample (arbitrary units, not joules).
        accuracy: Training accuracy over the epoch (0..1).
        duration_s: Training seconds from the start of the loop to this epoch's end.
        measurement: With a meter and ``per_epoch=True``: the energy from the start of the loop to
            this epoch's end (a window opened with the loop and closed at the epoch's end).
    """

    epoch: int
    loss: float
    ce: float
    activation_energy: float
    accuracy: float
    duration_s: float = field(default=0.0, compare=False)  # wall time varies run to run; the results do not
    measurement: Measurement | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Evaluation:
    """A model's behaviour on a labelled set.

    Attributes:
        accuracy: Fraction correct (0..1).
        activation_energy: Mean E per sample (same definition as the loss term).
        activation_sparsity: Fraction of hooked activation outputs that are exactly zero.
        samples: Samples evaluated.
        activation_energy_per_layer: Each hooked layer's share of the mean E per sample.
    """

    accuracy: float
    activation_energy: float
    activation_sparsity: float
    samples: int
    activation_energy_per_layer: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainResult:
    """What ``train`` returns.

    Attributes:
        test_accuracy: Accuracy on the test split (0..1).
        activation_energy: Mean E per test sample (same definition as the loss term).
        activation_sparsity: Fraction of zero activation outputs on the test split.
        history: One ``EpochStats`` per epoch.
        duration_s: Wall time of the training loop (s).
        lam: The lambda used.
        activation_energy_kind: The E definition (``l2``, ``l1``, ``l0`` or a callable's name) and its reduction.
        seed: The seed.
        measurement: The meter's Measurement of the training loop, when a meter was given.
        epoch_states: With ``keep_epoch_states=True``: the model's parameters after each epoch (CPU
            copies), to evaluate per-epoch accuracy afterwards, outside any energy window.
    """

    test_accuracy: float
    activation_energy: float
    activation_sparsity: float
    history: tuple[EpochStats, ...]
    duration_s: float
    lam: float
    activation_energy_kind: str
    seed: int
    measurement: Measurement | None = field(default=None, compare=False)
    epoch_states: tuple[dict[str, torch.Tensor], ...] = field(default=(), compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "epoch_states"}
        data["history"] = [{**{k: v for k, v in asdict(h).items() if k != "measurement"},
                            "measurement": None if h.measurement is None else h.measurement.to_dict()}
                           for h in self.history]
        data["measurement"] = None if self.measurement is None else self.measurement.to_dict()
        return data


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, activation_energy: Kind = "l2",
             reduction: str = "sum",
             batch_size: int = 1000, device: str | torch.device = "cpu") -> Evaluation:
    """Accuracy, mean E per sample and activation sparsity of ``model`` on (x, y), without gradients."""
    model.eval()
    correct, e_sum, zeros, units_total = 0, 0.0, 0.0, 0.0
    per_layer_sum: dict[str, float] = {}
    with ActivationEnergy(model, activation_energy, reduction) as e_hooks, ActivationEnergy(model, "l0") as active:
        with torch.no_grad():
            for start in range(0, len(x), batch_size):
                xb, yb = x[start:start + batch_size].to(device), y[start:start + batch_size].to(device)
                logits = model(xb)
                correct += int((logits.argmax(1) == yb).sum())
                e_sum += float(e_hooks.per_sample.sum())
                for name, value in e_hooks.per_layer.items():
                    per_layer_sum[name] = per_layer_sum.get(name, 0.0) + value * len(xb)
                units = sum(active.units.values())
                zeros += float((units - active.per_sample).sum())
                units_total += units * len(xb)
    model.train()
    n = len(x)
    return Evaluation(correct / n, e_sum / n, zeros / units_total if units_total else 0.0, n,
                      {name: total / n for name, total in per_layer_sum.items()})


def train(model: nn.Module, dataset: Dataset, *, lam: float, epochs: int, batch_size: int = 128, lr: float = 1e-3,
          seed: int = 0, device: str | torch.device = "cpu", activation_energy: Kind = "l2", reduction: str = "sum",
          meter: Any = None, progress: bool | Callable[[EpochStats], None] = False, per_epoch: bool = False,
          keep_epoch_states: bool = False) -> TrainResult:
    """Train with Adam on ``CE + lam * E``, then evaluate on the test split.

    Args:
        model: A subject model (see ``build``); trained in place.
        dataset: From ``load_dataset``.
        lam: lambda >= 0, the weight of E.
        epochs: Passes over the training split.
        batch_size: Samples per step.
        lr: Adam learning rate.
        seed: Seeds the batch order (and the global torch RNG); the same seed gives the same result on CPU.
        device: Where to train.
        activation_energy: E's kind (``l2``, ``l1``, ``l0`` or a callable); ``l0`` has no gradient, so lam must be 0.
        reduction: ``sum`` or ``mean`` over units.
        meter: An ``energymeter.Meter``; the training loop is measured as one window.
        progress: True prints one line per epoch; a callable receives each ``EpochStats``.
        per_epoch: With a meter, also measure the energy from the start to each epoch's end (one window
            per epoch, all opened with the loop: no per-step cost).
        keep_epoch_states: Keep a CPU copy of the parameters after each epoch (``TrainResult.epoch_states``).

    Raises:
        ValueError: negative lambda, epochs < 1, or a non-differentiable E with lam > 0.
    """
    steps = train_epochs(model, dataset, lam=lam, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                         device=device, activation_energy=activation_energy, reduction=reduction,
                         keep_epoch_states=keep_epoch_states)
    history: list[EpochStats] = []
    report = progress if callable(progress) else (print if progress else None)
    window = f"train-{id(model)}-{time.monotonic_ns()}"
    upto = [f"{window}-upto-{k}" for k in range(1, epochs + 1)] if meter is not None and per_epoch else []
    states: list[dict[str, torch.Tensor]] = []
    start = time.perf_counter()
    if meter is not None:
        meter.begin_window(window, model=model)
        for name in upto:
            meter.begin_window(name)
    try:
        for stats, state in steps:
            epoch_m = meter.end_window(upto[stats.epoch - 1]) if upto else None
            stats = dataclasses.replace(stats, duration_s=time.perf_counter() - start, measurement=epoch_m)
            history.append(stats)
            if state is not None:
                states.append(state)
            if report is not None:
                report(stats if callable(progress) else
                       f"epoch {stats.epoch}/{epochs}: loss {stats.loss:.4f} ce {stats.ce:.4f} "
                       f"E {stats.activation_energy:.4g} acc {stats.accuracy:.4f}")
    finally:
        steps.close()
        if meter is not None:
            for name in upto[len(history):]:  # the loop ended early (an exception): close what is open
                meter.end_window(name)
        measurement = dataclasses.replace(meter.end_window(window), name="train") if meter is not None else None
    duration_s = time.perf_counter() - start
    return finish(model, dataset, history, duration_s, lam, seed, measurement, states, device=device,
                  activation_energy=activation_energy, reduction=reduction)


def train_epochs(model: nn.Module, dataset: Dataset, *, lam: float, epochs: int, batch_size: int = 128,
                 lr: float = 1e-3, seed: int = 0, device: str | torch.device = "cpu", activation_energy: Kind = "l2",
                 reduction: str = "sum",
                 keep_epoch_states: bool = False) -> Iterator[tuple[EpochStats, dict[str, torch.Tensor] | None]]:
    """Train epoch by epoch, as ``train`` does, yielding after each epoch: a caller can measure each epoch in a
    window of its own, or advance several networks' epochs in turn (the chunked training design).

    Yields:
        (the epoch's ``EpochStats``, its ``duration_s`` the seconds spent inside this generator so far; a CPU copy
        of the parameters after it with ``keep_epoch_states``, else None).

    Raises:
        ValueError: as ``train`` (at once, not at the first ``next``).
    """
    if not lam >= 0:
        raise ValueError(f"lambda must be >= 0, got {lam!r}")
    if epochs < 1 or batch_size < 1:
        raise ValueError("epochs and batch_size must be at least 1")
    if activation_energy == "l0" and lam > 0:
        raise ValueError("E of kind l0 counts active units and has no gradient: use l1 or l2 for lambda > 0")
    return _epochs(model, dataset, lam, epochs, batch_size, lr, seed, device, activation_energy, reduction,
                   keep_epoch_states)


def _epochs(model: nn.Module, dataset: Dataset, lam: float, epochs: int, batch_size: int, lr: float, seed: int,
            device: str | torch.device, activation_energy: Kind, reduction: str,
            keep_epoch_states: bool) -> Iterator[tuple[EpochStats, dict[str, torch.Tensor] | None]]:
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model.to(device).train()
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    x, y = dataset.x_train.to(device), dataset.y_train.to(device)
    spent_s = 0.0
    with ActivationEnergy(model, activation_energy, reduction) as act:
        for epoch in range(1, epochs + 1):
            resumed = time.perf_counter()
            order = torch.randperm(len(x), generator=generator).to(device)
            # Accumulated on the device: no host sync per step.
            sums = torch.zeros(4, dtype=torch.float64, device=device)
            for first in range(0, len(x), batch_size):
                idx = order[first:first + batch_size]
                xb, yb = x[idx], y[idx]
                logits = model(xb)
                ce = nn.functional.cross_entropy(logits, yb)
                e = act.value
                loss = ce + lam * e if lam else ce
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                n = len(idx)
                sums += torch.stack([loss.detach() * n, ce.detach() * n, e.detach() * n,
                                     (logits.argmax(1) == yb).sum()]).to(torch.float64)
            means = [float(v) / len(x) for v in sums.cpu()]
            state = ({k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
                     if keep_epoch_states else None)
            spent_s += time.perf_counter() - resumed
            yield EpochStats(epoch, *means, duration_s=spent_s), state


def finish(model: nn.Module, dataset: Dataset, history: list[EpochStats], duration_s: float, lam: float, seed: int,
           measurement: Measurement | None, states: list[dict[str, torch.Tensor]], *,
           device: str | torch.device = "cpu", activation_energy: Kind = "l2", reduction: str = "sum") -> TrainResult:
    """The ``TrainResult`` of a trained model: its history and measurement, evaluated on the test split."""
    result = evaluate(model, dataset.x_test, dataset.y_test, activation_energy=activation_energy, reduction=reduction,
                      device=device)
    kind_name = activation_energy if isinstance(activation_energy, str) else getattr(activation_energy, "__name__",
                                                                                        "custom")
    return TrainResult(result.accuracy, result.activation_energy, result.activation_sparsity, tuple(history),
                       duration_s, float(lam), f"{kind_name}/{reduction}", seed, measurement, tuple(states))
