"""What the GPU backends (NVML, amdsmi) share: their common options and one probe.

A vendor backend says how to load, start and stop its library and how to list its visible GPUs; the probe
here loads the power-ceilings profile and the library, starts it, lists the GPUs, stops it again and says
what it found, a GPU the library cannot open being left out with its reason while the others are used.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from ..errors import ProfileError
from ..measurement import INTEGRATED, MEASURED
from ..profiles import PowerLimits, power_limits
from .base import HARDWARE_COUNTER, Backend, BackendStatus

#: Default power-sampling period for GPUs without an energy counter (seconds).
DEFAULT_SAMPLE_PERIOD_S = 0.05


class GpuBackend(Backend):
    """A GPU library's backend.

    Args:
        mode: ``"auto"`` (the energy counter where the GPU has it) or ``"sampling"`` (always integrate power
            samples, e.g. to compare the two paths on one GPU).
        sample_period_s: Power-sampling period for GPUs without the energy counter (seconds).
        clock: Monotonic clock in seconds.
        power_limits: The power-ceilings profile, a bundled name or a JSON path (default ``"power-limits"``);
            its ``gpu`` ceiling judges counter steps and power samples.
        process_check: Warn in a window's Measurement when other processes use a measured GPU (its counter is
            the whole GPU's); the process list is taken at most once a second.

    Raises:
        ValueError: a mode that is neither, or a sampling period that is not positive.
    """

    kind = HARDWARE_COUNTER
    covers = ("gpu",)
    #: The options every GPU backend takes; a vendor adds its own in front.
    options = ("sample_period_s", "clock", "power_limits", "process_check")
    #: What the probe says when the library cannot be imported (``{exc}``: the error).
    library_missing = "{exc}"
    #: What it says when the library does not start (``{exc}``), and when it sees no GPU.
    not_started = "the library did not start ({exc})"
    none_visible = "no GPU visible"
    #: Errors importing the library raises where it is missing or broken.
    import_errors: tuple[type[BaseException], ...] = (ImportError,)

    def __init__(self, mode: str = "auto", sample_period_s: float = DEFAULT_SAMPLE_PERIOD_S,
                 clock: Callable[[], float] | None = None, power_limits: str | Path = "power-limits",
                 process_check: bool = True) -> None:
        super().__init__()
        if mode not in ("auto", "sampling"):
            raise ValueError(f"{self.name}_mode must be 'auto' or 'sampling', got {mode!r}")
        self.mode = mode
        if not sample_period_s > 0:
            raise ValueError(f"sample_period_s must be positive, got {sample_period_s!r}")
        self.sample_period_s = float(sample_period_s)
        self.clock = clock or time.monotonic
        self.limits_profile = power_limits
        self.process_check = bool(process_check)
        self.limits: PowerLimits | None = None
        self._gpus: list[Any] = []
        #: Visible GPUs left out, and why.
        self.left_out: list[str] = []

    # -- vendor hooks -----------------------------------------------------------------------------------
    def _module(self) -> Any:
        """The library module (imported on first use)."""
        raise NotImplementedError

    def _library_calls(self, module: Any) -> tuple[type, Callable[[], Any], Callable[[], Any]]:
        """The library's exception class, and its start and stop calls."""
        raise NotImplementedError

    def _discover(self, module: Any) -> tuple[list[Any], list[str]]:
        """The visible GPUs the library can open, and a note for each visible one it cannot."""
        raise NotImplementedError

    def _describe(self, gpu: Any) -> str:
        """One GPU in the probe's reason."""
        raise NotImplementedError

    # -- the probe ----------------------------------------------------------------------------------------
    def _probe(self) -> BackendStatus:
        try:
            self.limits = power_limits(self.limits_profile)
        except ProfileError as exc:
            return BackendStatus(self.name, False, str(exc))
        try:
            module = self._module()
        except self.import_errors as exc:
            return BackendStatus(self.name, False, self.library_missing.format(exc=exc))
        error, start, stop = self._library_calls(module)
        try:
            start()
        except error as exc:
            return BackendStatus(self.name, False, self.not_started.format(exc=exc))
        try:
            self._gpus, self.left_out = self._discover(module)
        except error as exc:
            return BackendStatus(self.name, False, f"{self.name}: error while listing GPUs: {exc}")
        finally:
            try:
                stop()
            except error:
                pass  # the probe's verdict stands; the session starts the library afresh
        left_out = "; ".join(self.left_out)
        if not self._gpus:
            return BackendStatus(self.name, False, self.none_visible + (f": {left_out}" if left_out else ""))
        parts = [self._describe(g) for g in self._gpus]
        if left_out:
            parts.append(left_out)
        provenance = MEASURED if all(g.mode == "counter" for g in self._gpus) else INTEGRATED
        return BackendStatus(self.name, True, "; ".join(parts), tuple(g.domain for g in self._gpus), provenance)
