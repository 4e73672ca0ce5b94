"""One line of ``results.jsonl`` parsed within limits, so a hostile line fails alone, with its reason.

Python's ``json`` reads ``NaN``, ``Infinity``, ``1e400`` (as inf) and integers of any length, and
recurses once per level of nesting. A results line is refused here, with the field named, when it
holds a non-finite number, a number out of a float's range, an integer longer than ``MAX_INT_DIGITS``
digits, nesting deeper than ``MAX_DEPTH``, or more than ``MAX_LINE_CHARS`` characters.
"""

from __future__ import annotations

import json
import math
from typing import Any

from .record import RecordError

#: Longest line read (characters): a sweep's record is a few kilobytes.
MAX_LINE_CHARS = 8 * 1024 * 1024
#: Deepest nesting of objects and arrays read (a record nests about 6 deep).
MAX_DEPTH = 32
#: Longest integer read (digits): any count or seed of a record fits in 20.
MAX_INT_DIGITS = 24


class _Refused:
    """A number the line held that no record may hold; reported with its place once parsing is done."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _parse_int(text: str) -> int | _Refused:
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        return _Refused(f"an integer of {digits} digits (at most {MAX_INT_DIGITS} are read)")
    return int(text)


def _parse_float(text: str) -> float | _Refused:
    value = float(text)
    if not math.isfinite(value):
        return _Refused(f"{text[:24]} is outside a float's range")
    return value


def _parse_constant(name: str) -> _Refused:
    return _Refused(f"{name} is not a finite number")


def parse_line(line: str) -> Any:
    """The JSON value of one results line.

    Raises:
        RecordError: not JSON, or beyond a limit of this module; the message names the field.
    """
    if len(line) > MAX_LINE_CHARS:
        raise RecordError(f"a line of {len(line):,} characters (at most {MAX_LINE_CHARS:,} are read)")
    try:
        data = json.loads(line, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant)
    except json.JSONDecodeError as exc:
        tail = "; the run was interrupted while writing it" if not line.endswith("\n") else ""
        raise RecordError(f"not valid JSON ({exc.msg} at column {exc.colno}){tail}") from None
    except RecursionError:
        raise RecordError(f"nested deeper than {MAX_DEPTH} levels") from None
    _check(data)
    return data


def _check(data: Any) -> None:
    """Walk the parsed value (no recursion): refuse a refused number or nesting beyond ``MAX_DEPTH``."""
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, _Refused):
            raise RecordError(f"{path or 'the line'}: {value.reason}")
        if isinstance(value, (dict, list)):
            if depth >= MAX_DEPTH:
                raise RecordError(f"{path or 'the line'}: nested deeper than {MAX_DEPTH} levels")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                stack.append((item, f"{path}.{key}" if path and isinstance(key, str) else
                              f"{path}[{key}]" if not isinstance(key, str) else key, depth + 1))
