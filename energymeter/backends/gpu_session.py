"""What every GPU library's session shares: energy counters read directly, power integrated on a sampler.

A vendor session (``NvmlSession``, ``AmdsmiSession``) says how to open a GPU's handle, read its raw energy
counter and its power, and which of its library's errors mean the GPU is gone; this class does the rest the
same way for every vendor. Faults degrade one GPU, not the backend: a library error is retried
(``RETRY_DELAYS_S``); one that persists fails that GPU for that read and bumps its epoch, so only windows
spanning it fail; an error the vendor calls sticky (NVML's ``GPU is lost``) fails it for the session. A counter
step that goes backwards (unless it is a plausible wrap of the counter's width) or exceeds the ceiling, and a
power sample outside 0..ceiling, are faults of the same kind.
"""

from __future__ import annotations

import threading
import time
from types import MappingProxyType
from typing import Any, Callable, Mapping

from ..domains import DEVICE, GPU, Domain
from ..kinds import HARDWARE_COUNTER
from ..measurement import INTEGRATED, MEASURED
from .base import EnergySession, Poller, Reading, step_allowance_s
from .gpu_sharing import SharingWatch

#: Pauses before each retry of a failed library query (s): three quick retries, 7 ms in all, ride out a
#: driver that is briefly busy without stalling a window edge for long.
RETRY_DELAYS_S = (0.001, 0.002, 0.004)
#: The wrap poller never reads faster than this (s), whatever the counter's width and the ceiling.
MIN_WRAP_POLL_S = 0.01
_EMPTY: Mapping = MappingProxyType({})


