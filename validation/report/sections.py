"""The report's content as sections (title, paragraphs, items, a table): what every text format renders.

Built from an ``Analysis`` only: this module formats numbers, it computes none. ``render_md`` and
``render_html`` turn the same sections into Markdown and HTML.
"""

from __future__ import annotations

import json

from ..analysis.analysis import Analysis
from ..analysis.training_length import level_rule, lookback_epochs
from ..records.manifest import SweepManifest
from .section import Section, fmt, verdict_badge
from .paired import paired_sections
from .summary import claim_sections, summary_section

__all__ = ["Section", "fmt", "metadata_lines", "sections", "verdict_badge"]


def _last_epochs(series: tuple[float | None, ...]) -> str:
    """The epoch the levelling rule compares with and the last three, as ``epoch: ratio``."""
    n = len(series)
    shown = sorted({max(0, n - 1 - lookback_epochs(n))} | set(range(max(0, n - 3), n)))
    return ", ".join(f"{k + 1}: " + ("n/a" if series[k] is None else f"{series[k]:,.1f}x") for k in shown)


def _training_length(a: Analysis) -> list[Section]:
    """E(0)/E on the test split at the last epochs, and whether it had levelled off."""
    rows = [r for r in a.lambda_rows if r.e_ratio_by_epoch]
    if not rows:
        return []
    said = {True: "yes", False: "no: still falling", None: "cannot tell (too few epochs)"}
    return [Section("E(0)/E against training length (test split, under the definition trained with)", 3,
                    paragraphs=(f"Rule: {level_rule()}. A ratio short of the paper's that was still rising "
                                "is \"not reached at this training length\", not a failure of the claim.",
                                f"{sum(r.levelled_off is True for r in rows)} of {len(rows)} rows had levelled off "
                                f"by the last epoch; {sum(r.still_rising for r in rows)} were still rising (train "
                                "longer, --epochs N, to measure where the ratio settles)."),
                    headers=("model", "dataset", "E", "lambda", "epochs", "E(0)/E after epoch (rule's and last)",
                             "levelled off"),
                    rows=tuple((r.model, r.dataset, r.activation_energy_kind, f"{r.lam:g}",
                                str(len(r.e_ratio_by_epoch)), _last_epochs(r.e_ratio_by_epoch),
                                "no: still rising" if r.still_rising else said[r.levelled_off])
                               for r in rows))]


def sections(a: Analysis) -> list[Section]:
    """The whole report, in order."""
    out = [Section("energymeter validation report", 1, (a.headline,), emphasis=True), *summary_section(a)]
    if a.warnings:
        out.append(Section("Warnings", items=a.warnings))
    if a.problems:
        out.append(Section("Problems reading results", items=a.problems))
    out += claim_sections(a)
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
        out.append(Section("E(0)/E under each definition of E (paper: about 1000x)", 3,
                           paragraphs=("The paper gives no formula for E. Each run's E is measured under every "
                                       "definition below, whatever penalty it trained with. l2-scale-free and "
                                       "l1-scale-free divide each layer's share by its activation scale (the "
                                       "99.9th percentile of its non-zero outputs, the Loihi conversion's "
                                       "scale, squared for l2): a per-layer rescaling of the weights that changes "
                                       "no prediction moves l2 E by any factor and these not at all.",),
                           headers=("model", "dataset", "trained with", "lambda") + tuple(f"E(0)/E as {k}" for k in kinds),
                           rows=tuple((r.model, r.dataset, r.activation_energy_kind, f"{r.lam:g}")
                                      + tuple(fmt(r.e_ratio_by_kind.get(k), ',.1f', 'x') for k in kinds)
                                      for r in a.lambda_rows if r.lam != 0.0)))
    out.extend(_training_length(a))
    out.append(Section("Energy change per target (ratio lambda / 0 as a percent change; log scale, paired by seed)",
                       3, headers=("model", "dataset", "E", "lambda", "energy", "provenance", "change %", "elasticity",
                                   "verdict"), verdicts=8,
                       rows=tuple((r.model, r.dataset, r.activation_energy_kind, f"{r.lam:g}", target.label,
                                   r.provenance[target], fmt(change, '+.1f'),
                                   fmt(r.elasticity.get(target), '+.2f'), verdict_badge(change.verdict or ''))
                                  for r in a.lambda_rows
                                  for target, change in sorted(r.energy_change.items(), key=lambda i: i[0].label))))
    out.extend(paired_sections(a))
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
        paired = a.inference_rounds or a.training_rounds
        how = ("energies corrected by its fitted trend (per host and device class), except the runs the warnings "
               "name" if a.drift_corrected else "not corrected" + ("" if paired else "; pass --drift-correction"))
        out.append(Section("Drift of the reference workload", paragraphs=(
            f"{a.drift.reason} ({how}).",) + ((
                "This sweep's design pairs each comparison within rounds (inference: "
                f"{a.inference_design}; training: {a.training_design}), which cancels drift: its paired figures "
                "need no correction.",) if paired else ())))
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
