"""Loops of the window path written out for a fixed count, as ``dataclasses`` and ``namedtuple`` write methods.

A window reads a handful of counters and builds a handful of figures; in CPython a loop, ``map`` or
comprehension over four items costs about as much again as the work itself. These factories generate,
once per count, the same steps written out one by one. The generated source is made of counts alone;
names and file descriptors come in as arguments or defaults, never as text.
"""

from __future__ import annotations

import functools
import os
import types
from typing import Any, Callable

_pread = os.pread


def _compile(source: str, name: str, **namespace: Any) -> Callable[..., Any]:
    exec(source, namespace)  # noqa: S102 - source built from counts only (see the module docstring)
    return namespace[name]


@functools.lru_cache(maxsize=None)
def bounded_reader(n: int) -> Callable[[list[int], list[int], list[int]], tuple[list[int], bool]]:
    """``read(fds, low, high)``: each descriptor's text at offset 0 (``os.pread``, 32 bytes) as an int,
    and whether ``low[i] <= value[i] <= high[i]`` held for every one.

    Raises whatever ``os.pread`` or ``int`` raises (OSError, ValueError).
    """
    zones = range(n)
    names = "".join(f"f{i}, " for i in zones) or "_unused"
    parse = "".join(f"    v{i} = int(pread(f{i}, 32, 0))\n" for i in zones)
    values = ", ".join(f"v{i}" for i in zones)
    checks = " and ".join(f"lo[{i}] <= v{i} <= hi[{i}]" for i in zones) or "True"
    source = (f"def read(fds, lo, hi, pread=_pread, int=int):\n    ({names}) = fds or [None]\n{parse}"
              f"    return [{values}], {checks}\n")  # a chain of comparisons is a bool
    return _compile(source, "read", _pread=_pread)


@functools.lru_cache(maxsize=None)
def _joules_source(n: int) -> Callable[..., dict[str, float]]:
    params = "".join(f", d{i}" for i in range(n))
    items = ", ".join(f"d{i}: (e[{i}] - b[{i}]) / 1e6" for i in range(n))
    return _compile(f"def joules(e, b{params}):\n    return {{{items}}}\n", "joules")


def joules_between(domains: tuple[str, ...]) -> Callable[[list[int], list[int]], dict[str, float]]:
    """``joules(end_uj, begin_uj)``: domain to ``(end - begin) / 1e6`` joules, the integers converted once."""
    template = _joules_source(len(domains))
    # The same code with the names as its parameters' defaults (a partial would cost twice the call).
    return types.FunctionType(template.__code__, template.__globals__, "joules", tuple(domains))
