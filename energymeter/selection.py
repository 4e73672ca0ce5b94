"""Which backends a meter opens: option checks, ``missing=`` and the default selection (by declared kind)."""

from __future__ import annotations

from typing import Any, Sequence

from . import backends as registry
from .backends.base import Backend
from .errors import BackendUnavailable

#: ``missing=`` values: raise for a named backend that cannot run here, or leave it out and say so.
MISSING_RAISE = "raise"
MISSING_SKIP = "skip"

_known_options: tuple[tuple[str, ...], frozenset[str]] = ((), frozenset())


def _check_options(options: dict[str, Any]) -> None:
    """Raise TypeError for an option no backend understands (imports backend classes, probes nothing).

    The known options are collected once per registry content, not per call: ``measure()`` checks its
    options each time it is built.
    """
    global _known_options
    if not options:
        return
    names = tuple(registry.REGISTRY.values())
    if _known_options[0] != names:
        known: set[str] = set()
        for name in registry.names():
            known.update(registry.backend_class(name).options)
        _known_options = (names, frozenset(known))
    known_now = _known_options[1]
    if not known_now.issuperset(options):
        unknown = sorted(set(options) - known_now)
        raise TypeError(f"unknown meter option(s): {', '.join(unknown)}; known: {', '.join(sorted(known_now))}")


def _check_missing(missing: str) -> None:
    if missing not in (MISSING_RAISE, MISSING_SKIP):
        raise ValueError(f"missing must be {MISSING_RAISE!r} or {MISSING_SKIP!r}, got {missing!r}")


def _select(names: Sequence[str] | None, options: dict[str, Any],
            missing: str = MISSING_RAISE) -> tuple[list[Backend], dict[str, str]]:
    """The backends to open, and (with ``missing="skip"``) the named ones left out, with why."""
    _check_options(options)

    def build(name: str) -> Backend:
        cls = registry.backend_class(name)
        if any(k in options for k in cls.options):
            return registry.create(name, options)
        return registry.default_backend(name)

    if names is not None:
        chosen, skipped = [], {}
        for name in dict.fromkeys(names):
            backend = build(name)
            status = backend.probe()
            if not status.available:
                if missing == MISSING_SKIP:
                    skipped[name] = status.reason
                    continue
                raise BackendUnavailable(f"{name}: {status.reason}")
            chosen.append(backend)
        return chosen, skipped
    chosen = [b for b in (build(n) for n in registry.names()) if b.probe().available]
    kept = registry.default_selection([b.name for b in chosen])
    return [b for b in chosen if b.name in kept], {}
