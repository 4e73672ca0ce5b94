"""Reports of a sweep directory: HTML (self-contained, plots embedded), Markdown, CSV and a JSON summary."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from pathlib import Path
from typing import Any

from . import store
from .analysis import Analysis, analyse, energy_targets, proxies

FORMATS = ("html", "md", "csv", "json")


class ReportError(Exception):
    """A directory that holds no readable sweep."""


def load(directory: Path) -> tuple[Analysis, dict[str, Any]]:
    """Read a sweep directory and analyse it.

    Raises:
        ReportError: no results.jsonl, or no valid record in it.
    """
    if not (directory / store.RESULTS_FILE).exists():
        raise ReportError(f"{directory} holds no {store.RESULTS_FILE}: run `energymeter validate --out {directory}` first")
    records, problems = store.read_records(directory)
    records = list(store.unique_by_key(records))
    if not records:
        raise ReportError(f"{directory / store.RESULTS_FILE} holds no valid run record"
                          + (f" ({problems[0]})" if problems else ""))
    sweep: dict[str, Any] = {}
    if (directory / store.SWEEP_FILE).exists():
        try:
            sweep = json.loads((directory / store.SWEEP_FILE).read_text())
        except ValueError:
            problems.append(store.Problem(0, f"{store.SWEEP_FILE} is not valid JSON"))
    return analyse(records, [str(p) for p in problems]), sweep


def _headline(analysis: Analysis) -> str:
    if analysis.measured_domains:
        return f"Energy read from hardware (measured or integrated): {', '.join(analysis.measured_domains)}."
    return ("No measured energy domain exists on this machine (no RAPL counters, no NVIDIA GPU): every energy "
            "figure below is modeled (CPU time x TDP share, Loihi pJ-per-operation tables) or counted (FLOPs, "
            "spikes, synaptic operations). They show what the models predict, not what the hardware drew.")


def _csv_rows(analysis: Analysis) -> list[dict[str, Any]]:
    rows = []
    for r in analysis.records:
        row = {"key": r["key"], "model": r["model"], "dataset": r["dataset"], "lambda": r["lambda"],
               "seed": r["seed"], "test_accuracy": r["test_accuracy"], "activation_energy": r["activation_energy"],
               "activation_sparsity": r["activation_sparsity"]}
        row.update({f"proxy {k}": v for k, v in proxies(r).items()})
        for target, (joules, duration, prov) in energy_targets(r).items():
            row[f"{target} energy_j"] = joules
            row[f"{target} provenance"] = prov
        rows.append(row)
    return rows


def write_csv(analysis: Analysis, path: Path) -> None:
    """One row per run."""
    rows = _csv_rows(analysis)
    fields = list(dict.fromkeys(k for row in rows for k in row))
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def write_json(analysis: Analysis, sweep: dict[str, Any], path: Path) -> None:
    """The analysis summary with the sweep's settings and metadata."""
    store.write_json_atomic(path, {"headline": _headline(analysis), "sweep": sweep, **analysis.to_dict()})


def _fmt(interval: Any, spec: str = ".3g", suffix: str = "") -> str:
    return "n/a" if interval is None else interval.fmt(spec, suffix)


def _carbon_lines(analysis: Analysis, country: str) -> list[str]:
    from .carbon import co2e_g, intensity_g_per_kwh

    intensity, source = intensity_g_per_kwh(country)
    lines = ["", f"## CO2e in {country.upper()} (modeled: joules x {intensity:g} gCO2e/kWh, {source})", "",
             "| energy | mean J per run | gCO2e per run |", "|---|---|---|"]
    per_run = [energy_targets(r) for r in analysis.records]
    for target in sorted({t for targets in per_run for t in targets}):
        values = [targets[target][0] for targets in per_run if target in targets]
        mean = sum(values) / len(values)
        lines.append(f"| {target} | {mean:.4g} | {co2e_g(mean, country):.3g} |")
    return lines


def _loihi_lines(analysis: Analysis) -> list[str]:
    groups: dict[tuple[str, str, float], list[dict[str, Any]]] = {}
    for r in analysis.records:
        if r.get("loihi") and "accuracy" in r["loihi"]:
            groups.setdefault((r["model"], r["dataset"], r["lambda"]), []).append(r["loihi"])
    if not groups:
        return []
    lines = ["", "## Simulated Loihi (rate-coded conversion; means over seeds)", "",
             "| model | dataset | lambda | spiking accuracy % | source accuracy % (same inputs) | spikes per input | "
             "synaptic ops per input | loihi1 energy per input (J, modeled) |", "|---|---|---|---|---|---|---|---|"]
    for (model, dataset, lam), runs in sorted(groups.items()):
        def mean(key: str, scale: float = 1.0, spec: str = ".1f", runs: list[dict[str, Any]] = runs) -> str:
            values = [run[key] for run in runs if run.get(key) is not None]
            return "n/a" if not values else f"{sum(values) / len(values) * scale:{spec}}"
        energies = [run["energy_j_per_sample"]["loihi1"] for run in runs if "loihi1" in run.get("energy_j_per_sample", {})]
        energy = f"{sum(energies) / len(energies):.3g}" if energies else "n/a"
        lines.append(f"| {model} | {dataset} | {lam:g} | {mean('accuracy', 100)} | {mean('source_accuracy', 100)} | "
                     f"{mean('spikes_per_sample', spec=',.0f')} | {mean('synops_per_sample', spec=',.0f')} | {energy} |")
    first = next(iter(groups.values()))[0]
    lines.append(f"\n{first['samples']} test inputs, {first['timesteps']} timesteps each.")
    return lines


