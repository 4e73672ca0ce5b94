"""A self-contained HTML report: the report's sections as HTML, plots embedded as PNG data URIs."""

from __future__ import annotations

import html

from .sections import Section

STYLE = ("body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222}"
         "table{border-collapse:collapse;font-size:12px;margin:0.5em 0}td,th{border:1px solid #ccc;padding:3px 6px}"
         "th{background:#f0f0f0}.headline{background:#fff3cd;border:1px solid #e0c060;padding:0.8em;font-weight:600}"
         "figure{margin:1em 0}img{max-width:100%}figcaption{font-size:12px;color:#555}"
         ".v{font-weight:700;white-space:nowrap}.v-tracks,.v-holds{color:#116611}"
         ".v-does_not_track,.v-fails{color:#aa1111}.v-inconclusive{color:#8a6d00}")

_BADGE_CLASS = {"TRACKS": "tracks", "DOES NOT TRACK": "does_not_track", "HOLDS": "holds", "FAILS": "fails",
                "INCONCLUSIVE": "inconclusive"}


def html_report(sections: list[Section], figures: dict[str, tuple[str, str]]) -> str:
    """The page. ``figures`` maps a figure id to (caption, base64 PNG)."""
    out = []
    for s in sections:
        if s.figures:
            shown = [figures[f] for f in s.figures if f in figures]
            if shown:
                out.append(f"<h{s.level}>{html.escape(s.title)}</h{s.level}>")
                out += [f"<figure><img alt='{html.escape(c)}' src='data:image/png;base64,{d}'>"
                        f"<figcaption>{html.escape(c)}</figcaption></figure>" for c, d in shown]
            continue
        out.append(f"<h{s.level}>{html.escape(s.title)}</h{s.level}>")
        for paragraph in s.paragraphs:
            out.append(f"<p{' class=headline' if s.emphasis else ''}>{html.escape(paragraph)}</p>")
        if s.items:
            out.append("<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in s.items) + "</ul>")
        if s.headers:
            out.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in s.headers) + "</tr>")
            for row in s.rows:
                cells = []
                for i, cell in enumerate(row):
                    if i == s.verdicts:
                        cells.append(f"<td class='v v-{_BADGE_CLASS.get(cell, 'inconclusive')}'>{html.escape(cell)}</td>")
                    else:
                        cells.append(f"<td>{html.escape(cell)}</td>")
                out.append("<tr>" + "".join(cells) + "</tr>")
            out.append("</table>")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>energymeter validation report</title>"
            f"<style>{STYLE}</style></head><body>{''.join(out)}</body></html>\n")
