"""Drawing a window's power timeline (``energymeter measure --timeline out.png|out.html``), with matplotlib.

matplotlib is imported only when a timeline is drawn (the ``validate`` extra installs it). Where the user has
not chosen ``MPLCONFIGDIR``, its font cache goes to a private temporary directory removed at exit, never to
``~/.cache``: nothing is written but the file asked for.
"""

from __future__ import annotations

import atexit
import base64
import html
import io
import os
import shutil
import tempfile
from typing import Any

#: The file types a timeline is drawn to, by suffix.
FORMATS = (".png", ".html", ".htm")


def check_available() -> None:
    """Raise ModuleNotFoundError (named ``matplotlib``) where matplotlib is missing, before a command runs."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        raise ModuleNotFoundError("No module named 'matplotlib'", name="matplotlib")


def _pyplot() -> Any:
    if "MPLCONFIGDIR" not in os.environ:
        private = tempfile.mkdtemp(prefix="energymeter-mpl-")
        atexit.register(shutil.rmtree, private, True)
        os.environ["MPLCONFIGDIR"] = private
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png_bytes(m: Any) -> bytes:
    """The timeline of Measurement ``m`` as a PNG: power per domain (W, one step line each, labelled with its
    provenance) against seconds since the window opened, the window's opening and closing marked.

    Raises:
        ValueError: ``m`` kept no timeline.
    """
    if not m.timeline:
        raise ValueError(f"window {m.name!r} kept no timeline (measure it with timeline_period_s=)")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.2))
    try:
        domains = sorted({d for _, power in m.timeline for d in power})
        for domain in domains:
            # Each point is the mean power over the interval ending at its t_s: a step drawn back to the previous t.
            ts, watts, previous = [], [], 0.0
            for t_s, power in m.timeline:
                if domain in power:
                    ts += [previous, t_s]
                    watts += [power[domain], power[domain]]
                else:  # no figure for this interval: a gap in the line
                    ts.append(t_s)
                    watts.append(float("nan"))
                previous = t_s
            provenance = m.domains[domain].provenance if domain in m.domains else "?"
            ax.plot(ts, watts, label=f"{domain} ({provenance})")
        for x_s, label, side in ((0.0, " window opens", "left"), (m.duration_s, "window closes ", "right")):
            ax.axvline(x_s, color="0.3", linestyle="--", linewidth=1)
            ax.annotate(label, (x_s, 0.98), xycoords=("data", "axes fraction"), va="top", ha=side, fontsize=8,
                        color="0.3")
        ax.set_xlabel("time since the window opened (s)")
        ax.set_ylabel("power (W)")
        total = f"{m.total_energy_j:.3f} J {m.total_provenance}" if m.total_provenance else "no energy domain"
        ax.set_title(f"{m.name}: {m.duration_s:.3f} s, {total}", fontsize=10)
        ax.set_ylim(bottom=0)
        ax.margins(x=0.02)
        if domains:
            ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=min(len(domains), 4),
                      frameon=False)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=100)
        return buffer.getvalue()
    finally:
        plt.close(fig)


def html_page(m: Any) -> str:
    """A self-contained HTML page: the PNG of ``png_bytes`` embedded, and the window's figures."""
    from .notebook_html import measurement_html

    image = base64.b64encode(png_bytes(m)).decode("ascii")
    title = html.escape(f"energymeter timeline: {m.name}")
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head><body>"
            f"<h1>{title}</h1><img alt=\"power per domain over the window\" src=\"data:image/png;base64,{image}\">"
            f"{measurement_html(m)}</body></html>\n")


def render(m: Any, path: str) -> bytes:
    """``m``'s timeline as the bytes of the file ``path`` names: a PNG, or an HTML page for ``.html``/``.htm``."""
    return html_page(m).encode("utf-8") if path.lower().endswith((".html", ".htm")) else png_bytes(m)
