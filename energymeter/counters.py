"""What a hardware energy counter does where it runs: how often it updates, its step, the idle power it saw.

``CounterCharacter`` holds one domain's figures, each with its provenance: ``measured`` (timed on this
machine by ``energymeter.characterise``) or ``published`` (``PUBLISHED``, a backend's figure from its
vendor's documentation or the literature, used wherever a counter was not or could not be characterised).

A window shorter than ``MIN_WINDOW_UPDATES`` update periods of a counter it reads gets a warning naming
both figures (``short_window_warnings``): a counter that updates every 100 ms reads 0 or one whole step
over a 10 ms window, so a short window's joules say more about the phase of the updates than the work.
``min_window_s`` is the shortest window that rule accepts; the validation sweep takes its minimum window
from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

MEASURED = "measured"
PUBLISHED = "published"
FIGURE_PROVENANCES = (MEASURED, PUBLISHED)

#: A window should span at least this many updates of each counter it reads: then reading 0 or one whole
#: step too many at its two edges moves its joules by at most about 1/10 of a step per update.
MIN_WINDOW_UPDATES = 10


@dataclass(frozen=True)
class PublishedFigures:
    """A backend's counter as its documentation or the literature describes it.

    Attributes:
        update_period_s: Seconds between counter updates.
        resolution_j: The counter's step (J).
        source: Where the figures come from.
    """

    update_period_s: float
    resolution_j: float
    source: str


#: Backend name -> its published figures. Add one per hardware-counter backend (``register_published``).
PUBLISHED_FIGURES: dict[str, PublishedFigures] = {
    # RAPL: the energy-status MSRs count in units of 1/2^ESU J, ESU 16 by default, i.e. 15.3 uJ (Intel 64 and
    # IA-32 SDM, MSR_RAPL_POWER_UNIT "Energy Status Units"); powercap shows them rounded to whole uJ. They are
    # updated about every millisecond (Haehnel et al., "Measuring Energy Consumption for Short Code Paths Using
    # RAPL", SIGMETRICS PER 2012; the SDM's time unit, 976 us, is the same order).
    "rapl": PublishedFigures(0.001, 15.3e-6, "Intel SDM MSR_RAPL_POWER_UNIT (15.3 uJ); Haehnel et al. 2012 "
                             "(~1 ms updates)"),
    # NVML: nvmlDeviceGetTotalEnergyConsumption counts millijoules "since the driver was last reloaded" (NVML
    # API reference). How often it updates is not documented, and reports disagree: PETSc's manual
    # (PetscLogGpuEnergyMeter) says "every 20-100ms" on newer GPUs; others see about 100 ms, or about 10 ms on
    # some boards; none gives H100/H200 figures. The slower 0.1 s is taken, so the warning errs towards
    # longer windows.
    "nvml": PublishedFigures(0.1, 0.001, "NVML API reference (mJ counter); PETSc manual, PetscLogGpuEnergyMeter "
                             "(20-100 ms updates; the slower 0.1 s taken)"),
}


def register_published(backend: str, figures: PublishedFigures) -> None:
    """Add a backend's published figures.

    Raises:
        ValueError: the backend has figures already (two sources of one figure are an error, not an overwrite).
    """
    if backend in PUBLISHED_FIGURES:
        raise ValueError(f"published counter figures for {backend!r} exist already ({PUBLISHED_FIGURES[backend]})")
    PUBLISHED_FIGURES[backend] = figures


@dataclass(frozen=True)
class CounterCharacter:
    """One hardware domain's counter as characterised here, or as published where it was not.

    Attributes:
        domain: The domain's name (``"gpu:0"``, ``"cpu:0:package"``).
        backend: The backend that reads it.
        update_period_s: Median seconds between changes of the counter's value while it was polled; the
            published period where not measured; None where neither exists.
        update_period_provenance: ``measured`` or ``published`` (``""`` with no figure).
        resolution_j: The smallest non-zero step seen (J): an upper bound of the counter's true unit, since
            one update may hold many units; the published step where not measured; None where neither exists.
        resolution_provenance: ``measured`` or ``published`` (``""`` with no figure).
        idle_power_w: Mean power over the characterisation (W), from the first to the last change seen; None
            where not measured. The machine was not necessarily idle: it is whatever ran meanwhile.
        changes: Changes of the value seen.
        interval_s: Seconds the counter was polled (0 where it was not).
        poll_period_s: Seconds between polls (0 where it was not polled).
        source: Where published figures come from (``""`` where every figure was measured).
        error: Why the counter could not be characterised (its figures are then the published ones), or None.
    """

    domain: str
    backend: str
    update_period_s: float | None
    update_period_provenance: str
    resolution_j: float | None
    resolution_provenance: str
    idle_power_w: float | None = None
    changes: int = 0
    interval_s: float = 0.0
    poll_period_s: float = 0.0
    source: str = ""
    error: str | None = None

    def __post_init__(self) -> None:
        _check_figure(self.domain, "update period", self.update_period_s, self.update_period_provenance)
        _check_figure(self.domain, "resolution", self.resolution_j, self.resolution_provenance)

    @property
    def min_window_s(self) -> float | None:
        """The shortest window this counter resolves (``MIN_WINDOW_UPDATES`` update periods), or None."""
        return None if self.update_period_s is None else MIN_WINDOW_UPDATES * self.update_period_s

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {"domain": self.domain, "backend": self.backend, "update_period_s": self.update_period_s,
                "update_period_provenance": self.update_period_provenance, "resolution_j": self.resolution_j,
                "resolution_provenance": self.resolution_provenance, "idle_power_w": self.idle_power_w,
                "min_window_s": self.min_window_s, "changes": self.changes, "interval_s": self.interval_s,
                "poll_period_s": self.poll_period_s, "source": self.source, "error": self.error}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CounterCharacter":
        """Reads ``to_dict``'s form back (``min_window_s`` is derived, not read).

        Raises:
            KeyError, TypeError, ValueError: a malformed entry.
        """
        def number(key: str) -> float | None:
            value = data.get(key)
            return None if value is None else float(value)

        error = data.get("error")
        return cls(str(data["domain"]), str(data["backend"]), number("update_period_s"),
                   str(data.get("update_period_provenance") or ""), number("resolution_j"),
                   str(data.get("resolution_provenance") or ""), number("idle_power_w"), int(data.get("changes", 0)),
                   float(data.get("interval_s", 0.0)), float(data.get("poll_period_s", 0.0)),
                   str(data.get("source", "")), None if error is None else str(error))


def _check_figure(domain: str, what: str, value: float | None, provenance: str) -> None:
    """A figure is a positive number labelled ``measured`` or ``published``, or None labelled ``""``.

    Raises:
        ValueError: it is not.
    """
    if value is None:
        if provenance:
            raise ValueError(f"{domain}: no {what} cannot be {provenance}")
        return
    if provenance not in FIGURE_PROVENANCES:
        raise ValueError(f"{domain}: {what} provenance must be one of {FIGURE_PROVENANCES}, got {provenance!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{domain}: {what} must be a positive number, got {value!r}")


def published(domain: str, backend: str, error: str | None = None) -> CounterCharacter:
    """A domain's figures as published for its backend (None where the backend has none), with ``error``
    saying why they were not measured (None: not asked)."""
    figures = PUBLISHED_FIGURES.get(backend)
    if figures is None:
        return CounterCharacter(domain, backend, None, "", None, "", source=f"no published figures for {backend}",
                                error=error)
    return CounterCharacter(domain, backend, figures.update_period_s, PUBLISHED, figures.resolution_j, PUBLISHED,
                            source=figures.source, error=error)


def short_window_warnings(characters: Iterable[CounterCharacter], duration_s: float) -> tuple[str, ...]:
    """A warning per counter whose ``MIN_WINDOW_UPDATES`` update periods are longer than a window of ``duration_s``."""
    notes = []
    for c in characters:
        shortest_s = c.min_window_s
        if shortest_s is not None and duration_s < shortest_s:
            notes.append(f"{c.domain}: window of {duration_s:.4f} s is shorter than {MIN_WINDOW_UPDATES} x the "
                         f"counter's {c.update_period_provenance} update period of {c.update_period_s:.4g} s "
                         f"({shortest_s:.3g} s): its joules may be off by a whole update; measure a longer window")
    return tuple(notes)


def min_window_s(characters: Iterable[CounterCharacter], floor_s: float = 0.0) -> float:
    """The shortest window every counter resolves (``MIN_WINDOW_UPDATES`` x the slowest update period), at
    least ``floor_s``."""
    return max([floor_s, *(c.min_window_s for c in characters if c.min_window_s is not None)])
