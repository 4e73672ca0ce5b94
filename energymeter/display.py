"""Plain-text rendering of measurements and backend statuses (for the CLI; nothing prints by default)."""

from __future__ import annotations

from typing import Iterable

from .backends.base import BackendStatus
from .counters import CounterCharacter
from .measurement import Measurement


def format_measurement(m: Measurement) -> str:
    """A small table: one row per domain with joules, provenance and device class (from its declaration), then
    total, FLOPs, failures, warnings. A domain left out of the total says what contains it, where something does."""
    lines = [f"window {m.name!r}: {m.duration_s:.4f} s"]
    width = max([len(d) for d in (*m.energy_j, *m.failed)] + [len("total")])
    total = set(m.total_domains)
    containers: dict[str, list[str]] = {}
    for domain in m.total_domains:
        for inner in m.domains[domain].contains:
            containers.setdefault(inner, []).append(domain)
    for domain in sorted(m.energy_j):
        declaration = m.domains[domain]
        if domain in total:
            marker = ""
        elif domain in containers:
            marker = f"  (not in total: inside {', '.join(containers[domain])})"
        else:
            marker = "  (not in total)"
        lines.append(f"  {domain:<{width}}  {m.energy_j[domain]:>14.6f} J  {declaration.provenance:<10} "
                     f"{declaration.device_class}{marker}")
    for domain in sorted(m.failed):
        lines.append(f"  {domain:<{width}}  {'failed':>14}    {m.failed[domain]}")
    if m.total_provenance is not None:
        incomplete = "" if m.total_complete else f"; incomplete: {', '.join(sorted(m.failed))} failed"
        lines.append(f"  {'total':<{width}}  {m.total_energy_j:>14.6f} J  {m.total_provenance} "
                     f"({' + '.join(m.total_domains)}{incomplete})")
    else:
        lines.append(f"  {'total':<{width}}  {'n/a':>14}    no energy domain")
    if m.flops is not None:
        lines.append(f"  {'flops':<{width}}  {m.flops:>14,d}    counted")
        if m.uncounted_ops:
            ops = ", ".join(f"{k} x{v}" for k, v in sorted(m.uncounted_ops.items()))
            lines.append(f"  {'':<{width}}  not counted (no FLOP formula): {ops}")
    for warning in m.warnings:
        lines.append(f"  warning: {warning}")
    return "\n".join(lines)


def format_statuses(statuses: Iterable[BackendStatus]) -> str:
    """One line per backend: name, yes/no, domains and reason."""
    lines = []
    for s in statuses:
        domains = f" [{', '.join(s.domains)}]" if s.domains else ""
        provenance = f" {s.provenance}" if s.provenance else ""
        if s.available:
            lines.append(f"{s.name:<10} {'available':<11}{provenance}{domains}: {s.reason}")
        else:  # no provenance for what is not measured here: "unavailable measured" reads as a contradiction
            lines.append(f"{s.name:<10} {'unavailable':<11}{domains}: {s.reason}")
    return "\n".join(lines)


def format_characters(characters: Iterable[CounterCharacter]) -> str:
    """One line per characterised domain: update period, resolution and idle power, each with its provenance."""
    lines = ["counters:"]
    for c in characters:
        if c.update_period_s is None:
            lines.append(f"  {c.domain}: no update period: {c.error or c.source}")
            continue
        figures = [f"update period {c.update_period_s:.4g} s {c.update_period_provenance}"]
        if c.resolution_j is not None:
            figures.append(f"resolution {c.resolution_j:.4g} J {c.resolution_provenance}")
        if c.idle_power_w is not None:
            figures.append(f"idle {c.idle_power_w:.4g} W measured")
        figures.append(f"windows >= {c.min_window_s:.3g} s")
        if c.changes:
            figures.append(f"{c.changes} changes in {c.interval_s:.2f} s")
        why = f" (not characterised: {c.error})" if c.error else ""
        lines.append(f"  {c.domain}: {', '.join(figures)}{why}")
    if len(lines) == 1:
        lines.append("  no hardware counter available")
    return "\n".join(lines)
