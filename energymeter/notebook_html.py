"""HTML for Jupyter (``_repr_html_``): a measurement as an escaped table; nothing here imports a notebook library.

Every string that comes from a record (names, reasons, warnings) goes through ``html.escape``: a window named
``<script>`` shows as text.
"""

from __future__ import annotations

import html
from typing import Any, Iterable, Sequence

_CELL = "padding:2px 8px;text-align:{align}"


def table(header: Sequence[str], rows: Iterable[Sequence[Any]], caption: str = "",
          right: Sequence[int] = ()) -> str:
    """An HTML table of escaped cells; the columns numbered in ``right`` are right-aligned (numbers)."""
    def cells(values: Sequence[Any], tag: str) -> str:
        return "".join(f'<{tag} style="{_CELL.format(align="right" if i in right else "left")}">'
                       f"{html.escape(str(v))}</{tag}>" for i, v in enumerate(values))

    body = "".join(f"<tr>{cells(row, 'td')}</tr>" for row in rows)
    head = f"<caption style=\"text-align:left\">{html.escape(caption)}</caption>" if caption else ""
    return f"<table>{head}<thead><tr>{cells(header, 'th')}</tr></thead><tbody>{body}</tbody></table>"


def bullets(items: Iterable[str], title: str) -> str:
    """An escaped list under a bold title; empty when there are no items."""
    items = list(items)
    if not items:
        return ""
    return f"<p><b>{html.escape(title)}</b></p><ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in items) + "</ul>"


def measurement_html(m: Any) -> str:
    """A ``Measurement`` as HTML: one row per domain (joules, provenance, device class, whether it is in the
    total and why not), the total, FLOPs, failures, warnings and a line on its timeline."""
    total = set(m.total_domains)
    rows = []
    for domain in sorted(m.energy_j):
        declaration = m.domains[domain]
        inside = [d for d in m.total_domains if domain in m.domains[d].contains]
        note = "" if domain in total else (f"not in total: inside {', '.join(inside)}" if inside else "not in total")
        rows.append((domain, f"{m.energy_j[domain]:.6f}", declaration.provenance, declaration.device_class, note))
    for domain in sorted(m.failed):
        rows.append((domain, "failed", m.domains[domain].provenance, m.domains[domain].device_class, m.failed[domain]))
    if m.total_provenance is not None:
        incomplete = "" if m.total_complete else f"; incomplete: {', '.join(sorted(m.failed))} failed"
        rows.append(("total", f"{m.total_energy_j:.6f}", m.total_provenance, "",
                     f"{' + '.join(m.total_domains)}{incomplete}"))
    if m.flops is not None:
        rows.append(("flops", f"{m.flops:,d}", "counted", "", ""))
    caption = f"window {m.name!r}: {m.duration_s:.4f} s"
    parts = [table(("domain", "energy (J)", "provenance", "device", "note"), rows, caption, right=(1,))]
    if m.timeline:
        peaks = {}
        for _, power in m.timeline:
            for domain, watts in power.items():
                peaks[domain] = max(watts, peaks.get(domain, watts))
        peak = ", ".join(f"{d} {w:.2f} W" for d, w in sorted(peaks.items()))
        parts.append(f"<p>timeline: {len(m.timeline)} points over {html.escape(f'{m.timeline[-1][0]:.3f}')} s; "
                     f"peak power {html.escape(peak)}</p>")
    if m.uncounted_ops:
        parts.append(bullets((f"{k} x{v}" for k, v in sorted(m.uncounted_ops.items())),
                             "not counted (no FLOP formula)"))
    parts.append(bullets(m.warnings, "warnings"))
    return f'<div class="energymeter-measurement">{"".join(parts)}</div>'