def markdown(analysis: Analysis, sweep: dict[str, Any], country: str | None = None) -> str:
    """The report as Markdown (with a modeled CO2e section when ``country`` is given)."""
    lines = ["# energymeter validation report", "", f"**{_headline(analysis)}**", ""]
    if analysis.problems:
        lines += ["## Problems reading results", ""] + [f"- {p}" for p in analysis.problems] + [""]
    lines += ["## Claims", ""] + [f"- {c}" for c in analysis.claims] + [""]
    lines += ["## Per lambda (relative to lambda = 0, same seed; mean [95% t interval] over seeds)", "",
              "| model | dataset | lambda | accuracy % | E per sample | E(0)/E | accuracy change pp | energy change % |",
              "|---|---|---|---|---|---|---|---|"]
    for row in analysis.rows:
        changes = "; ".join(f"{t}: {_fmt(c, '+.1f')}" for t, c in sorted(row.energy_change_pct.items()))
        lines.append(f"| {row.model} | {row.dataset} | {row.lam:g} | {_fmt(row.accuracy, '.2f')} | "
                     f"{_fmt(row.energy, '.4g')} | {_fmt(row.e_ratio, '.1f')} | {_fmt(row.accuracy_change_pp, '+.2f')} | "
                     f"{changes} |")
    lines += _loihi_lines(analysis)
    lines += ["", "## Proxy vs energy correlations (bootstrap 95% intervals)", "",
              "| proxy | energy | provenance | n | Pearson r | Spearman rho | log-log slope | partial r (duration) | note |",
              "|---|---|---|---|---|---|---|---|---|"]
    for c in analysis.correlations:
        slope = "n/a" if c.loglog_slope is None else f"{c.loglog_slope:.3f}"
        partial = "n/a" if c.partial_r_duration is None else f"{c.partial_r_duration:+.2f}"
        lines.append(f"| {c.proxy} | {c.target} | {c.provenance} | {c.n} | {_fmt(c.pearson, '+.2f')} | "
                     f"{_fmt(c.spearman, '+.2f')} | {slope} | {partial} | {c.note} |")
    for title, table in (("accuracy", analysis.anova_accuracy), ("energy", analysis.anova_energy)):
        lines += ["", f"## ANOVA of {title}", ""]
        if table is None:
            lines.append("Not computed: one model and one dataset (needs two levels of a factor).")
        else:
            lines += ["| term | df | F | p | partial eta^2 |", "|---|---|---|---|---|"]
            lines += [f"| {t['term']} | {t['df']:g} | {t['F']:.3g} | {t['p']:.3g} | {t['partial_eta_sq']:.3f} |"
                      for t in table]
    if country:
        lines += _carbon_lines(analysis, country)
    meta = sweep.get("metadata", {})
    lines += ["", "## Metadata", ""]
    lines += [f"- {k}: {v}" for k, v in meta.items() if k != "backends"]
    lines += [f"- backend {b['name']}: {'available' if b['available'] else 'unavailable'} ({b['reason']})"
              for b in meta.get("backends", [])]
    if sweep.get("energy_definition"):
        lines.append(f"- E definition: {sweep['energy_definition']}")
    if sweep.get("config"):
        lines.append(f"- sweep settings: `{json.dumps(sweep['config'], sort_keys=True)}`")
    if sweep.get("idle"):
        lines.append(f"- idle baseline (subtracted; raw kept in results.jsonl): "
                     f"{json.dumps(sweep['idle']['power_w'])} W")
    return "\n".join(lines) + "\n"


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _plots(analysis: Analysis) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    out = []
    targets = sorted({c.target for c in analysis.correlations})
    if targets:
        cols = min(3, len(targets))
        rows = (len(targets) + cols - 1) // cols
        fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.8 * rows), squeeze=False)
        for ax, target in zip(axes.flat, targets):
            pts = [(proxies(r)["E"], energy_targets(r).get(target), r["lambda"]) for r in analysis.records]
            pts = [(e, v[0], lam) for e, v, lam in pts if v is not None]
            xs, ys = np.array([p[0] for p in pts]), np.array([p[1] for p in pts])
            sc = ax.scatter(xs, ys, c=[np.log10(p[2]) if p[2] > 0 else -6 for p in pts], cmap="viridis", s=28)
            corr = next(c for c in analysis.correlations if c.target == target and c.proxy == "E")
            if len(xs) >= 2 and np.ptp(xs) > 0:
                k, b = np.polyfit(xs, ys, 1)
                grid = np.linspace(xs.min(), xs.max(), 50)
                ax.plot(grid, k * grid + b, color="crimson", lw=1)
            prov = corr.provenance
            title = f"{target}\n({prov})  r = " + (f"{corr.pearson.mean:+.2f}" if corr.pearson else "n/a")
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("activation energy E per sample")
            ax.set_ylabel("energy (J)")
            fig.colorbar(sc, ax=ax, label="log10 lambda (0 -> -6)")
        for ax in list(axes.flat)[len(targets):]:
            ax.axis("off")
        fig.tight_layout()
        out.append(("Activation energy E against each energy figure (one point per run, fit in red)", _png(fig)))
        plt.close(fig)
    groups = sorted({(r.model, r.dataset) for r in analysis.rows})
    if groups:
        fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
        first_target = targets[0] if targets else None
        for model, dataset in groups:
            rows = [r for r in analysis.rows if (r.model, r.dataset) == (model, dataset)]
            lams = [max(r.lam, 1e-6) for r in rows]
            for ax, get in zip(axes, (lambda r: r.accuracy, lambda r: r.energy,
                                      lambda r: r.energy_j.get(first_target))):
                vals = [get(r) for r in rows]
                mean = [v.mean if v else float("nan") for v in vals]
                err = [[(v.mean - v.low) if v and v.low is not None else 0 for v in vals],
                       [(v.high - v.mean) if v and v.high is not None else 0 for v in vals]]
                ax.errorbar(lams, mean, yerr=err, marker="o", capsize=3, label=f"{model}/{dataset}")
        for ax, label in zip(axes, ("test accuracy (%)", "E per test sample", f"{first_target} (J)")):
            ax.set_xscale("log")
            ax.set_xlabel("lambda (0 drawn at 1e-6)")
            ax.set_ylabel(label)
        axes[1].set_yscale("log")
        axes[0].legend(fontsize=8)
        fig.tight_layout()
        out.append(("Lambda against accuracy, E and energy (mean, 95% interval over seeds)", _png(fig)))
        plt.close(fig)
    return out


