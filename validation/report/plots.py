"""Plots of an ``Analysis`` as base64 PNGs (matplotlib, Agg). Axis labels are each figure kind's own
(``figures.FIGURE_KINDS``: net J per workload, net J per run, modeled J per input): per-sample, per-batch and
per-run figures are never labelled alike, and no unit is parsed back out of a label.

Log axes get ticks whose labels cannot overlap (``log_ticks``): decades only, as powers of ten, thinned until
no two labels touch; an axis spanning less than a decade gets a few plain numbers instead of labelled minor
ticks (matplotlib's default, which crowd).
"""

from __future__ import annotations

import base64
import io
import math
from typing import Any

from ..analysis.analysis import Analysis
from ..analysis.figures import sort_key

#: Most major ticks a log axis starts with before thinning.
MAX_LOG_TICKS = 7
#: Points of clear space kept between two tick labels.
LABEL_GAP_PT = 2.0


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def overlapping_labels(fig: Any, axis: Any) -> list[tuple[str, str]]:
    """Pairs of an axis's drawn tick labels (major and minor, inside the view) whose boxes come closer than
    ``LABEL_GAP_PT``."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    gap = LABEL_GAP_PT * fig.dpi / 72
    low, high = sorted(axis.get_view_interval())
    ticks = list(zip(axis.get_majorticklocs(), axis.get_major_ticks()))
    ticks += list(zip(axis.get_minorticklocs(), axis.get_minor_ticks()))
    labels = [t.label1 for loc, t in ticks if low * (1 - 1e-9) <= loc <= high * (1 + 1e-9)
              and t.label1.get_visible() and t.label1.get_text()]
    boxes = [(t.get_text(), t.get_window_extent(renderer).padded(gap / 2)) for t in labels]
    return [(a, b) for i, (a, box_a) in enumerate(boxes) for b, box_b in boxes[i + 1:] if box_a.overlaps(box_b)]


def log_ticks(fig: Any, axis: Any) -> None:
    """Give a log-scaled axis tick labels that do not overlap (see the module docstring)."""
    from matplotlib.ticker import (FuncFormatter, LogFormatterSciNotation, LogLocator, MaxNLocator, NullFormatter,
                                   NullLocator)

    low, high = sorted(axis.get_view_interval())
    if low > 0 and math.log10(high / low) < 1:  # under a decade: plain numbers, a few of them
        for bins in (4, 3, 2, 1):
            axis.set_major_locator(MaxNLocator(nbins=bins, steps=[1, 2, 5, 10], min_n_ticks=1))
            axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.4g}"))
            axis.set_minor_locator(NullLocator())
            if not overlapping_labels(fig, axis):
                return
        return
    axis.set_minor_locator(LogLocator(base=10, subs=tuple(range(2, 10)), numticks=100))
    axis.set_minor_formatter(NullFormatter())
    axis.set_major_formatter(LogFormatterSciNotation(base=10))
    for numticks in range(MAX_LOG_TICKS, 1, -1):
        axis.set_major_locator(LogLocator(base=10, numticks=numticks))
        if not overlapping_labels(fig, axis):
            return


def scatter_figure(a: Analysis) -> Any | None:
    """E against each energy figure, one panel per figure (None without points)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted(a.points, key=sort_key)
    if not names:
        return None
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
    for ax in list(axes.flat)[:len(names)]:
        log_ticks(fig, ax.xaxis)
    return fig


def lambda_figure(a: Analysis) -> Any | None:
    """Lambda against accuracy and E, one line per group (None without a lambda table)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = sorted({(r.model, r.dataset, r.activation_energy_kind) for r in a.lambda_rows})
    if not groups:
        return None
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
    for axis in (axes[0].xaxis, axes[1].xaxis, axes[1].yaxis):
        log_ticks(fig, axis)
    return fig


def figures(a: Analysis) -> dict[str, tuple[str, str]]:
    """Figure id -> (caption, PNG as base64)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: dict[str, tuple[str, str]] = {}
    for key, build, caption in (
            ("scatter", scatter_figure, "Activation energy E against each energy figure, one point per run"),
            ("lambda", lambda_figure, "Lambda against accuracy and E (mean and 95% interval over seeds)")):
        fig = build(a)
        if fig is not None:
            out[key] = (caption, _png(fig))
            plt.close(fig)
    return out
