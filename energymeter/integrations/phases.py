"""What every integration shares: one meter per training process, a window per phase, and the aggregate.

A phase (``train_steps``, ``train_epoch``, ``validation``) is a named window of the process's meter. A phase
can be paused and resumed: its figure is then the sum of its segments (``add``), so a training epoch leaves
out the validation loop run in the middle of it, and the shadow pass that counts a new call's FLOPs. Under
``torch.distributed`` (initialised, more than one rank) ``combined`` is ``energymeter.distributed.aggregate``,
a collective: every rank must call it at the same point, and every rank gets the same Measurement, host-wide
domains once per host and GPUs once per id. Frameworks keep their ranks in step, so a hook every rank runs
(a step's end, an epoch's end, a log) is such a point.
"""

from __future__ import annotations

import sys
from types import MappingProxyType as _Proxy
from typing import Any, Sequence

from ..measurement import Measurement
from ..meter import Meter


def add(first: Measurement | None, second: Measurement) -> Measurement:
    """Two segments of one phase, taken on one meter, as one Measurement.

    Joules, seconds and FLOPs add up; a domain that failed in either segment (or has a figure in one only)
    fails in the sum with the reasons; FLOPs are None when either segment has none (a partial sum would
    understate); warnings are kept once each, in order.

    Args:
        first: The sum so far, or None for the first segment.
        second: The next segment.
    """
    if first is None:
        return second
    if not first.failed and not second.failed and first.domains == second.domains:
        return _add_complete(first, second)
    failed = dict(first.failed)
    for domain, reason in second.failed.items():
        failed[domain] = f"{failed[domain]}; {reason}" if domain in failed else reason
    for domain in (first.energy_j.keys() ^ second.energy_j.keys()) - failed.keys():
        failed[domain] = "a segment of this phase has no figure for it"
    energy_j = {d: j + second.energy_j[d] for d, j in first.energy_j.items()
                if d in second.energy_j and d not in failed}
    flops = None if first.flops is None or second.flops is None else first.flops + second.flops
    uncounted = dict(first.uncounted_ops)
    for op, calls in second.uncounted_ops.items():
        uncounted[op] = uncounted.get(op, 0) + calls
    declared = {**first.domains, **second.domains}
    return Measurement(name=first.name, duration_s=first.duration_s + second.duration_s, energy_j=energy_j,
                       flops=flops, uncounted_ops=uncounted, failed=failed,
                       warnings=tuple(dict.fromkeys((*first.warnings, *second.warnings))),
                       start_time_s=first.start_time_s, domains={d: declared[d] for d in (*energy_j, *failed)})


def _add_complete(first: Measurement, second: Measurement) -> Measurement:
    """``add`` of two segments in which every declared domain (the same in both) has its figure: the sum is
    complete too, so it is built without the checked constructor's checks (a step's cost in the callbacks)."""
    e2 = second.energy_j
    energy_j = _Proxy({d: j + e2[d] for d, j in first.energy_j.items()})
    flops = None if first.flops is None or second.flops is None else first.flops + second.flops
    if second.uncounted_ops:
        uncounted = dict(first.uncounted_ops)
        for op, calls in second.uncounted_ops.items():
            uncounted[op] = uncounted.get(op, 0) + calls
        uncounted_ops = _Proxy(uncounted)
    else:
        uncounted_ops = first.uncounted_ops
    w1, w2 = first.warnings, second.warnings
    warnings = tuple(dict.fromkeys((*w1, *w2))) if w1 or w2 else w1
    return Measurement._trusted(first.name, first.duration_s + second.duration_s, energy_j, first.domains, flops,
                                uncounted_ops, warnings, first.start_time_s, first.provenance)


def with_counts(measurement: Measurement, flops: int | None, uncounted_ops: dict[str, int]) -> Measurement:
    """``measurement`` with the FLOPs its parts counted (a phase whose windows name no model, so that no shadow
    pass runs inside it), without the warning that its own window counted none."""
    from ..backends.flops import NOT_COUNTED_WITHOUT_MODEL

    return Measurement(name=measurement.name, duration_s=measurement.duration_s, energy_j=measurement.energy_j,
                       flops=flops, uncounted_ops=uncounted_ops, failed=measurement.failed,
                       warnings=tuple(w for w in measurement.warnings if w != NOT_COUNTED_WITHOUT_MODEL),
                       start_time_s=measurement.start_time_s, domains=measurement.domains)


