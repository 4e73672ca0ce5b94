"""The lambda sweep: train each (model, dataset, lambda, seed), measure it, append one record per finished run."""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from energymeter.errors import EnergymeterError

from . import store

DEFAULT_LAMBDAS = (0.0, 1e-5, 1e-4, 1e-3, 1e-2)
ENERGY_DEFINITION = ("E = mean over samples of the sum over activation layers of the sum of squared activation "
                     "outputs (kind l2, reduction sum), on the test split")


class SweepError(EnergymeterError):
    """A sweep that cannot start: bad settings or an output directory that does not fit."""


@dataclass(frozen=True)
class SweepConfig:
    """What a sweep runs. Everything that changes results is part of its fingerprint.

    Attributes:
        models, datasets, lambdas: The grid.
        seeds: Seeds 0..seeds-1.
        epochs, batch_size, lr: Training settings.
        device: ``cpu`` or ``cuda:N``.
        backends: Energy backends (None: every available one).
        inference_samples: Test samples in the fixed inference workload.
        min_window_s: The inference workload repeats until its window is at least this long (s).
        snn_samples, snn_timesteps: Loihi simulation size (0 samples: skipped).
        root: Directory with IDX files for mnist / fashion-mnist.
        country: ISO 3166-1 alpha-3 code for codecarbon's cross-check and CO2e (None: not asked).
    """

    models: tuple[str, ...] = ("mlp",)
    datasets: tuple[str, ...] = ("digits",)
    lambdas: tuple[float, ...] = DEFAULT_LAMBDAS
    seeds: int = 3
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    device: str = "cpu"
    backends: tuple[str, ...] | None = None
    inference_samples: int = 256
    min_window_s: float = 1.0
    snn_samples: int = 100
    snn_timesteps: int = 50
    root: str | None = None
    country: str | None = None

    def fingerprint(self) -> str:
        """Hash of the settings that define the sweep (where the data lies and the CO2e country do not count)."""
        data = asdict(self)
        data.pop("root")
        data.pop("country")
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    def runs(self) -> list[tuple[str, str, float, int]]:
        """Every (model, dataset, lambda, seed), in the order they run."""
        return [(m, d, lam, s) for d in self.datasets for m in self.models for s in range(self.seeds)
                for lam in self.lambdas]


def run_key(model: str, dataset: str, lam: float, seed: int) -> str:
    """The identity of one run in results.jsonl."""
    return f"{model}|{dataset}|{lam!r}|{seed}"


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
    for name in config.backends or ():
        if name not in backends.names():
            raise SweepError(f"unknown backend {name!r}; known backends: {', '.join(backends.names())}")
    if not config.lambdas or any(not (lam >= 0 and math.isfinite(lam)) for lam in config.lambdas):
        raise SweepError("lambdas must be finite numbers >= 0")
    if 0.0 not in config.lambdas:
        raise SweepError("lambdas must include 0 (the baseline every other lambda is compared with)")
    if config.seeds < 1 or config.epochs < 1 or config.inference_samples < 1:
        raise SweepError("seeds, epochs and inference samples must be at least 1")
    if not config.device == "cpu" and not config.device.startswith("cuda"):
        raise SweepError(f"device must be cpu or cuda:N, got {config.device!r}")
    if config.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise SweepError(f"device {config.device} asked for, but this torch sees no CUDA device")


def prepare_output(out: Path, config: SweepConfig, resume: bool) -> set[str]:
    """Create or check the output directory; return the keys of finished runs.

    Raises:
        SweepError: unwritable directory, a directory holding another sweep, or finished runs without --resume.
    """
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".energymeter-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise SweepError(f"output directory {out} is not writable: {exc.strerror or exc}") from exc
    sweep_file = out / store.SWEEP_FILE
    if sweep_file.exists():
        try:
            existing = json.loads(sweep_file.read_text())
            fingerprint = existing["fingerprint"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SweepError(f"{sweep_file} is unreadable ({exc}); choose another --out") from exc
        if fingerprint != config.fingerprint():
            raise SweepError(f"{out} holds a different sweep (fingerprint {fingerprint}, this one "
                             f"{config.fingerprint()}); choose another --out")
    records, _ = store.read_records(out)
    done = {r["key"] for r in records}
    if done and not resume:
        raise SweepError(f"{out} already holds {len(done)} finished run(s) of this sweep: pass --resume to continue "
                         "it, or choose another --out")
    return done


class Progress:
    """A one-line progress bar with ETA on stderr; silent when stderr is not a terminal or when quiet."""

    def __init__(self, total: int, quiet: bool) -> None:
        self.total = total
        self.done = 0
        self.enabled = not quiet and sys.stderr.isatty()
        self.start = time.monotonic()
        if self.enabled and total:
            sys.stderr.write(f"[{'.' * 24}] 0/{total} ETA    ? s")
            sys.stderr.flush()

    def update(self, label: str) -> None:
        """Advance by one finished run."""
        self.done += 1
        if not self.enabled:
            return
        elapsed = time.monotonic() - self.start
        eta = elapsed / self.done * (self.total - self.done)
        width = 24
        filled = int(width * self.done / max(self.total, 1))
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} "
                         f"ETA {eta:4.0f} s  {label[:40]:<40}")
        sys.stderr.flush()
        if self.done == self.total:
            sys.stderr.write("\n")


