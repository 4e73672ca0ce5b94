"""JSON read within limits, for files a user or a crashed run may have left in any state.

Python's ``json`` accepts ``NaN``, ``Infinity``, ``1e400`` (as inf) and integers of any length, and
recurses once per level of nesting, so a hostile file escapes as ``RecursionError`` or ``OverflowError``
far from where it was read. ``loads`` refuses, with the place named (``inference.energy_j.gpu:0``), any
non-finite number, a number outside a float's range, an integer longer than ``max_int_digits`` digits
and nesting deeper than ``max_depth``; every refusal is one ``StrictJSONError``.
"""

from __future__ import annotations

import json
import math
from typing import Any

#: Deepest nesting of objects and arrays read by default (the files read here nest under 10 deep).
MAX_DEPTH = 32
#: Longest integer read by default (digits): any count, seed or id of these files fits in 20.
MAX_INT_DIGITS = 24


class StrictJSONError(ValueError):
    """Text that is not JSON, or JSON beyond a limit; ``str()`` names the place and the reason."""


class _Refused:
    """A number the text held that no value may hold; reported with its place once parsing is done."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _parse_float(text: str) -> float | _Refused:
    value = float(text)
    return value if math.isfinite(value) else _Refused(f"{text[:24]} is outside a float's range")


def _parse_constant(name: str) -> _Refused:
    return _Refused(f"{name} is not a finite number")


def loads(text: str, *, max_depth: int = MAX_DEPTH, max_int_digits: int = MAX_INT_DIGITS) -> Any:
    """The JSON value of ``text``, within the limits.

    Raises:
        StrictJSONError: not JSON (the message says where), or beyond a limit (it names the field).
    """
    def parse_int(digits: str) -> int | _Refused:
        n = len(digits.lstrip("-"))
        if n > max_int_digits:
            return _Refused(f"an integer of {n} digits (at most {max_int_digits} are read)")
        return int(digits)

    try:
        data = json.loads(text, parse_int=parse_int, parse_float=_parse_float, parse_constant=_parse_constant)
    except json.JSONDecodeError as exc:
        raise StrictJSONError(f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise StrictJSONError(f"nested deeper than {max_depth} levels") from None
    _check(data, max_depth)
    return data


def _check(data: Any, max_depth: int) -> None:
    """Walk the parsed value (no recursion): refuse a refused number or nesting beyond ``max_depth``."""
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, _Refused):
            raise StrictJSONError(f"{path or 'the value'}: {value.reason}")
        if isinstance(value, (dict, list)):
            if depth >= max_depth:
                raise StrictJSONError(f"{path or 'the value'}: nested deeper than {max_depth} levels")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                place = (f"{path}.{key}" if path else key) if isinstance(key, str) else f"{path}[{key}]"
                stack.append((item, place, depth + 1))