class Counts:
    """The FLOPs of a longer phase's parts (an epoch's steps), added up as each part closes: None once a part has
    none, since a partial sum would understate; the operators counting skipped, by calls."""

    __slots__ = ("flops", "uncounted_ops")

    def __init__(self) -> None:
        self.flops: int | None = 0
        self.uncounted_ops: dict[str, int] = {}

    def add(self, part: Measurement) -> None:
        """Add one part's counts."""
        if self.flops is not None:
            self.flops = None if part.flops is None else self.flops + part.flops
        for op, calls in part.uncounted_ops.items():
            self.uncounted_ops[op] = self.uncounted_ops.get(op, 0) + calls

    def onto(self, measurement: Measurement) -> Measurement:
        """``measurement`` (the longer phase, whose windows named no model) with these counts."""
        return with_counts(measurement, self.flops, self.uncounted_ops)


def world_size(group: Any = None) -> int:
    """Ranks in ``group`` when torch.distributed is initialised (never importing torch itself), else 1."""
    dist = sys.modules.get("torch.distributed")
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return 1
    return dist.get_world_size(group)


class Phases:
    """Windows by phase over one process's meter, opened where the training runs (after a spawn).

    Args:
        backends: Backend names, or None for the default selection (see ``energymeter.Meter``).
        meter: A Meter to take the windows on instead of one of this object's own (not closed by ``close``).
        group: The torch.distributed group to aggregate over (None: the default group). Under nccl pass a
            gloo group to keep the gather off the GPU, or set each rank's CUDA device first.
        **options: Backend options, as for ``Meter`` (``powercap_root``, ``nvml_module``, ...).
    """

    def __init__(self, backends: Sequence[str] | None = None, *, meter: Meter | None = None, group: Any = None,
                 **options: Any) -> None:
        self._backends, self._options, self._own = backends, options, meter is None
        self.meter = meter
        self.group = group
        self._sums: dict[str, Measurement] = {}  # phase -> its closed segments, added up
        self._open: set[str] = set()

    def start(self) -> None:
        """Open this object's meter (once); a given meter is used as it is."""
        if self.meter is None:
            self.meter = Meter(self._backends, **self._options)

    def close(self) -> None:
        """Close the meter this object opened; windows still open are abandoned."""
        if self._own and self.meter is not None:
            self.meter.close()
            self.meter = None
        self._open.clear()
        self._sums.clear()

    def is_open(self, phase: str) -> bool:
        """Whether a segment of ``phase`` is being measured now."""
        return phase in self._open

    def counts_on_end(self, phase: str) -> bool:
        """Whether closing the open segment of ``phase`` will count a new call's FLOPs on a shadow pass (a
        longer phase open around it is then paused first, to keep that counting out of its joules)."""
        return phase in self._open and self.meter.counts_on_end(phase)  # type: ignore[union-attr]

    def begin(self, phase: str, model: Any = None) -> None:
        """Open a segment of ``phase`` (``model``: the module whose calls' FLOPs it counts)."""
        self.meter.begin_window(phase, model=model)  # type: ignore[union-attr]
        self._open.add(phase)

    def pause(self, phase: str) -> None:
        """Close the open segment of ``phase``, if any, and add it to the phase's sum."""
        if phase in self._open:
            self._open.discard(phase)
            segment = self.meter.end_window(phase)  # type: ignore[union-attr]
            self._sums[phase] = add(self._sums.get(phase), segment)

    def end(self, phase: str) -> Measurement | None:
        """Close ``phase``: the sum of its segments, this rank's own (None when it was never measured)."""
        if phase in self._open:
            self._open.discard(phase)
            last = self.meter.end_window(phase)  # type: ignore[union-attr]
            first = self._sums.pop(phase, None)
            return last if first is None else add(first, last)
        return self._sums.pop(phase, None)

    @property
    def distributed(self) -> bool:
        """Whether ``combined`` aggregates (torch.distributed is initialised with more than one rank)."""
        return world_size(self.group) > 1

    def combined(self, measurement: Measurement) -> Measurement:
        """The aggregate over the group's ranks (a collective; see the module docstring), or ``measurement``
        itself in a single process."""
        if not self.distributed:
            return measurement
        from ..distributed import aggregate

        return aggregate(measurement, group=self.group)


__all__ = ["Counts", "Phases", "add", "with_counts", "world_size"]