@dataclass
class SweepOutcome:
    """What a sweep did.

    Attributes:
        ran: Runs finished in this invocation.
        skipped: Runs already finished (``--resume``).
        interrupted: True when Ctrl-C stopped it.
    """

    ran: int = 0
    skipped: int = 0
    interrupted: bool = False
    idle: dict[str, Any] = field(default_factory=dict)


def _energy_backends(config: SweepConfig) -> list[str]:
    from energymeter import backends

    if config.backends is not None:
        return [b for b in config.backends
                if backends.backend_class(b).kind in (backends.HARDWARE_COUNTER, backends.MODEL)]
    return backends.energy_names()


def measure_idle(meter: Any, seconds: float) -> dict[str, Any]:
    """Average power per domain while this process sleeps (W), with its provenance."""
    meter.begin_window("idle")
    time.sleep(seconds)
    m = meter.end_window("idle")
    return {"duration_s": m.duration_s, "power_w": {d: j / m.duration_s for d, j in m.energy_j.items()},
            "provenance": dict(m.provenance), "failed": dict(m.failed)}


def _net(measurement: dict[str, Any], idle: dict[str, Any]) -> dict[str, float]:
    return {d: j - idle["power_w"].get(d, 0.0) * measurement["duration_s"] for d, j in measurement["energy_j"].items()}


def _inference(model: Any, x: Any, meter: Any, min_window_s: float, device: str,
               country: str | None = None) -> dict[str, Any]:
    import torch

    from .crosscheck import peers

    model.eval()
    x = x.to(device)
    with torch.no_grad():
        model(x)  # warm-up outside the window
        with peers(meter.provenance, country) as cross:
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
    return {"repetitions": reps, "samples_per_repetition": len(x), "measurement": m.to_dict(), "cross_checks": cross}


def _flops_per_sample(model: Any, x: Any, y: Any) -> dict[str, Any]:
    import torch

    from energymeter import Meter

    with Meter(["flops"], sync=False) as meter:
        with torch.no_grad():
            meter.begin_window("forward")
            model(x)
            forward = meter.end_window("forward")
        meter.begin_window("train-step")
        torch.nn.functional.cross_entropy(model(x), y).backward()
        step = meter.end_window("train-step")
    model.zero_grad(set_to_none=True)
    n = len(x)
    return {"inference_flops_per_sample": forward.flops / n, "train_flops_per_sample": step.flops / n,
            "uncounted_ops": dict(forward.uncounted_ops)}


def _loihi(model: Any, data: Any, config: SweepConfig) -> dict[str, Any] | None:
    if config.snn_samples <= 0:
        return None
    from energymeter.loihi import ConversionError, convert, estimate_energy, simulate

    try:
        snn = convert(model.cpu(), data.x_train[:500])
    except ConversionError as exc:
        return {"error": str(exc)}
    import torch

    x, y = data.x_test[:config.snn_samples], data.y_test[:config.snn_samples]
    sim = simulate(snn, x, config.snn_timesteps)
    per = sim.per_sample()
    model.eval()
    with torch.no_grad():
        source_accuracy = float((model(x).argmax(1) == y).float().mean())
    model.train()
    return {
        "timesteps": config.snn_timesteps, "samples": sim.samples, "accuracy": sim.accuracy(y),
        "source_accuracy": source_accuracy,
        "spikes_per_sample": per["spikes"], "synops_per_sample": per["synops_effective"],
        "dense_synops_per_sample": per["synops_dense"], "activation_sparsity": sim.activation_sparsity,
        "energy_j_per_sample": {p: estimate_energy(sim, p).per_sample_j for p in ("loihi1", "loihi1-calibrated")},
        "provenance": "modeled", "notes": list(snn.notes),
    }


