"""The parts of a meter's window that are not the Meter: the open window's record, the CUDA sync, the result.

``finish`` builds a window's ``Measurement`` from its readings on every path (several sessions, a
failed domain, FLOP counting); the one-session meter's common window is finished in ``Meter`` itself.
"""

from __future__ import annotations

import sys
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Mapping

from .kinds import HARDWARE_COUNTER
from .measurement import Measurement
from .observer import counting_s
from .session_plans import difference

if TYPE_CHECKING:
    from .meter import Meter

_Proxy = MappingProxyType
_EMPTY: Mapping[str, Any] = MappingProxyType({})
_trusted = Measurement._trusted
NOT_COUNTED = object()  # a window the operation counter does not count (any token, None included, is valid)
#: A hardware counter that reads exactly 0 J over a window at least this long (s) did not advance: RAPL
#: updates about every millisecond and NVML's energy counter within tens of milliseconds, so a second of
#: nothing is a frozen counter (some VMs expose them), never a measured zero.
FROZEN_AFTER_S = 1.0


#: What a frozen counter's warning says after its domain's name (``frozen_domains`` finds it in a record).
FROZEN_MARK = ": the counter did not advance over this "


def frozen_warnings(energy_j: Mapping[str, float], domains: Mapping[str, Any], duration_s: float) -> tuple[str, ...]:
    """Warnings for hardware counters that did not advance over a window of ``duration_s`` >= ``FROZEN_AFTER_S``."""
    return tuple(f"{d}{FROZEN_MARK}{duration_s:.2f} s window (a frozen counter, as some VMs expose?): its 0 J is "
                 "not a measurement" for d, j in energy_j.items() if j == 0.0 and domains[d].kind == HARDWARE_COUNTER)


def frozen_domains(warnings: tuple[str, ...]) -> set[str]:
    """The domains a Measurement's ``warnings`` call frozen (see ``frozen_warnings``)."""
    return {w.split(FROZEN_MARK, 1)[0] for w in warnings if FROZEN_MARK in w}


class Window:
    """One open window; every slot is set by the meter as it opens (no ``__init__``: one call fewer per window)."""

    __slots__ = ("start_mono_s", "start_wall_s", "readings", "count_token", "shadow_s")


_no_gpu_torch: Any = None  # the torch module last seen to be built without CUDA and ROCm


def gpu_free_torch() -> bool:
    """Whether the torch imported now is built without CUDA and ROCm (so no window need ever synchronise)."""
    version = getattr(sys.modules.get("torch"), "version", None)
    return version is not None and getattr(version, "cuda", "") is None and getattr(version, "hip", "") is None


def cuda_sync() -> None:
    """Wait for queued CUDA work so it lands inside the window it belongs to."""
    global _no_gpu_torch
    torch = sys.modules.get("torch")
    if torch is None or torch is _no_gpu_torch:
        return  # torch never imported, or built for no GPU: no CUDA work can be queued
    if gpu_free_torch():
        _no_gpu_torch = torch
        return
    cuda = torch.cuda
    if cuda.is_initialized():  # cheap, and implies is_available()
        for index in range(cuda.device_count()):
            cuda.synchronize(index)


def finish(self: "Meter", window: Window, name: Any, end: Any, end_mono_s: float) -> Measurement:
    """A window's Measurement from its closing readings: FLOPs (after the closing energy readings, so outside
    the joules), the difference of each session's readings, the warnings. ``self`` is the meter."""
    duration_s = end_mono_s - window.start_mono_s
    token = window.count_token
    flop_result = None
    if token is not NOT_COUNTED:  # a cached count of a model window first (no list copies), else the whole way
        counter = self._counter
        flop_result = counter.end_fast(token)
        if flop_result is None:
            flop_result = counter.end(token)
    warnings = self._base_warnings
    single = self._single
    if single is not None:  # the common case: one session, no merging
        before = window.readings if self._read_locked is not None else window.readings[0]
        if self._read_locked is None:
            end = end[0]
        if type(end) is tuple and type(before) is tuple and end[0] is before[0]:
            # Two fast readings with one state: integer microjoules, converted once (see difference()).
            energy_j = single.joules(end[1], before[1])
            provenance, failed = single.provenance_proxy, None
        else:
            energy_j, provenance, failed = difference(single, before, end)
        session_warnings = single.session.window_warnings(duration_s)
        if session_warnings:
            warnings = (*warnings, *session_warnings)
    elif not self._plans:
        energy_j, provenance, failed = {}, _EMPTY, {}
    else:
        energy_j, provenance, failed = {}, {}, {}
        extra: list[str] = []
        for plan, before, after in zip(self._plans, window.readings, end):
            e, p, f = difference(plan, before, after)
            energy_j.update(e)
            provenance.update(p)
            failed.update(f)
            extra += plan.session.window_warnings(duration_s)
        warnings = (*warnings, *extra)
        if not failed:
            provenance = self._provenance_proxy
    flops, uncounted = None, _EMPTY
    if flop_result is not None:
        flops, uncounted = flop_result.flops, flop_result.uncounted_ops or _EMPTY
        if flop_result.warnings:
            warnings = (*warnings, *flop_result.warnings)
    elif self._counter is not None:
        warnings = (*warnings, self._counter.not_counted_without_model)
    if self._plans and counting_s() != window.shadow_s:
        inside_s = counting_s() - window.shadow_s - (flop_result.shadow_s if flop_result is not None else 0.0)
        if inside_s > 1e-9:
            warnings = (*warnings, f"this window's joules include {inside_s:.3f} s of FLOP counting (shadow "
                        "passes of windows that ended inside it, of any meter in this process)")
    if duration_s >= FROZEN_AFTER_S and energy_j:
        warnings = (*warnings, *frozen_warnings(energy_j, self._domains_proxy, duration_s))
    if failed:
        return Measurement(name=name, start_time_s=window.start_wall_s, duration_s=duration_s, energy_j=energy_j,
                           flops=flops, uncounted_ops=uncounted, failed=failed, warnings=warnings,
                           domains=self._domains_proxy)
    # Every declared domain has its figure: what the checked constructor would verify was verified
    # when the meter opened, and the mappings passed are read-only views nobody else changes.
    return _trusted(name, duration_s, _Proxy(energy_j), self._domains_proxy, flops,
                    uncounted if type(uncounted) is _Proxy else _Proxy(dict(uncounted)), warnings,
                    window.start_wall_s, provenance)


def lean_result(self: "Meter", name: Any, start_wall_s: float, start_mono_s: float, before: Any, end: Any,
                end_mono_s: float) -> Measurement | None:
    """The Measurement of a one-session window without a counter whose two readings are fast readings with one
    state (integer microjoules, converted once); None for anything else (``finish`` then goes the whole way)."""
    if type(end) is not tuple or type(before) is not tuple or end[0] is not before[0]:
        return None
    single = self._single
    duration_s = end_mono_s - start_mono_s
    warnings = self._base_warnings
    extra = single.session.window_warnings(duration_s)  # type: ignore[union-attr]
    if extra:
        warnings = (*warnings, *extra)
    energy_j = single.joules(end[1], before[1])  # type: ignore[union-attr]
    if duration_s >= FROZEN_AFTER_S:
        warnings = (*warnings, *frozen_warnings(energy_j, self._domains_proxy, duration_s))
    return _trusted(name, duration_s, _Proxy(energy_j), self._domains_proxy, None, _EMPTY, warnings, start_wall_s,
                    single.provenance_proxy)  # type: ignore[union-attr]
