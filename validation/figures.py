"""The figures of one run record: its energy targets, its proxies, and its row of report.csv.

An *energy target* is one energy figure a proxy may or may not track, named so that a reader cannot
confuse it with E: ``"inference cpu:model (net J per workload)"`` (and its ``raw`` twin), ``"training cpu:model (net J)"``,
``"loihi:sim loihi1 (modeled J per input)"``. Net figures subtract the run's idle baseline; a drift
correction factor (``stats.drift_correction_factors``) divides a run's figures when the user asks for it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .record import RunRecord

INFERENCE = "inference"
TRAINING = "training"
LOIHI = "loihi:sim"


@dataclass(frozen=True)
class Target:
    """One energy figure of one run.

    Attributes:
        name: The target's name (the same across runs).
        energy_j: Joules (net of idle for inference and training; modeled per input for Loihi).
        duration_s: The window's seconds for that figure (None for Loihi).
        provenance: ``measured``, ``integrated`` or ``modeled``.
        negative: True when the net figure came out below zero (idle baseline above the loaded window).
    """

    name: str
    energy_j: float
    duration_s: float | None
    provenance: str
    negative: bool = False


def inference_name(domain: str, raw: bool = False) -> str:
    return f"{INFERENCE} {domain} ({'raw' if raw else 'net'} J per workload)"


def training_name(domain: str) -> str:
    return f"{TRAINING} {domain} (net J)"


def loihi_name(profile: str) -> str:
    return f"{LOIHI} {profile} (modeled J per input)"


def targets(record: RunRecord, factor: float = 1.0) -> dict[str, Target]:
    """The run's energy targets (net figures divided by ``factor``, the drift correction)."""
    out: dict[str, Target] = {}
    inference = record.inference
    provenance = inference.measurement.provenance
    # Net (idle subtracted) and raw: where the machine's power does not depend on the work, net energy is
    # about zero and unusable, while raw energy is power x time and shows whether anything changed.
    for domain, joules in inference.net_energy_j_per_workload.items():
        out[inference_name(domain)] = Target(inference_name(domain), joules / factor, inference.duration_s_per_workload,
                                             provenance[domain], joules < 0)
    for domain, joules in inference.raw_energy_j_per_workload.items():
        name = inference_name(domain, raw=True)
        out[name] = Target(name, joules / factor, inference.duration_s_per_workload, provenance[domain], joules < 0)
    if record.train is not None:
        train = record.train
        for domain, joules in train.net_energy_j.items():
            out[training_name(domain)] = Target(training_name(domain), joules / factor, train.measurement.duration_s,
                                                train.measurement.provenance[domain], joules < 0)
    if record.loihi is not None:
        for profile, joules in record.loihi.energy_j_per_sample.items():
            out[loihi_name(profile)] = Target(loihi_name(profile), joules, None, "modeled")
    return out


def proxies(record: RunRecord) -> dict[str, float | None]:
    """The proxy values of one run: E, FLOPs per inference sample, synaptic operations and spikes per input."""
    loihi = record.loihi
    return {"E": record.activation_energy, "FLOPs": record.inference_flops_per_sample,
            "synops": None if loihi is None else loihi.synops_per_sample,
            "spikes": None if loihi is None else loihi.spikes_per_sample}


def csv_row(record: RunRecord) -> dict[str, Any]:
    """One run as a flat row: durations, raw and net joules (per workload where a window held several),
    FLOPs, Loihi counts, load and the per-epoch history (as JSON)."""
    row: dict[str, Any] = {
        "key": record.key, "model": record.model, "dataset": record.dataset, "lambda": record.lam,
        "seed": record.seed, "activation_energy_kind": record.activation_energy_kind, "run_index": record.run_index,
        "host": record.host, "test_accuracy": record.test_accuracy,
        "activation_energy (E per test sample)": record.activation_energy,
        "activation_sparsity": record.activation_sparsity, "train_duration_s": record.train_duration_s,
        "train_flops_per_sample": record.train_flops_per_sample,
        "inference_flops_per_sample": record.inference_flops_per_sample,
    }
    if record.train is not None:
        m = record.train.measurement
        row["training window duration_s"] = m.duration_s
        for domain, joules in m.energy_j.items():
            row[f"training {domain} raw J"] = joules
            row[f"training {domain} net J"] = record.train.net_energy_j[domain]
            row[f"training {domain} provenance"] = m.provenance[domain]
            row[f"idle {domain} W"] = record.train.idle_power_w.get(domain)
    inference = record.inference
    n = inference.samples_per_workload
    row[f"inference duration_s per workload of {n} samples"] = inference.duration_s_per_workload
    row["inference workloads in window"] = inference.workloads
    for domain in inference.measurement.energy_j:
        row[f"inference {domain} raw J per workload of {n} samples"] = inference.raw_energy_j_per_workload[domain]
        row[f"inference {domain} net J per workload of {n} samples"] = inference.net_energy_j_per_workload[domain]
        row[f"inference {domain} provenance"] = inference.measurement.provenance[domain]
    if record.reference is not None:
        for domain, joules in record.reference.raw_energy_j_per_workload.items():
            row[f"reference {domain} raw J per repetition"] = joules
    if record.loihi is not None:
        for name in ("accuracy", "source_accuracy", "spikes_per_sample", "synops_per_sample"):
            row[f"loihi {name}"] = getattr(record.loihi, name)
        for profile, joules in record.loihi.energy_j_per_sample.items():
            row[f"loihi {profile} modeled J per input"] = joules
    if record.load is not None:
        row["load other_cpu_share"] = record.load.other_cpu_share
        row["load load_avg_1m"] = record.load.load_avg_1m
    row["history (JSON, cumulative duration_s, energy_j, flops)"] = json.dumps([h.to_dict() for h in record.history])
    return row
