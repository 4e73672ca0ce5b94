"""Plots of an ``Analysis`` as base64 PNGs (matplotlib, Agg). Axis labels are each figure kind's own
(``figures.FIGURE_KINDS``: net J per workload, net J per run, modeled J per input): per-sample, per-batch and
per-run figures are never labelled alike, and no unit is parsed back out of a label."""

from __future__ import annotations

import base64
import io
import math
from typing import Any

from ..analysis.analysis import Analysis
from ..analysis.figures import sort_key


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def figures(a: Analysis) -> dict[str, tuple[str, str]]:
    """Figure id -> (caption, PNG as base64)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: dict[str, tuple[str, str]] = {}
    names = sorted(a.points, key=sort_key)
    if names:
        cols = min(3, len(names))
        rows = (len(names) + cols - 1) // cols
        fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.8 * rows), squeeze=False)
        for ax, name in zip(axes.flat, names):
            pts = a.points[name]
            sc = ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=28, cmap="viridis",
                            c=[math.log10(p[2]) if p[2] > 0 else -6 for p in pts])
            ax.set_xscale("log")
            ax.set_title(name.label, fontsize=9)
            ax.set_xlabel("activation energy E per test sample (arbitrary units)")
            ax.set_ylabel(name.kind.axis_label)
            fig.colorbar(sc, ax=ax, label="log10 lambda (0 drawn at -6)")
        for ax in list(axes.flat)[len(names):]:
            ax.axis("off")
        fig.tight_layout()
        out["scatter"] = ("Activation energy E against each energy figure, one point per run", _png(fig))
        plt.close(fig)
    groups = sorted({(r.model, r.dataset, r.activation_energy_kind) for r in a.lambda_rows})
    if groups:
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
        for group in groups:
            rows = [r for r in a.lambda_rows if (r.model, r.dataset, r.activation_energy_kind) == group]
            lams = [max(r.lam, 1e-6) for r in rows]
            for ax, get in zip(axes, (lambda r: r.accuracy_pct, lambda r: r.activation_energy)):
                vals = [get(r) for r in rows]
                mean = [v.mean for v in vals]
                err = [[(v.mean - v.low) if v.low is not None else 0 for v in vals],
                       [(v.high - v.mean) if v.high is not None else 0 for v in vals]]
                ax.errorbar(lams, mean, yerr=err, marker="o", capsize=3, label="/".join(group))
        for ax, label in zip(axes, ("test accuracy (%)", "E per test sample (arbitrary units)")):
            ax.set_xscale("log")
            ax.set_xlabel("lambda (0 drawn at 1e-6)")
            ax.set_ylabel(label)
        axes[1].set_yscale("log")
        axes[0].legend(fontsize=8)
        fig.tight_layout()
        out["lambda"] = ("Lambda against accuracy and E (mean and 95% interval over seeds)", _png(fig))
        plt.close(fig)
    return out