def _md_table_to_html(md: str) -> str:
    """Render the Markdown report's lines as simple HTML (tables, lists, headings)."""
    out, in_table, in_list = [], False, False
    for line in md.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if set("".join(cells)) <= set("-"):
                continue
            tag = "th" if not in_table else "td"
            if not in_table:
                out.append("<table>")
                in_table = True
            out.append("<tr>" + "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in cells) + "</tr>")
            continue
        if in_table:
            out.append("</table>")
            in_table = False
        if line.startswith("- "):
            if not in_list:
                out.append("<ul>")
                in_list = True
            out.append(f"<li>{html.escape(line[2:])}</li>")
            continue
        if in_list:
            out.append("</ul>")
            in_list = False
        if line.startswith("## "):
            out.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line.startswith("# "):
            out.append(f"<h1>{html.escape(line[2:])}</h1>")
        elif line.startswith("**"):
            out.append(f"<p class='headline'>{html.escape(line.strip('*'))}</p>")
        elif line.strip():
            out.append(f"<p>{html.escape(line)}</p>")
    if in_table:
        out.append("</table>")
    if in_list:
        out.append("</ul>")
    return "\n".join(out)


def html_report(analysis: Analysis, sweep: dict[str, Any], country: str | None = None) -> str:
    """A self-contained HTML page (plots embedded as PNG data URIs)."""
    body = _md_table_to_html(markdown(analysis, sweep, country))
    figures = "".join(f"<figure><img alt='{html.escape(caption)}' src='data:image/png;base64,{data}'>"
                      f"<figcaption>{html.escape(caption)}</figcaption></figure>" for caption, data in _plots(analysis))
    marker = "<h2>Per lambda"
    body = body.replace(marker, f"<h2>Plots</h2>{figures}\n{marker}", 1) if marker in body else body + figures
    style = ("body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222}"
             "table{border-collapse:collapse;font-size:12px;margin:0.5em 0}td,th{border:1px solid #ccc;padding:3px 6px}"
             "th{background:#f0f0f0}.headline{background:#fff3cd;border:1px solid #e0c060;padding:0.8em;"
             "font-weight:600}figure{margin:1em 0}img{max-width:100%}figcaption{font-size:12px;color:#555}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>energymeter validation report</title>"
            f"<style>{style}</style></head><body>{body}</body></html>\n")


def write_reports(directory: Path, formats: tuple[str, ...] = FORMATS, country: str | None = None) -> list[Path]:
    """Write the requested report formats into ``directory``; returns the paths written.

    Raises:
        ReportError: nothing readable in the directory.
    """
    analysis, sweep = load(directory)
    written = []
    for fmt in formats:
        path = directory / f"report.{fmt}"
        if fmt == "csv":
            write_csv(analysis, path)
        elif fmt == "json":
            write_json(analysis, sweep, path)
        elif fmt == "md":
            path.write_text(markdown(analysis, sweep, country), encoding="utf-8")
        elif fmt == "html":
            path.write_text(html_report(analysis, sweep, country), encoding="utf-8")
        written.append(path)
    return written