def one_run(config: SweepConfig, model_name: str, data: Any, lam: float, seed: int, meter: Any,
            idle: dict[str, Any]) -> dict[str, Any]:
    """Train and measure one (model, dataset, lambda, seed); returns its record (not yet written)."""
    from energymeter.models import build, train

    device = config.device
    model = build(model_name, data.in_shape, data.num_classes, seed=seed)
    result = train(model, data, lam=lam, epochs=config.epochs, batch_size=config.batch_size, lr=config.lr,
                   seed=seed, device=device, meter=meter)
    model = model.to(device)
    x_inf = data.x_test[:config.inference_samples]
    flops = _flops_per_sample(model, data.x_test[:64].to(device), data.y_test[:64].to(device))
    inference = _inference(model, x_inf, meter, config.min_window_s, device, config.country)
    train_m = result.measurement.to_dict() if result.measurement is not None else None
    reps = inference["repetitions"]
    inf_m = inference["measurement"]
    inf_net = _net(inf_m, idle)
    record = {
        "key": run_key(model_name, data.name, lam, seed), "model": model_name, "dataset": data.name,
        "lambda": lam, "seed": seed, "epochs": config.epochs,
        "test_accuracy": result.test_accuracy, "activation_energy": result.activation_energy,
        "activation_sparsity": result.activation_sparsity, "energy_definition": ENERGY_DEFINITION,
        "history": [asdict(h) for h in result.history], "train_duration_s": result.duration_s,
        **flops,
        "train": {"measurement": train_m, "net_energy_j": _net(train_m, idle) if train_m else {}},
        "inference": {**inference, "net_energy_j": inf_net,
                      "net_energy_j_per_workload": {d: j / reps for d, j in inf_net.items()},
                      "raw_energy_j_per_workload": {d: j / reps for d, j in inf_m["energy_j"].items()},
                      "duration_s_per_workload": inf_m["duration_s"] / reps},
        "loihi": _loihi(model, data, config),
        "idle_power_w": dict(idle["power_w"]),  # the baseline this run's net figures subtracted
        "finished_at": time.time(),
    }
    return record


def run_sweep(config: SweepConfig, out: Path, *, resume: bool = False, quiet: bool = False,
              on_record: Callable[[dict[str, Any]], None] | None = None) -> SweepOutcome:
    """Run every unfinished run of the sweep, appending a record after each.

    Raises:
        SweepError: bad settings or output directory (nothing is run or written then).
        DatasetError: a dataset that cannot be loaded.
    """
    from energymeter import Meter, backends
    from energymeter.models import load_dataset

    check_config(config)
    done = prepare_output(out, config, resume)
    datasets = {name: load_dataset(name, root=config.root) for name in config.datasets}
    names = _energy_backends(config)
    meter = Meter(names)
    outcome = SweepOutcome()
    try:
        from .metadata import collect

        idle = measure_idle(meter, config.min_window_s)
        outcome.idle = idle
        sweep_file = out / store.SWEEP_FILE
        store.write_json_atomic(sweep_file, {
            "fingerprint": config.fingerprint(), "config": asdict(config), "energy_definition": ENERGY_DEFINITION,
            "energy_backends": names, "provenance": meter.provenance, "idle": idle,
            "metadata": collect(backends.available()),
        })
        pending = [r for r in config.runs() if run_key(r[0], r[1], r[2], r[3]) not in done]
        outcome.skipped = len(config.runs()) - len(pending)
        progress = Progress(len(pending), quiet)
        try:
            for model_name, dataset_name, lam, seed in pending:
                record = one_run(config, model_name, datasets[dataset_name], lam, seed, meter, idle)
                store.append_record(out, record)
                outcome.ran += 1
                progress.update(f"{model_name} {dataset_name} lambda={lam:g} seed={seed}")
                if on_record is not None:
                    on_record(record)
        except KeyboardInterrupt:
            outcome.interrupted = True
            if progress.enabled:
                sys.stderr.write("\n")
    finally:
        meter.close()
    return outcome
