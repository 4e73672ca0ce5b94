"""The report's content as sections (title, paragraphs, items, a table): what every text format renders.

Built from an ``Analysis`` only: this module formats numbers, it computes none. ``render_md`` and
``render_html`` turn the same sections into Markdown and HTML.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from ..analysis.analysis import Analysis
from ..analysis.intervals import Interval
from ..analysis.stats import StatResult
from ..records.manifest import SweepManifest


def fmt(value: Interval | StatResult | None, spec: str = ".3g", suffix: str = "", scale: float = 1.0,
        shift: float = 0.0) -> str:
    """``estimate [low, high]`` of an interval or a stat result (``(v - shift) * scale``), or n/a."""
    if value is None:
        return "n/a"
    mean = value.mean if isinstance(value, Interval) else value.estimate
    if mean is None or mean != mean:
        return "n/a"
    conv = (lambda v: (v - shift) * scale)
    if value.low is None or value.high is None:
        return f"{conv(mean):{spec}}{suffix} (n={value.n}, no interval)"
    return f"{conv(mean):{spec}}{suffix} [{conv(value.low):{spec}}, {conv(value.high):{spec}}]"


def verdict_badge(verdict: str) -> str:
    return {"tracks": "TRACKS", "does_not_track": "DOES NOT TRACK", "holds": "HOLDS", "fails": "FAILS"}.get(
        verdict, "INCONCLUSIVE")


@dataclass(frozen=True)
class Section:
    """One part of a report.

    Attributes:
        title: Heading.
        level: Heading level (1 for the title, 2 for sections, 3 for subsections).
        paragraphs: Text before the table.
        items: A bulleted list.
        headers, rows: A table (cells are plain text; ``verdicts`` marks the column holding verdict badges).
        emphasis: Show the paragraphs as a highlighted banner.
    """

    title: str
    level: int = 2
    paragraphs: tuple[str, ...] = ()
    items: tuple[str, ...] = ()
    headers: tuple[str, ...] = ()
    rows: tuple[tuple[str, ...], ...] = ()
    verdicts: int | None = None
    emphasis: bool = False
    figures: tuple[str, ...] = field(default=())


def sections(a: Analysis) -> list[Section]:
    """The whole report, in order."""
    out = [Section("energymeter validation report", 1, (a.headline,), emphasis=True)]
    if a.warnings:
        out.append(Section("Warnings", items=a.warnings))
    if a.problems:
        out.append(Section("Problems reading results", items=a.problems))
    families = tuple(f.sentence for f in a.families)
    out.append(Section("Claims", paragraphs=(
        "Each verdict is read from its 95% interval (one-sided at 0.025); the verdicts of each family are then "
        "controlled together for the family's size, and those that do not survive are inconclusive:",) if families
        else (), items=families, headers=("verdict", "kind", "claim"), verdicts=0,
        rows=tuple((verdict_badge(c.verdict), c.kind, c.sentence) for c in a.claims)))
    out.append(Section("Plots", figures=("scatter", "lambda")))
    out.append(Section("Per lambda (paired by seed with lambda = 0; 95% intervals)",
                       headers=("model", "dataset", "E", "lambda", "seeds", "accuracy %", "E per sample", "E(0)/E",
                                "accuracy change pp"),
                       rows=tuple((r.model, r.dataset, r.activation_energy_kind, f"{r.lam:g}", str(r.seeds),
                                   fmt(r.accuracy_pct, '.2f'), fmt(r.activation_energy, '.4g'),
                                   fmt(r.e_ratio, ',.1f', 'x'), fmt(r.accuracy_change_pp, '+.2f'))
                                  for r in a.lambda_rows)))
    kinds = sorted({k for r in a.lambda_rows for k in r.e_ratio_by_kind})
    if kinds:
        out.append(Section("E(0)/E under each definition of E (paper: about 17x in v1, about 1000x in v2)", 3,
                           paragraphs=("The paper gives no formula for E. Each run's E is measured under every "
                                       "definition below, whatever penalty it trained with.",),
                           headers=("model", "dataset", "trained with", "lambda") + tuple(f"E(0)/E as {k}" for k in kinds),
                           rows=tuple((r.model, r.dataset, r.activation_energy_kind, f"{r.lam:g}")
                                      + tuple(fmt(r.e_ratio_by_kind.get(k), ',.1f', 'x') for k in kinds)
                                      for r in a.lambda_rows if r.lam != 0.0)))
    out.append(Section("Energy change per target (ratio lambda / 0 as a percent change; log scale, paired by seed)",
                       3, headers=("model", "dataset", "E", "lambda", "energy", "provenance", "change %", "elasticity",
                                   "verdict"), verdicts=8,
                       rows=tuple((r.model, r.dataset, r.activation_energy_kind, f"{r.lam:g}", target.label,
                                   r.provenance[target], fmt(change, '+.1f'),
                                   fmt(r.elasticity.get(target), '+.2f'), verdict_badge(change.verdict or ''))
                                  for r in a.lambda_rows
                                  for target, change in sorted(r.energy_change.items(), key=lambda i: i[0].label))))
    if a.loihi_rows:
        profiles = tuple(a.loihi_rows[0].energy_j_per_sample)
        out.append(Section("Simulated Loihi (rate-coded conversion; means over seeds, 95% t intervals)",
                           paragraphs=(f"{a.loihi_rows[0].samples} test inputs, {a.loihi_rows[0].timesteps} "
                                       "timesteps each. Energies are modeled (pJ-per-operation profiles).",),
                           headers=("model", "dataset", "E", "lambda", "spiking accuracy %",
                                    "source accuracy % (same inputs)", "spikes per input", "synaptic ops per input")
                           + tuple(f"{p} J per input (modeled)" for p in profiles),
                           rows=tuple((r.model, r.dataset, r.activation_energy_kind, f"{r.lam:g}",
                                       fmt(r.accuracy_pct, '.1f'), fmt(r.source_accuracy_pct, '.1f'),
                                       fmt(r.spikes_per_sample, ',.0f'), fmt(r.synops_per_sample, ',.0f'))
                                      + tuple(fmt(r.energy_j_per_sample.get(p), '.3g') for p in profiles)
                                      for r in a.loihi_rows)))
    out.append(Section("Proxy vs energy correlations (within model x dataset x E groups; cluster bootstrap over seeds; "
                       "spikes and synops vs simulated Loihi energy are left out: that energy is priced from them)",
                       headers=("proxy", "energy", "provenance", "clusters", "estimate", "verdict"), verdicts=5,
                       rows=tuple((proxy, target.label, provenance, str(s.n), f"{s.quantity} {fmt(s, '+.2f')}",
                                   verdict_badge(s.verdict or '')) for proxy, target, provenance, s in a.correlations)))
    for key, title, table in (("accuracy", "accuracy (the paper's response)", a.anova_accuracy),
                              ("energy", "log inference energy (a second table; the paper's figures are for accuracy)",
                               a.anova_energy)):
        if key in a.anova_skipped:
            out.append(Section(f"ANOVA of {title}", paragraphs=(f"Skipped: {a.anova_skipped[key]}.",)))
        elif table is None:
            out.append(Section(f"ANOVA of {title}", paragraphs=(
                "Not computed: one model and one dataset (needs two levels of a factor; `--preset paper`).",)))
        else:
            out.append(Section(f"ANOVA of {title}", headers=("term", "df", "F", "p", "partial eta^2"),
                               rows=tuple((t["term"], f"{t['df']:g}", f"{t['F']:.3g}", f"{t['p']:.3g}",
                                           f"{t['partial_eta_sq']:.3f}") for t in table)))
    if a.drift is not None:
        out.append(Section("Drift of the reference workload", paragraphs=(
            f"{a.drift.reason} ({'energies corrected by it, except the runs the warnings name' if a.drift_corrected else 'not corrected; pass --drift-correction'}).",)))
    if a.carbon_source:
        out.append(Section(f"CO2e (modeled: joules x {a.carbon_source})",
                           headers=("energy", "provenance", "J per run", "gCO2e per run"),
                           rows=tuple((c.target.label, c.provenance, fmt(c.energy_j, c.target.kind.spec),
                                       fmt(c.co2e_g, '.3g'))
                                      for c in a.carbon_rows)))
    out.append(Section("Metadata", items=tuple(metadata_lines(a.sweep))))
    return out


def metadata_lines(sweep: SweepManifest) -> list[str]:
    """The sweep's settings and machine facts, one line each."""
    meta = dict(sweep.metadata)
    lines = [f"{k}: {v}" for k, v in meta.items() if k != "backends"]
    lines += [f"backend {b['name']}: {'available' if b['available'] else 'unavailable'} ({b['reason']})"
              for b in meta.get("backends", [])]
    for kind, text in sweep.activation_energy_definitions.items():
        lines.append(f"E definition {kind}: {text}")
    if sweep.config:
        lines.append(f"sweep settings: {json.dumps(dict(sweep.config), sort_keys=True)}")
    return lines
