"""The report's opening: the summary (one line per question the sweep asked, with its verdict counts and the
design it rests on) and the claims grouped by question. Formats ``Analysis.questions``; computes nothing."""

from __future__ import annotations

from ..analysis.analysis import Analysis
from ..analysis.stats_core import UNRESOLVED_PERCENT_WIDTH, UNRESOLVED_POINTS_WIDTH, UNRESOLVED_RATIO_SPAN
from .section import Section, verdict_badge

#: How every interval of the report is shown, said once under the summary.
READING = (f"Every interval is 95%. An interval too wide to say anything is printed as \"unresolved (N seeds)\": "
           f"a ratio whose interval spans more than {UNRESOLVED_RATIO_SPAN:g}x, a percent change whose interval is "
           f"wider than {UNRESOLVED_PERCENT_WIDTH:,.0f} points, an accuracy or accuracy change whose interval is "
           f"wider than {UNRESOLVED_POINTS_WIDTH:g} points (the whole scale); an interval a verdict was decided "
           "from is always printed. Intervals are kept to their possible range: accuracy within 0-100%, an "
           "accuracy change within -100..+100 pp (clipped, and marked \"clipped\"), an energy change at or above "
           "-100% (computed on the log scale).")


def summary_section(a: Analysis) -> list[Section]:
    """The summary: a row per question (its verdict counts and design), and how intervals are shown."""
    if not a.questions:
        return []
    return [Section("Summary: the questions this sweep asked", paragraphs=(READING,),
                    headers=("question", "verdicts", "design"),
                    rows=tuple((q.question.text, q.verdicts, "; ".join(q.design)) for q in a.questions))]


def claim_sections(a: Analysis) -> list[Section]:
    """The claims, a subsection per question, after how the families were controlled."""
    out = []
    families = tuple(f.sentence for f in a.families)
    out.append(Section("Claims by question", paragraphs=(
        "Each verdict is read from its 95% interval (one-sided at 0.025); the verdicts of each family are then "
        "controlled together for the family's size, and those that do not survive are inconclusive:",)
        if families else (), items=families))
    for q in a.questions:
        if not q.claims:
            out.append(Section(q.question.text, 3, (q.verdicts + ".",)))
            continue
        out.append(Section(q.question.text, 3, (f"{q.verdicts}. Design: {'; '.join(q.design)}.",),
                           headers=("verdict", "claim"), verdicts=0,
                           rows=tuple((verdict_badge(c.verdict), c.sentence) for c in q.claims)))
    return out
