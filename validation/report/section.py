"""One part of a report (``Section``) and the formatting of its figures (``fmt``, ``verdict_badge``): formats,
computes nothing."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..analysis.intervals import Interval
from ..analysis.stats import StatResult


def fmt(value: Interval | StatResult | None, spec: str = ".3g", suffix: str = "") -> str:
    """``estimate [low, high]`` of an interval or a stat result; ``unresolved (N seeds)`` where the analysis
    found it too wide to say anything; `` clipped`` after one the analysis clipped to its possible range;
    n/a without an estimate."""
    if value is None:
        return "n/a"
    mean = value.mean if isinstance(value, Interval) else value.estimate
    if mean is None or mean != mean:
        return "n/a"
    text = value.fmt(spec, suffix)
    return text + " clipped" if value.clipped and not value.unresolved else text


def verdict_badge(verdict: str) -> str:
    return {"tracks": "TRACKS", "does_not_track": "DOES NOT TRACK", "holds": "HOLDS", "fails": "FAILS"}.get(
        verdict, "INCONCLUSIVE")


@dataclass(frozen=True)
class Section:
    """One part of a report.

    Attributes:
        title: Heading.
        level: Heading level (1 for the title, 2 for sections, 3 for subsections).
        paragraphs: Text before the table.
        items: A bulleted list.
        headers, rows: A table (cells are plain text; ``verdicts`` marks the column holding verdict badges).
        emphasis: Show the paragraphs as a highlighted banner.
    """

    title: str
    level: int = 2
    paragraphs: tuple[str, ...] = ()
    items: tuple[str, ...] = ()
    headers: tuple[str, ...] = ()
    rows: tuple[tuple[str, ...], ...] = ()
    verdicts: int | None = None
    emphasis: bool = False
    figures: tuple[str, ...] = field(default=())


