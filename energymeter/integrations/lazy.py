"""A framework's callback class, built on first use so that importing an integration imports no framework."""

from __future__ import annotations

import importlib
from typing import Any, Sequence

_built: dict[tuple[str, str], type] = {}


def import_first(candidates: Sequence[tuple[str, str]], extra: str, who: str) -> Any:
    """The first ``(module, attribute)`` of ``candidates`` that imports.

    Raises:
        ImportError: none imports; the message names the extra that installs the framework.
    """
    for module, attribute in candidates:
        try:
            return getattr(importlib.import_module(module), attribute)
        except ImportError:
            continue
    raise ImportError(f"{who} needs {candidates[0][0]}: pip install 'energymeter[{extra}]'")


def framework_class(module: str, name: str, hooks: type, base: type) -> type:
    """The class ``module.name``: ``hooks`` (the behaviour) on the framework's ``base``, built once.

    Its ``__module__`` and ``__qualname__`` are ``module`` and ``name``, where the module's ``__getattr__``
    returns it, so pickle (a spawned rank) finds it again.
    """
    cls = _built.get((module, name))
    if cls is None:
        cls = _built[(module, name)] = type(name, (hooks, base), {
            "__module__": module, "__qualname__": name, "__doc__": hooks.__doc__})
    return cls
