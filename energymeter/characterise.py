"""Counters characterised where they run: each hardware domain's update period, step and idle power, timed here.

``characterise_session`` polls an open session (``EnergySession.read``) every ``POLL_PERIOD_S`` for at
least ``MIN_DURATION_S``, until each of its counters has changed ``MIN_CHANGES`` times or ``MAX_DURATION_S``
has passed, and gives each domain
a ``energymeter.counters.CounterCharacter``:

* its update period: the median time between changes of its value, each change dated halfway between
  the read that first showed it and the read before (so a period near the poll period is an upper bound);
* its resolution: the smallest non-zero step seen;
* its idle power: the energy from its first change seen to its last over the time between them.

A domain that fails while polled (its read fails, its counter goes backwards or recovers from a fault)
fails alone, with its reason; so does one whose value changed too seldom to be timed. Such a domain, and
any domain no one characterised, keeps its backend's published figures, labelled ``published``. Domains
integrated from power samples have no counter to time: the session warns about windows shorter than its
sampling period itself.

``characterise_plans`` is what ``Meter(characterise=True)`` runs once when it opens; ``characterise_backends``
opens each available hardware-counter backend in turn (``energymeter devices --characterise``, the
validation sweep).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from .counters import MEASURED, CounterCharacter, published, short_window_warnings
from .domains import Domain
from .kinds import HARDWARE_COUNTER

if TYPE_CHECKING:
    from .backends.base import EnergySession
    from .session_plans import SessionPlan

#: Seconds between polls: fast enough to time a counter that updates every millisecond or so.
POLL_PERIOD_S = 0.0005
#: The longest a session is polled (s): a counter must change twice within it to be timed.
MAX_DURATION_S = 2.0
#: Changes of a counter's value to see before it counts as timed (the first is its phase; 5 periods follow).
MIN_CHANGES = 6
#: The shortest a session is polled (s), changes or not: the idle power's span is dated to within about a
#: poll at each end, so a fast counter's idle power over a few polls would be off by tens of percent.
MIN_DURATION_S = 0.25
#: Counter steps are rounded to this many decimals of a joule (nJ), below any counter's step.
_STEP_DECIMALS = 9


class _Trace:
    """What polling has seen of one counter."""

    __slots__ = ("last_j", "change_s", "change_j", "smallest_step_j", "error")

    def __init__(self, first_j: float) -> None:
        self.last_j = first_j
        self.change_s: list[float] = []
        self.change_j: list[float] = []
        self.smallest_step_j: float | None = None
        self.error: str | None = None

    def observe(self, value_j: float, since_s: float, at_s: float) -> None:
        """Take one reading, made at ``at_s``; the reading before it was made at ``since_s``."""
        step_j = round(value_j - self.last_j, _STEP_DECIMALS)
        if step_j == 0:
            return
        if step_j < 0:
            self.error = f"its total went backwards by {-step_j:.6g} J while it was polled"
            return
        self.last_j = value_j
        self.change_s.append((since_s + at_s) / 2)
        self.change_j.append(value_j)
        if self.smallest_step_j is None or step_j < self.smallest_step_j:
            self.smallest_step_j = step_j


def characterise_session(session: "EnergySession", declarations: Mapping[str, Domain], backend: str, *,
                         poll_period_s: float = POLL_PERIOD_S, max_duration_s: float = MAX_DURATION_S,
                         min_changes: int = MIN_CHANGES, min_duration_s: float = MIN_DURATION_S,
                         clock: Callable[[], float] = time.monotonic,
                         sleep: Callable[[float], None] = time.sleep) -> dict[str, CounterCharacter]:
    """Poll an open session and characterise each of its hardware domains (see the module docstring).

    Args:
        session: An open energy session; it is read, never closed here.
        declarations: Its domains' declarations; those of hardware counters are characterised.
        backend: The backend's registry name (for the published figures).
        poll_period_s: Seconds between reads.
        max_duration_s: The longest the session is polled (s); 0: not polled, every counter keeps its
            published figures.
        min_changes: Changes of each counter's value after which polling may stop.
        min_duration_s: Seconds polling goes on for at least (unless ``max_duration_s`` is shorter).
        clock: Monotonic clock (s).
        sleep: Pauses between reads.

    Returns:
        Domain to its figures, for every hardware domain of ``declarations``.
    """
    hardware = {n: d for n, d in declarations.items() if d.kind == HARDWARE_COUNTER}
    out = {n: CounterCharacter(n, backend, None, "", None, "", source="integrated from power samples: no counter "
                               "to time (windows shorter than the sampling period are warned about by the session)")
           for n, d in hardware.items() if d.provenance != MEASURED}
    names = [n for n, d in hardware.items() if d.provenance == MEASURED]
    if max_duration_s <= 0:  # asked not to poll: the published figures, labelled as such
        return {**out, **{n: published(n, backend) for n in names}}
    traces: dict[str, _Trace] = {}
    errors: dict[str, str] = {}
    start_s = read_s = clock()
    epochs: Mapping[str, int] = {}
    try:
        reading = session.read()
    except Exception as exc:  # noqa: BLE001 - every domain of the session fails, with the reason
        errors = dict.fromkeys(names, f"reading the session failed: {type(exc).__name__}: {exc}")
    else:
        epochs = reading.epochs
        for name in names:
            if name in reading.energy_j:
                traces[name] = _Trace(reading.energy_j[name])
            else:
                errors[name] = reading.failed.get(name) or "no reading"
    polling = dict(traces)  # the traces still polled: those that have not failed
    while polling and read_s - start_s < max_duration_s:
        if read_s - start_s >= min_duration_s and all(len(t.change_s) >= min_changes for t in polling.values()):
            break
        sleep(poll_period_s)
        since_s, before_s = read_s, clock()
        try:
            reading = session.read()
        except Exception as exc:  # noqa: BLE001 - as above
            errors.update(dict.fromkeys(polling, f"reading the session failed: {type(exc).__name__}: {exc}"))
            break
        read_s = clock()
        at_s = (before_s + read_s) / 2
        for name, trace in list(polling.items()):
            reason = _failure(reading, name, epochs)
            if reason is None:
                trace.observe(reading.energy_j[name], since_s, at_s)
                reason = trace.error
            if reason is not None:
                errors[name] = reason
                del polling[name]
        epochs = reading.epochs
    polled_s = read_s - start_s
    for name in names:
        trace = traces.get(name)
        if name in errors:
            figures = published(name, backend, f"failed while characterised: {errors[name]}")
        else:
            assert trace is not None
            figures = _figures(name, backend, trace, polled_s, poll_period_s)
        out[name] = replace(figures, changes=0 if trace is None else len(trace.change_s), interval_s=polled_s,
                            poll_period_s=poll_period_s)
    return out


def _failure(reading: Any, name: str, epochs: Mapping[str, int]) -> str | None:
    """Why a reading gives no value of ``name`` to time (failed, missing, or a fault since the last read), or None."""
    if name in reading.failed:
        return reading.failed[name]
    if name not in reading.energy_j:
        return "no reading"
    if reading.epochs.get(name, 0) != epochs.get(name, 0):
        fault = reading.fault_reasons.get(name)
        return "a read failed and recovered while it was polled" + (f": {fault}" if fault else "")
    return None


def _figures(name: str, backend: str, trace: _Trace, polled_s: float, poll_period_s: float) -> CounterCharacter:
    """A counter's figures from what polling saw; the published ones where it changed too seldom to be timed."""
    changes = len(trace.change_s)
    if changes < 2:
        return published(name, backend, f"its value changed {changes} time(s) in {polled_s:.2f} s of polling every "
                                        f"{poll_period_s * 1e3:g} ms: too few to time its updates (an idle, frozen "
                                        "or slow counter)")
    gaps_s = [b - a for a, b in zip(trace.change_s, trace.change_s[1:])]
    span_s = trace.change_s[-1] - trace.change_s[0]
    assert trace.smallest_step_j is not None
    idle_w = (trace.change_j[-1] - trace.change_j[0]) / span_s if span_s > 0 else None
    return CounterCharacter(name, backend, statistics.median(gaps_s), MEASURED, trace.smallest_step_j, MEASURED,
                            idle_w)


