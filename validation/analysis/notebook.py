"""An ``Analysis`` as HTML for Jupyter (``Analysis._repr_html_``): its headline, claims and warnings, escaped.

The analysis room formats nothing else: the reports (``validation/report``) are the full rendering. This is the
short view a notebook shows when a cell's value is an Analysis.
"""

from __future__ import annotations

import html
from typing import Any

from energymeter.notebook_html import bullets, table


def analysis_html(a: Any) -> str:
    """Headline, run count, one row per claim (kind, verdict, figure, provenance, sentence), warnings, problems."""
    rows = [(c.kind, c.verdict, c.figure, c.provenance or "", c.sentence) for c in a.claims]
    parts = [f"<p><b>{html.escape(a.headline)}</b></p>",
             f"<p>{a.runs} run(s); measured domains: {html.escape(', '.join(a.measured_domains) or 'none')}</p>",
             table(("claim", "verdict", "figure", "provenance", "sentence"), rows, f"{len(rows)} claim(s)"),
             bullets(a.warnings, "warnings"), bullets(a.problems, "unreadable results lines")]
    return f'<div class="energymeter-analysis">{"".join(parts)}</div>'
