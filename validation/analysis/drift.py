"""The machine's drift from the reference workload: a fitted trend per host and device class, never a per-run division.

Before every run the sweep measures a fixed reference workload on its device. Per host and per device class (the
CPU reference read on the widest CPU counter; on a GPU sweep, the GPU reference read on each GPU's counter for the
GPU domains), log reference energy is fitted against the run order by least squares (a log-linear trend), so one
noisy reference moves no run: a run's correction factor is the fitted trend at its place over the trend's median.
A reference whose ratio to its series' median lies outside ``PLAUSIBLE_FACTOR_BAND`` is refused (named; it is left
out of the fit and its run is not corrected); a domain of a class with no usable reference is left uncorrected and
named, so the report never says "corrected" of it. A reference that moves with lambda cannot tell drift from the
effect: that is a warning. With the interleaved and chunked designs the comparisons are paired within rounds and
need no correction; the report says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from energymeter.domains import CPU, GPU, Domain
from energymeter.kinds import HARDWARE_COUNTER

from ..records.record import RunRecord
from .domains import device_class_of, reference_domain
from .stats import PLAUSIBLE_FACTOR_BAND, StatResult, reference_drift

#: The p-value below which a reference's rank correlation with lambda is a warning.
LAMBDA_CORRELATION_P = 0.05


@dataclass(frozen=True)
class DriftFit:
    """The sweep's drift and the corrections taken from it.

    Attributes:
        drift: The CPU reference's drift on the host with the most runs (the one the report shows), or None.
        factors: Run key -> device class -> the factor that class's figures are divided by (only when asked).
        notes: Plain-language notes: refused references, uncorrected runs and classes, other hosts' drift,
            a reference that moves with lambda.
    """

    drift: StatResult | None
    factors: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


def _reference_domains(domains: Mapping[str, Domain], gpu_reference: bool) -> dict[str, str]:
    """Device class -> the domain its reference is read on (cpu always; gpu only where the reference ran there)."""
    out = {}
    cpu = reference_domain(domains)
    if cpu is not None:
        out[CPU] = cpu
    if gpu_reference:
        gpus = sorted(d.name for d in domains.values() if d.device_class == GPU and d.kind == HARDWARE_COUNTER)
        if gpus:
            out[GPU] = gpus[0]
    return out


def trend_factors(reference_energy_j: Sequence[float]) -> tuple[float, ...]:
    """Per-run factors from the log-linear trend of the references (run order): fitted value over the fitted
    values' median. Fewer than 3 references: no trend (every factor 1)."""
    y = np.log(np.asarray(reference_energy_j, dtype=float))
    n = len(y)
    if n < 3:
        return (1.0,) * n
    x = np.arange(n, dtype=float)
    b = float(((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum())
    fitted = y.mean() + b * (x - x.mean())
    return tuple(float(v) for v in np.exp(fitted - np.median(fitted)))


def _moves_with_lambda(series: Sequence[tuple[RunRecord, float]]) -> float | None:
    """The p-value of the rank correlation of the reference with lambda, where lambda varies (else None)."""
    lams, joules = [r.lam for r, _ in series], [j for _, j in series]
    if len(set(lams)) < 2 or len(set(joules)) < 2 or len(series) < 4:
        return None
    from scipy import stats

    result = stats.spearmanr(lams, joules)
    p = float(result.pvalue)
    return p if math.isfinite(p) else None


def fit_drift(records: Sequence[RunRecord], correct: bool, gpu_reference: bool = False) -> DriftFit:
    """The reference's drift per host and device class, and (when ``correct``) each run's factors.

    Args:
        records: The sweep's runs.
        correct: Whether corrections are asked for (``--drift-correction``).
        gpu_reference: Whether the reference ran on the GPU (a cuda sweep), so GPU domains have one.
    """
    series: dict[tuple[str, str], list[tuple[RunRecord, float]]] = {}
    for r in sorted(records, key=lambda r: (r.run_index is None, r.run_index or 0, r.finished_at)):
        if r.reference is None:
            continue
        for device_class, domain in _reference_domains(r.reference.measurement.domains, gpu_reference).items():
            joules = r.reference.raw_energy_j_per_workload.get(domain, math.nan)
            if joules > 0 and math.isfinite(joules):
                series.setdefault((r.host, device_class), []).append((r, joules))
    notes: list[str] = []
    results: dict[str, StatResult] = {}
    factors: dict[str, dict[str, float]] = {}
    low, high = PLAUSIBLE_FACTOR_BAND
    for (host, device_class), runs in series.items():
        median = float(np.median([j for _, j in runs]))
        kept = [(r, j) for r, j in runs if low <= j / median <= high]
        refused = [r.key for r, j in runs if not low <= j / median <= high]
        if refused:
            notes.append(f"Reference refused on host {host} ({device_class}): {len(refused)} reading(s) outside "
                         f"{low:g}-{high:g}x the series' median, left out of the trend and not corrected: "
                         f"{', '.join(refused[:10])}{' ...' if len(refused) > 10 else ''}.")
        if len(kept) >= 3:
            result = reference_drift([j for _, j in kept])
            if device_class == CPU:
                results[host] = result
            elif result.verdict != "stable":
                notes.append(f"Host {host}: {device_class} reference drift {result.verdict} ({result.reason}).")
            if correct:
                for (r, _), factor in zip(kept, trend_factors([j for _, j in kept])):
                    factors.setdefault(r.key, {})[device_class] = factor
        p = _moves_with_lambda(kept)
        if p is not None and p < LAMBDA_CORRELATION_P:
            notes.append(f"Host {host}: the {device_class} reference moves with lambda (Spearman p={p:.3g}): drift "
                         "cannot be told from the effect there; a correction by it would remove part of the effect.")
    if correct:
        notes.extend(_uncorrected(records, factors))
    if not results:
        return DriftFit(None, factors, tuple(notes))
    main = max(results, key=lambda h: len(series[(h, CPU)]))
    notes += [f"Host {host}: reference drift {result.verdict} ({result.reason})." for host, result in results.items()
              if host != main]
    return DriftFit(results[main], factors, tuple(notes))


def _uncorrected(records: Sequence[RunRecord], factors: Mapping[str, Mapping[str, float]]) -> list[str]:
    """One note naming the runs, and the device classes of runs, that no factor covers."""
    left: list = []
    for r in records:
        classes = {device_class_of(d) for d in r.inference.measurement.domains.values()
                   if d.name in r.inference.measurement.energy_j}
        missing = sorted(classes - set(factors.get(r.key, {})))
        if missing:
            left.append((r.key in factors, f"{r.key} ({', '.join(missing)})"))
    if not left:
        return []
    left = [text for _, text in sorted(left, key=lambda item: item[0])]  # runs with no factor at all first
    corrected = sum(1 for r in records if r.key in factors)
    shown = "; ".join(left[:10]) + (f"; and {len(left) - 10} more" if len(left) > 10 else "")
    return [f"Drift correction: {corrected} of {len(records)} runs corrected (a fitted trend per host and device "
            f"class); left uncorrected (no usable reference for these device classes): {shown}."]
