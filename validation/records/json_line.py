"""One line of ``results.jsonl`` parsed within limits, so a hostile line fails alone, with its reason.

The limits are those of ``energymeter.strict_json`` (non-finite numbers, numbers out of a float's
range, integers longer than ``MAX_INT_DIGITS`` digits, nesting deeper than ``MAX_DEPTH``, each refused
with the field named), plus a line longer than ``MAX_LINE_CHARS`` characters.
"""

from __future__ import annotations

from typing import Any

from energymeter.strict_json import MAX_DEPTH, MAX_INT_DIGITS, StrictJSONError, loads

from .record import RecordError

__all__ = ["MAX_DEPTH", "MAX_INT_DIGITS", "MAX_LINE_CHARS", "parse_line"]

#: Longest line read (characters): a sweep's record is a few kilobytes.
MAX_LINE_CHARS = 8 * 1024 * 1024


def parse_line(line: str) -> Any:
    """The JSON value of one results line.

    Raises:
        RecordError: not JSON, or beyond a limit; the message names the field.
    """
    if len(line) > MAX_LINE_CHARS:
        raise RecordError(f"a line of {len(line):,} characters (at most {MAX_LINE_CHARS:,} are read)")
    try:
        return loads(line)
    except StrictJSONError as exc:
        reason = str(exc)
        if reason.startswith("not valid JSON") and not line.endswith("\n"):
            reason += "; the run was interrupted while writing it"
        raise RecordError(reason) from None
