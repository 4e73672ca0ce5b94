"""Markdown rendering of the report's sections."""

from __future__ import annotations

from .sections import Section


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(sections: list[Section]) -> str:
    """The report as Markdown (plots are only in the HTML report)."""
    lines: list[str] = []
    for s in sections:
        if s.figures:
            continue
        lines += ["#" * s.level + " " + s.title, ""]
        for paragraph in s.paragraphs:
            lines += [f"**{paragraph}**" if s.emphasis else paragraph, ""]
        if s.items:
            lines += [f"- {item}" for item in s.items] + [""]
        if s.headers:
            lines.append("| " + " | ".join(_cell(h) for h in s.headers) + " |")
            lines.append("|" + "---|" * len(s.headers))
            for row in s.rows:
                cells = [f"**{c}**" if i == s.verdicts else c for i, c in enumerate(row)]
                lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"