def warn_short_windows(session: "EnergySession", characters: Iterable[CounterCharacter]) -> None:
    """Give the session's windows a warning per counter they are too short for (``counters.short_window_warnings``).

    The session's own ``window_warnings`` are kept; a session that warns about short windows itself for the
    counters characterised here (``characterised``, NVML's) leaves those to this warning.
    """
    timed = tuple(c for c in characters if c.update_period_s is not None)
    if not timed:
        return
    own = session.window_warnings
    if hasattr(session, "characterised"):
        session.characterised = frozenset(c.domain for c in timed)  # type: ignore[attr-defined]

    def window_warnings(duration_s: float) -> tuple[str, ...]:
        return (*own(duration_s), *short_window_warnings(timed, duration_s))

    session.window_warnings = window_warnings  # type: ignore[method-assign]


def characterise_plans(plans: "Iterable[SessionPlan]", **options: Any) -> Mapping[str, CounterCharacter]:
    """Characterise every hardware domain of a meter's sessions once, and warn their short windows from then on.

    Args:
        plans: The meter's session plans.
        **options: ``characterise_session``'s keyword arguments.

    Returns:
        Domain to its figures (read-only).
    """
    found: dict[str, CounterCharacter] = {}
    for plan in plans:
        if not any(d.kind == HARDWARE_COUNTER for d in plan.declarations.values()):
            continue
        characters = characterise_session(plan.session, plan.declarations, plan.backend, **options)
        found.update(characters)
        warn_short_windows(plan.session, characters.values())
    return MappingProxyType(found)


def characterise_backends(names: Iterable[str], **options: Any) -> dict[str, CounterCharacter]:
    """Open each available hardware-counter backend of ``names`` in turn, characterise its domains, close it.

    A backend that cannot open fails its domains, with the reason (their figures then published); one
    that is not available here, or is no hardware counter, is left out.

    Args:
        names: Backend registry names.
        **options: ``characterise_session``'s keyword arguments.
    """
    from . import backends as registry
    from .session_plans import declarations_of

    found: dict[str, CounterCharacter] = {}
    for name in names:
        if registry.backend_class(name).kind != HARDWARE_COUNTER:
            continue
        backend = registry.default_backend(name)
        status = backend.probe()
        if not status.available:
            continue
        try:
            session = backend.open()
        except Exception as exc:  # noqa: BLE001 - its domains fail with the reason; the other backends go on
            found.update({d: published(d, name, f"the session did not open: {type(exc).__name__}: {exc}")
                          for d in status.domains})
            continue
        try:
            found.update(characterise_session(session, declarations_of(session, backend), name, **options))
        finally:
            session.close()
    return found
