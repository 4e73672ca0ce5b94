"""A Measurement as the flat ``{name: number}`` a training framework's loggers take, provenance in each name.

Loggers (CSV, TensorBoard, MLflow, W&B) take numbers, not labels, so the label travels in the key:
``energy/<phase>/<provenance>/<domain>_j``, for example ``energy/train_step/measured/cpu_0_package_j``. Beside
the domains: ``energy/<phase>/<provenance>/total_j`` (the total without double counting, with the weakest label
in it), ``energy/<phase>/counted/flops`` (when counted), ``energy/<phase>/duration_s`` and
``energy/<phase>/failed_domains`` (how many domains have no figure for the window; their joules are not in the
total). A domain's name has ``:`` turned into ``_`` (MLflow refuses colons); an aggregate's host prefix stays a
path segment (``energy/train_step/measured/node-3/cpu_0_package_j``).
"""

from __future__ import annotations

import re
from typing import Mapping

from ..measurement import COUNTED, Measurement

#: The first segment of every key energymeter logs.
PREFIX = "energy"
_UNSAFE = re.compile(r"[^A-Za-z0-9_./-]")
_names: dict[str, str] = {}  # domain -> its key segment (a handful of domains, each converted once)


def domain_segment(domain: str) -> str:
    """A domain's name as a key segment: ``cpu:0:package`` -> ``cpu_0_package``; a host prefix stays ``host/``."""
    segment = _names.get(domain)
    if segment is None:
        segment = _names[domain] = _UNSAFE.sub("_", domain)
    return segment


def metric_items(measurement: Measurement, phase: str) -> dict[str, float]:
    """The logger keys of one window (see the module docstring).

    Args:
        measurement: The window (one process's, or an aggregate from ``energymeter.distributed``).
        phase: Names what the window covered: ``train_step``, ``train_epoch``, ``validation``, ...

    Returns:
        Key to value: joules per domain and in total, FLOPs, seconds, the count of failed domains.
    """
    base = f"{PREFIX}/{phase}/"
    provenance: Mapping[str, str] = measurement.provenance
    items = {f"{base}{provenance[d]}/{domain_segment(d)}_j": float(j) for d, j in measurement.energy_j.items()}
    label = measurement.total_provenance
    if label is not None:
        items[f"{base}{label}/total_j"] = float(measurement.total_energy_j)
    if measurement.flops is not None:
        items[f"{base}{COUNTED}/flops"] = float(measurement.flops)
    items[f"{base}duration_s"] = float(measurement.duration_s)
    items[f"{base}failed_domains"] = float(len(measurement.failed))
    return items


__all__ = ["PREFIX", "domain_segment", "metric_items"]
