"""What a sweep runs: the grid, the training and measuring settings, presets, and the run order.

The run order is a seeded random permutation of the grid (``order_seed``, recorded in sweep.json), so
drift of the machine over a sweep is not confounded with lambda; the same settings give the same order,
so ``--resume`` continues it.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from dataclasses import asdict, dataclass, replace
from typing import Any

from energymeter.errors import EnergymeterError

from ..records.spec import RunSpec, SpecError, check_lambda

DEFAULT_LAMBDAS = (0.0, 1e-5, 1e-4, 1e-3, 1e-2)
#: E definitions a sweep may run as a factor (``--activation-energy l2,l1,l0``), each with its formula
#: for the reports (B samples, a_l the output of activation layer l): kinds of ``ActivationEnergy``.
ACTIVATION_ENERGY_FORMULAS = {
    "l2": "E = 1/B sum_x sum_l sum_i a_{l,i}(x)^2 (sum of squared activations)",
    "l1": "E = 1/B sum_x sum_l sum_i |a_{l,i}(x)| (sum of absolute activations)",
    "l0": "E = 1/B sum_x sum_l #{i : a_{l,i}(x) != 0} (active units; counted, no gradient)",
}
ACTIVATION_ENERGY_KINDS = tuple(ACTIVATION_ENERGY_FORMULAS)
#: E definitions without a gradient: measured on every run, never a training penalty.
UNTRAINABLE_KINDS = ("l0",)
PRESETS = ("default", "paper")
#: How inference is measured (``--inference-design``): interleaved rounds over a group's trained networks
#: (paired by round), or one window per run right after its training (unprotected against drift).
INFERENCE_DESIGNS = ("interleaved", "per-run")
#: How training is measured (``--training-design``): a group's networks round-robin, one epoch each per round in a
#: balanced order (drift falls on every lambda alike), or one run after another (unprotected against drift).
TRAINING_DESIGNS = ("chunked", "sequential")
#: Where a sweep's runs execute (``--executor``): in this process, or as Ray tasks.
EXECUTORS = ("local", "ray")


class SweepError(EnergymeterError):
    """A sweep that cannot start: bad settings or an output directory that does not fit."""


def describe_activation_energy(kind: str) -> str:
    """The formula of one E definition (``l2`` or ``l2/sum``), for reports."""
    return ACTIVATION_ENERGY_FORMULAS[kind.split("/")[0]] + ", on the test split"


def check_lambdas(values: tuple[float, ...]) -> tuple[float, ...]:
    """A sweep's lambdas when valid: each a lambda (``records.spec.check_lambda``), none repeated, 0 among them.

    Raises:
        SweepError: with one line naming the problem.
    """
    try:
        values = tuple(check_lambda(v) for v in values)
    except SpecError as exc:
        raise SweepError(str(exc)) from None
    if not values:
        raise SweepError("give at least one lambda")
    if len(set(values)) != len(values):
        raise SweepError(f"the lambda list repeats a value ({', '.join(f'{v:g}' for v in values)}): each is run once")
    if 0.0 not in values:
        raise SweepError("lambdas must include 0 (the baseline every other lambda is compared with)")
    if len(values) < 2:
        raise SweepError("lambdas must include one above 0 as well: with 0 alone the sweep compares nothing")
    return values


def check_activation_energies(names: tuple[str, ...]) -> tuple[str, ...]:
    """A sweep's E definitions when valid: known, none repeated, at least one with a gradient.

    Raises:
        SweepError: with one line naming the problem.
    """
    for name in names:
        if name not in ACTIVATION_ENERGY_FORMULAS:
            raise SweepError(f"unknown activation energy definition {name!r}; known: "
                             f"{', '.join(ACTIVATION_ENERGY_KINDS)}")
    if len(set(names)) != len(names):
        raise SweepError(f"activation energies repeat a value: {', '.join(names)}")
    if not any(name not in UNTRAINABLE_KINDS for name in names):
        raise SweepError("l0 counts active units and has no gradient: it cannot be the training penalty; give l2 "
                         "or l1 (every run reports E under l2, l1 and l0 anyway)")
    return names


@dataclass(frozen=True)
class SweepConfig:
    """What a sweep runs. Everything that changes results is part of its fingerprint.

    Attributes:
        models, datasets, lambdas: The grid.
        activation_energies: E definitions trained with as the penalty, each its own factor (``l2``, ``l1``).
            ``l0`` counts active units and has no gradient, so it is never a penalty; listing it is allowed
            and changes nothing, because every run reports E under l2, l1 and l0 whatever it trained with.
        seeds: Seeds 0..seeds-1.
        epochs, batch_size, lr: Training settings.
        device: ``cpu`` or ``cuda:N``.
        backends: Energy backends (None: every available one).
        inference_samples: Test samples in the fixed inference workload.
        min_window_s: The inference workload repeats until its window is at least this long (s).
        idle_s: Length of each idle-baseline window, measured before and after every run (s).
        reference_s: Length of the fixed reference workload measured before every run (s; 0: none).
        snn_samples, snn_timesteps: Loihi simulation size (0 samples: skipped).
        order_seed: Seed of the random run order (and of the rounds' balanced orders).
        inference_design: ``interleaved`` (after a group's networks are trained, their inference is measured
            in rounds, each a fresh balanced order, paired by round) or ``per-run`` (one window after each
            run's training; drift falls on whichever lambda ran when it happened).
        training_design: ``chunked`` (a group's networks trained round-robin, an epoch each per round, each
            epoch a window of its own, paired by round) or ``sequential`` (one run's training after another;
            drift falls on whichever lambda trained when it happened).
        round_min_window_s, round_min_workloads: Each round window's minimum duration (s) and repetitions of
            the fixed batch (the window-minimum settings of the interleaved design).
        rounds_min, rounds_max: The fewest and most rounds per group.
        rounds_target_width: Rounds stop once every comparison's 95% interval of the mean log ratio is
            narrower than this (log units; 0.05 is about +-2.5%), ...
        rounds_budget_s: ... or once this many seconds of rounds were spent on the group.
        root: Directory with IDX files for mnist / fashion-mnist.
        download: Fetch missing mnist / fashion-mnist files (network; only when asked).
        country: ISO 3166-1 alpha-3 code for codecarbon's cross-check and CO2e (None: not asked).
    """

    models: tuple[str, ...] = ("mlp",)
    datasets: tuple[str, ...] = ("digits",)
    lambdas: tuple[float, ...] = DEFAULT_LAMBDAS
    activation_energies: tuple[str, ...] = ("l2",)
    seeds: int = 3
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    device: str = "cpu"
    backends: tuple[str, ...] | None = None
    inference_samples: int = 256
    min_window_s: float = 1.0
    idle_s: float = 0.5
    reference_s: float = 0.2
    snn_samples: int = 100
    snn_timesteps: int = 50
    order_seed: int = 0
    inference_design: str = "interleaved"
    training_design: str = "chunked"
    round_min_window_s: float = 0.1
    round_min_workloads: int = 5
    rounds_min: int = 5
    rounds_max: int = 60
    rounds_target_width: float = 0.05
    rounds_budget_s: float = 10.0
    root: str | None = None
    download: bool = False
    country: str | None = None

    @property
    def grouped(self) -> bool:
        """Whether the runs execute group by group (either design that pairs a group's networks needs it)."""
        return self.inference_design == "interleaved" or self.training_design == "chunked"

    def fingerprint(self) -> str:
        """Hash of the settings that define the sweep (where the data lies and the CO2e country do not count)."""
        data = asdict(self)
        for unrelated in ("root", "download", "country"):
            data.pop(unrelated)
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    def grid(self) -> list[RunSpec]:
        """Every (model, dataset, lambda, seed, E kind) in a fixed, readable order."""
        return [RunSpec(m, d, lam, s, e) for d in self.datasets for m in self.models for e in self.penalties()
                for s in range(self.seeds) for lam in self.lambdas]

    def penalties(self) -> tuple[str, ...]:
        """The E definitions trained with (the differentiable ones listed)."""
        return tuple(k for k in self.activation_energies if k not in UNTRAINABLE_KINDS)

    def runs(self) -> list[RunSpec]:
        """The grid in the order it runs, a random permutation seeded by ``order_seed``; with the interleaved
        design, group after group (model x dataset x E x seed, groups and lambdas within each shuffled), so a
        group's networks are all trained when its rounds begin."""
        order = self.grid()
        rng = random.Random(self.order_seed)
        rng.shuffle(order)
        if not self.grouped:
            return order
        first = {}
        for spec in order:
            first.setdefault(group_of(spec), len(first))
        return sorted(order, key=lambda spec: first[group_of(spec)])

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe settings."""
        return asdict(self)


def group_of(spec: RunSpec) -> tuple[str, str, str, int]:
    """(model, dataset, E definition, seed): the networks measured together in interleaved rounds."""
    return (spec.model, spec.dataset, spec.activation_energy, spec.seed)


def preset(name: str, quick: bool, available_datasets: tuple[str, ...] = ("digits", "mnist-5k")) -> dict[str, Any]:
    """Settings of a named preset (explicit flags override them).

    ``default``: mlp on digits, the paper's five lambdas, 3 seeds, 10 epochs. ``paper``: the paper's
    first claim (architecture x dataset): mlp, cnn and kwta-mlp on every dataset available (digits and
    mnist-5k always; mnist and fashion-mnist when their files are given; 20newsgroups, text, when its
    scikit-learn cache is there), five lambdas. ``quick`` shrinks
    either to a smoke test (``paper --quick`` finishes in under 10 minutes on 2 cores).
    """
    if name not in PRESETS:
        raise SweepError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}")
    if name == "default":
        settings: dict[str, Any] = {}
        if quick:
            settings = dict(lambdas=(0.0, 1e-2), seeds=2, epochs=2, min_window_s=0.2, idle_s=0.1, reference_s=0.05,
                            snn_samples=50, snn_timesteps=20, inference_samples=64)
        return settings
    settings = dict(models=("mlp", "cnn", "kwta-mlp"), datasets=available_datasets)
    if quick:
        settings.update(lambdas=(0.0, 1e-2), seeds=2, epochs=1, min_window_s=0.1, idle_s=0.05, reference_s=0.03,
                        snn_samples=0, inference_samples=64)
    return settings


def check_config(config: SweepConfig) -> None:
    """Reject unknown models, datasets and backends and impossible settings before anything runs.

    Raises:
        SweepError: with one line naming the problem.
    """
    from energymeter import backends
    from energymeter.models import DATASETS, MODELS

    for name in config.models:
        if name not in MODELS:
            raise SweepError(f"unknown model {name!r}; known models: {', '.join(MODELS)}")
    for name in config.datasets:
        if name not in DATASETS:
            raise SweepError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")
    check_activation_energies(config.activation_energies)
    for name in config.backends or ():
        if name not in backends.names():
            raise SweepError(f"unknown backend {name!r}; known backends: {', '.join(backends.names())}")
    energy_kinds = (backends.HARDWARE_COUNTER, backends.MODEL)
    if config.backends is not None and not any(backends.backend_class(b).kind in energy_kinds for b in config.backends):
        others = ", ".join(f"{b} ({backends.backend_class(b).kind})" for b in config.backends)
        raise SweepError(f"--backends {','.join(config.backends)} names no energy backend ({others}): a sweep "
                         f"measures energy; add one of {', '.join(backends.energy_names()) or 'rapl, nvml, cpu-model'}")
    check_lambdas(config.lambdas)
    for name in ("models", "datasets"):
        values = getattr(config, name)
        if len(set(values)) != len(values):
            raise SweepError(f"{name.replace('_', ' ')} repeat a value: {', '.join(values)}")
    if config.seeds < 1 or config.epochs < 1 or config.inference_samples < 1 or config.batch_size < 1:
        raise SweepError("seeds, epochs, batch size and inference samples must be at least 1")
    for name in ("min_window_s", "lr"):
        value = getattr(config, name)
        if not (math.isfinite(value) and value > 0):
            raise SweepError(f"{name.replace('_', '-')} must be a finite number > 0, got {value!r}")
    for name in ("idle_s", "reference_s"):
        value = getattr(config, name)
        if not (math.isfinite(value) and value >= 0):
            raise SweepError(f"{name.replace('_', '-')} must be a finite number >= 0, got {value!r}")
    if config.inference_design not in INFERENCE_DESIGNS:
        raise SweepError(f"unknown inference design {config.inference_design!r}; known: {', '.join(INFERENCE_DESIGNS)}")
    if config.training_design not in TRAINING_DESIGNS:
        raise SweepError(f"unknown training design {config.training_design!r}; known: {', '.join(TRAINING_DESIGNS)}")
    if config.round_min_workloads < 1 or config.rounds_min < 1 or config.rounds_max < config.rounds_min:
        raise SweepError("round-min-workloads and rounds-min must be at least 1, and rounds-max at least rounds-min")
    for name in ("round_min_window_s", "rounds_target_width", "rounds_budget_s"):
        value = getattr(config, name)
        if not (math.isfinite(value) and value >= 0):
            raise SweepError(f"{name.replace('_', '-')} must be a finite number >= 0, got {value!r}")
    if not config.device == "cpu" and not config.device.startswith("cuda"):
        raise SweepError(f"device must be cpu or cuda:N, got {config.device!r}")
    if config.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise SweepError(f"device {config.device} asked for, but this torch sees no CUDA device")


def with_overrides(config: SweepConfig, **settings: Any) -> SweepConfig:
    """``config`` with the given settings replaced (None values are ignored)."""
    return replace(config, **{k: v for k, v in settings.items() if v is not None})
