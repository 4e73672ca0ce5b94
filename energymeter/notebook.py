"""The IPython cell magic ``%%measure``: ``%load_ext energymeter``, then a cell runs under ``measure()``.

::

    %%measure [BACKEND ...] [--meter VAR] [-o VAR]
    train_step()

runs the cell in a window and prints its energy (``energymeter.display.format_measurement``). ``BACKEND``
names energy backends (default: every available one, as ``energymeter measure`` takes); ``--meter VAR``
takes the window on the ``Meter`` held in the notebook variable ``VAR`` instead (its backends, options and
timeline); ``-o VAR`` also stores the Measurement in ``VAR``. The latest cell's Measurement is always
``_measurement``. A cell that raises is measured up to the exception, which then propagates. The window also
spans IPython's own work on the cell after it has been compiled (well under a millisecond).
"""

from __future__ import annotations

import shlex
from typing import Any

#: The notebook variable that holds the latest ``%%measure`` cell's Measurement.
LATEST = "_measurement"


def load(ipython: Any) -> None:
    """Register ``%%measure`` on the shell ``ipython``."""
    ipython.register_magic_function(lambda line, cell: measure_cell(ipython, line, cell), magic_kind="cell",
                                    magic_name="measure")


def _parse(line: str) -> tuple[list[str], str | None, str | None]:
    """(backend names, --meter variable, -o variable) of a ``%%measure`` line.

    Raises:
        IPython's UsageError: an option without its variable, an unknown option.
    """
    from IPython.core.error import UsageError

    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"%%measure: {exc}") from None
    names: list[str] = []
    found: dict[str, str] = {}
    while words:
        word = words.pop(0)
        if word in ("--meter", "-o"):
            if not words or not words[0].isidentifier():
                raise UsageError(f"%%measure: {word} needs a variable name")
            found[word] = words.pop(0)
        elif word.startswith("-"):
            raise UsageError(f"%%measure: unknown option {word!r} (usage: %%measure [BACKEND ...] [--meter VAR] "
                             "[-o VAR])")
        else:
            names += [n for n in word.split(",") if n]
    if names and "--meter" in found:
        raise UsageError("%%measure: name backends or --meter, not both (the meter has its own)")
    return names, found.get("--meter"), found.get("-o")


def _window(ipython: Any, names: list[str], meter_var: str | None) -> Any:
    """The ``measure`` object the cell runs in."""
    from IPython.core.error import UsageError

    from . import backends as registry
    from .errors import EnergymeterError
    from .meter import Meter
    from .shared import measure

    if meter_var is not None:
        meter = ipython.user_ns.get(meter_var)
        if not isinstance(meter, Meter):
            raise UsageError(f"%%measure: --meter {meter_var}: no energymeter Meter in that variable")
        return measure(meter=meter, name="cell")
    try:
        for name in names:
            if registry.backend_class(name).kind in (registry.OPERATION_COUNTER, registry.SIMULATOR):
                raise UsageError(f"%%measure: the {name} backend counts work, not energy; a cell has no model= to "
                                 "count (use measure(model=net) in the cell)")
        window = measure(names or registry.energy_names(), name="cell")
        window.meter  # opens (or reuses) the shared meter now, so a backend that cannot run is one line here
        return window
    except EnergymeterError as exc:
        raise UsageError(f"%%measure: {exc}") from None


def measure_cell(ipython: Any, line: str, cell: str) -> None:
    """Run ``cell`` under a window and print its Measurement (see the module docstring)."""
    from .display import format_measurement

    names, meter_var, out_var = _parse(line)
    window = _window(ipython, names, meter_var)
    code = compile(ipython.transform_cell(cell), "<%%measure cell>", "exec")
    try:
        with window:
            exec(code, ipython.user_ns)  # noqa: S102 - the user's own cell, as IPython itself runs it
    finally:
        result = window.result
        if result is not None:
            ipython.user_ns[LATEST] = result
            if out_var is not None:
                ipython.user_ns[out_var] = result
            print(format_measurement(result))