class _Fault(Exception):
    """A query that failed for one GPU (after its retries); ``sticky`` when the GPU is gone for good."""

    def __init__(self, reason: str, sticky: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.sticky = sticky


class GpuSession(EnergySession):
    """Reads counters directly and integrates power for sampling-only GPUs on a thread.

    A subclass starts its library in ``_start_library`` and implements the other hooks below. Each GPU object
    has ``domain``, ``mode`` (``"counter"`` or a sampling mode) and ``uuid``.

    Args:
        module: The library module.
        gpus: The GPUs to read.
        sample_period_s: Power-sampling period (s).
        clock: Monotonic clock in seconds.
        max_power_w: The GPU power ceiling (W).
        step_allowance_s: Seconds at the ceiling allowed on top of a counter step's elapsed time.
        sleep: Pauses between retries (injectable for tests).
        process_check: Warn when other processes use a measured GPU (see ``SharingWatch``).

    Raises:
        BackendUnavailable: the library does not start.
    """

    #: The library's name in fault reasons (``"NVML: GPU is lost"``).
    library = "GPU"
    #: The raw counter's unit in fault reasons.
    counter_unit = "counts"
    #: The published update period of the energy counter (s); shorter windows are warned about.
    counter_update_period_s = 0.1
    #: Widths (as moduli) a backwards counter step may be a wrap of, smallest first (none: no wrap expected).
    counter_moduli: tuple[int, ...] = ()
    #: The library's exception class.
    error_class: type = Exception
    #: GPUs whose counter's update period was measured here (``energymeter.characterise``): their short windows
    #: are warned about from that figure, not from the published one.
    characterised: frozenset[str] = frozenset()

    def __init__(self, module: Any, gpus: list[Any], sample_period_s: float, clock: Callable[[], float],
                 max_power_w: float = 3000.0, step_allowance_s: float = 1.0,
                 sleep: Callable[[float], None] = time.sleep, process_check: bool = True) -> None:
        notes = self._start_library(module, gpus)
        self._start(gpus, sample_period_s, clock, max_power_w, step_allowance_s, sleep, notes, process_check)

    # -- vendor hooks ---------------------------------------------------------------------------------
    def _start_library(self, module: Any, gpus: list[Any]) -> list[str]:
        """Start the library, set ``error_class``; returns the caveats every window gets.

        Raises:
            BackendUnavailable: the library does not start.
        """
        raise NotImplementedError

    def _open_handle(self, gpu: Any) -> Any:
        """The library's handle of ``gpu`` (raises ``error_class``)."""
        raise NotImplementedError

    def _counter_raw(self, gpu: Any, handle: Any) -> int:
        """The raw energy counter (``counter_unit``; raises ``error_class``)."""
        raise NotImplementedError

    def _counter_unit_j(self, gpu: Any) -> float:
        """Joules per raw counter unit."""
        raise NotImplementedError

    def _power_w(self, gpu: Any, handle: Any) -> float:
        """The GPU's power now (W; raises ``error_class``)."""
        raise NotImplementedError

    def _is_sticky(self, exc: BaseException) -> bool:
        """True when the error means the GPU is gone for good (not retried)."""
        return False

    def _pids(self, gpu: Any, handle: Any) -> "list[int] | None":
        """Pids of the processes using the GPU now, or None where the library cannot say."""
        return None

    def _shutdown(self) -> None:
        """Shut the library down."""

    # -- set-up -----------------------------------------------------------------------------------------
    def _start(self, gpus: list[Any], sample_period_s: float, clock: Callable[[], float], max_power_w: float,
               step_allowance_s: float, sleep: Callable[[float], None] = time.sleep,
               notes: "list[str] | None" = None, process_check: bool = True) -> None:
        """Open every GPU's handle and take the first readings (the library is started; ``notes``: the caveats
        every window gets, such as a MIG GPU's counter being the whole GPU's)."""
        self.gpus = gpus
        # One device per GPU, keyed by its UUID, so that ranks sharing a GPU count it once.
        self.domains = {g.domain: Domain(g.domain, GPU, DEVICE, MEASURED if g.mode == "counter" else INTEGRATED,
                                         HARDWARE_COUNTER, g.uuid or "") for g in gpus}
        self.max_power_w = max_power_w
        self._allowance_s = step_allowance_s
        self._clock = clock
        self._sleep = sleep
        self._notes = tuple(notes or ())
        self._lock = threading.Lock()
        #: GPUs failed for the rest of the session, and why.
        self._stuck: dict[str, str] = {}
        self._stuck_view: Mapping[str, str] = _EMPTY
        self._epoch: dict[str, int] = {}
        self._epochs_view: Mapping[str, int] = _EMPTY
        self._reasons_view: Mapping[str, str] = _EMPTY  # GPU -> its latest recovered fault's reason
        self._handles: dict[str, Any] = {}
        for gpu in gpus:
            try:
                self._handles[gpu.domain] = self._open_handle(gpu)
            except self.error_class as exc:
                self._stick(gpu.domain, f"{self.library}: {exc} (the GPU was seen when probed but could not be opened)")
        self._counter_gpus = [g for g in gpus if g.mode == "counter"]
        self._sampling_gpus = [g for g in gpus if g.mode != "counter"]
        self._unit_j = {g.domain: self._counter_unit_j(g) for g in self._counter_gpus}
        # Counter state (raw units): the last raw value (None: re-base at the next good read) and the running total.
        self._last_raw: dict[str, int | None] = {g.domain: None for g in self._counter_gpus}
        self._total_raw: dict[str, int] = {g.domain: 0 for g in self._counter_gpus}
        # Sampling state: cumulative joules and the last (time s, power W) sample (None: after a gap).
        self._integrated_j: dict[str, float] = {g.domain: 0.0 for g in self._sampling_gpus}
        self._last_sample: dict[str, tuple[float, float] | None] = {g.domain: None for g in self._sampling_gpus}
        self._prev_read_start_s = clock()
        with self._lock:
            self._read_counters_locked(None)
            self._sample_locked(None)
        self._sampling = bool(self._sampling_gpus)
        self._sampler = Poller(self.sample, sample_period_s, f"energymeter-{self.library.lower()}-sampler")
        # A counter that may wrap is read at least four times per wrap at the ceiling while a window is open, so
        # no wrap between two window edges goes unseen (the first read after a wrap sees it once).
        self._wrap_poller: Poller | None = None
        if self.counter_moduli and self._counter_gpus:
            wrap_s = min(self.counter_moduli[0] * self._unit_j[g.domain] for g in self._counter_gpus) / max_power_w
            self._wrap_poller = Poller(self.poll_counters, max(wrap_s / 4.0, MIN_WRAP_POLL_S),
                                       f"energymeter-{self.library.lower()}-counters")
        self._sharing = SharingWatch(self._pids_by_domain, clock) if process_check else None

    # -- faults ---------------------------------------------------------------------------------------
    def _stick(self, domain: str, reason: str) -> None:
        self._stuck[domain] = reason
        self._stuck_view = MappingProxyType(dict(self._stuck))

    def _fault(self, domain: str, reason: str, faults: dict[str, str] | None) -> None:
        """Fail a GPU for this read and raise its epoch: windows spanning the fault fail, later ones do not."""
        self._epoch[domain] = self._epoch.get(domain, 0) + 1
        self._epochs_view = MappingProxyType(dict(self._epoch))
        self._reasons_view = MappingProxyType({**self._reasons_view, domain: reason})
        if faults is not None:
            faults[domain] = reason

    def _query(self, gpu: Any, call: Callable[[Any, Any], Any]) -> Any:
        """Run a query on a GPU, retrying transient errors.

        Raises:
            _Fault: the query failed on every attempt, or the GPU is gone (sticky).
        """
        handle = self._handles[gpu.domain]
        error = None
        for delay_s in (*RETRY_DELAYS_S, None):
            try:
                return call(gpu, handle)
            except self.error_class as exc:
                if self._is_sticky(exc):
                    raise _Fault(f"{self.library}: {exc}", sticky=True) from exc
                error = exc
            if delay_s is not None:
                self._sleep(delay_s)
        raise _Fault(f"{self.library}: {error} (still failing after {len(RETRY_DELAYS_S)} retries)")

    def _fail_read(self, domain: str, fault: _Fault, faults: dict[str, str] | None) -> None:
        if fault.sticky:
            self._stick(domain, fault.reason)
        else:
            self._fault(domain, fault.reason, faults)

    # -- energy counters ------------------------------------------------------------------------------
    def _read_counters_locked(self, faults: dict[str, str] | None) -> None:
        clock = self._clock
        start_s = clock()
        values: dict[str, Any] = {}
        for gpu in self._counter_gpus:
            if gpu.domain in self._stuck:
                continue
            try:
                values[gpu.domain] = int(self._query(gpu, self._counter_raw))
            except _Fault as fault:
                values[gpu.domain] = fault
        # Both reads of a step lie within [previous read's start, this read's end]; the allowance grows from one
        # update of the counter (a burst) to the profile's allowance (``base.step_allowance_s``).
        elapsed_s = clock() - self._prev_read_start_s
        budget_s = elapsed_s + step_allowance_s(elapsed_s, self._allowance_s, self.counter_update_period_s)
        self._prev_read_start_s = start_s
        for domain, value in values.items():
            if isinstance(value, _Fault):
                self._last_raw[domain] = None
                self._fail_read(domain, value, faults)
                continue
            last = self._last_raw[domain]
            self._last_raw[domain] = value
            if last is None:
                continue  # first read, or the first after a fault: the new baseline
            self._step(domain, last, value, elapsed_s, budget_s, faults)

    def _step(self, domain: str, last: int, value: int, elapsed_s: float, budget_s: float,
              faults: dict[str, str] | None) -> None:
        """Judge one counter step and add it to the domain's total, or fail the read with the reason."""
        unit_j, ceiling_j = self._unit_j[domain], self.max_power_w * budget_s
        delta = value - last
        if delta < 0:
            # A wrap of the counter's width, where that makes a step the ceiling allows; else a fault.
            wraps = [delta + m for m in self.counter_moduli if (delta + m) * unit_j <= ceiling_j]
            if not wraps:
                self._fault(domain, f"energy counter went backwards ({last} -> {value} {self.counter_unit})", faults)
                return
            delta = wraps[0]
        if delta * unit_j > ceiling_j:
            self._fault(domain, f"energy counter jumped forward by {delta * unit_j:.1f} J in {elapsed_s:.3g} s, "
                        f"above the {self.max_power_w:g} W ceiling (+{budget_s - elapsed_s:.3g} s allowance)", faults)
            return
        self._total_raw[domain] += delta

    def poll_counters(self) -> None:
        """Read every counter once (the wrap poller's call): a fault found here fails the windows spanning it."""
        with self._lock:
            self._read_counters_locked(None)

    # -- power sampling -------------------------------------------------------------------------------
    def sample(self) -> None:
        """Take one power sample of each sampling-only GPU and integrate it (trapezoid rule)."""
        with self._lock:
            self._sample_locked(None)

    def _sample_locked(self, faults: dict[str, str] | None) -> None:
        for gpu in self._sampling_gpus:
            domain = gpu.domain
            if domain in self._stuck:
                continue
            try:
                power_w = float(self._query(gpu, self._power_w))
            except _Fault as fault:
                self._last_sample[domain] = None  # a gap: the trapezoid restarts after it
                self._fail_read(domain, fault, faults)
                continue
            now = self._clock()
            if not 0.0 <= power_w <= self.max_power_w:
                self._last_sample[domain] = None
                self._fault(domain, f"power sample of {power_w:g} W is outside 0..{self.max_power_w:g} W "
                            "(the GPU ceiling)", faults)
                continue
            last = self._last_sample[domain]
            if last is not None:
                self._integrated_j[domain] += (now - last[0]) * (power_w + last[1]) / 2.0
            self._last_sample[domain] = (now, power_w)

    def read(self) -> Reading:
        """Cumulative joules per GPU since the session opened."""
        with self._lock:
            stopped = self._sampler.take_error()
            if stopped is not None:
                # A dead sampler integrates nothing more: its GPUs fail rather than report a two-point trapezoid.
                for gpu in self._sampling_gpus:
                    self._stick(gpu.domain,
                                f"the power sampler stopped ({stopped}); the integral after it would be wrong")
            faults: dict[str, str] = {}
            self._sample_locked(faults)
            self._read_counters_locked(faults)
            stuck = self._stuck
            energy: dict[str, float] = {}
            for domain, total in self._total_raw.items():
                if domain not in stuck and domain not in faults:
                    energy[domain] = total * self._unit_j[domain]
            for domain, joules in self._integrated_j.items():
                if domain not in stuck and domain not in faults:
                    energy[domain] = joules
            failed = MappingProxyType({**stuck, **faults}) if faults else self._stuck_view
            return Reading(energy, failed, self._epochs_view, self._reasons_view)

    def activate(self) -> None:
        """Start the power sampler when any GPU needs it, and the wrap poller of counters that may wrap."""
        if self._sampling:
            self._sampler.start()
        if self._wrap_poller is not None:
            self._wrap_poller.start()

    def deactivate(self) -> None:
        """Stop the pollers."""
        self._sampler.stop()
        if self._wrap_poller is not None:
            self._wrap_poller.stop()

    # -- caveats ----------------------------------------------------------------------------------------
    def _pids_by_domain(self) -> dict[str, "list[int] | None"]:
        """Each readable GPU's process list (None where the library cannot say); one try each, no retries."""
        out: dict[str, list[int] | None] = {}
        for gpu in self.gpus:
            if gpu.domain in self._stuck or gpu.domain not in self._handles:
                continue
            try:
                out[gpu.domain] = self._pids(gpu, self._handles[gpu.domain])
            except self.error_class:
                out[gpu.domain] = None
        return out

    def window_warnings(self, duration_s: float) -> list[str]:
        """Short windows (below the counter's update period or the sampling period), shared GPUs, MIG."""
        notes = []
        for gpu in self.gpus:
            if gpu.domain in self.characterised:
                continue  # its measured update period is warned about by energymeter.characterise
            period = self.counter_update_period_s if gpu.mode == "counter" else self._sampler.period_s
            if duration_s < period:
                what = "energy counter's update period" if gpu.mode == "counter" else "power-sampling period"
                notes.append(f"{gpu.domain}: window of {duration_s:.4f} s is shorter than the {what} "
                             f"(~{period:g} s); its energy is unreliable: measure a longer window")
        notes.extend(self._notes)
        if self._sharing is not None:
            notes.extend(self._sharing.warnings())
        return notes

    def close(self) -> None:
        """Stop the pollers and shut the library down."""
        self._sampler.close()
        if self._wrap_poller is not None:
            self._wrap_poller.close()
        self._shutdown()
