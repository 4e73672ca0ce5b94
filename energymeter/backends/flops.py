"""Counted FLOPs of a window, through torch's public ``torch.utils.flop_counter`` API.

Convention: a multiply-add counts 2 FLOPs (torch's convention); forward and backward are both counted.
Only operators with a formula in torch's registry (``torch.utils.flop_counter.flop_registry``) are
counted (matmuls, convolutions, attention); every other operator is listed in ``uncounted_ops`` rather
than silently counted as 0.

Counting dispatches every operator through Python, several times the cost of the work itself, so it
never runs inside an energy window (the observer effect is a defect):

* A window that names its module (``measure(model=net)``) does not count while it runs. A recording
  ``forward`` on the module (``energymeter.backends.flop_recording``), installed once per module and
  session, records each call's signature
  (tensor shapes, dtypes, devices, requires_grad, other arguments, grad mode); a hook on each
  trainable parameter notes whether backward ran (taken out of the parameters' hook dicts once every
  open window is marked, put back when a window opens: a window of many steps pays one backward's
  marks). When the window ends, *after* the meter has taken its
  closing energy reading, every call signature not seen before is counted once on a **shadow pass**:
  a hook-free copy of the module on the ``meta`` device (no memory, no arithmetic, no side effects on
  the module, its buffers or other hooks) runs the same call, and backward from its outputs where
  backward ran in the window. Counts are cached per (call signature, backward) for the session's
  life, so later windows cost the recorder only. Where a module cannot run on ``meta`` (data-dependent
  shapes, ``.item()``), the shadow pass runs a copy on the real device with the window's inputs.
  The window's FLOPs are those of the module's calls: work outside the module (the loss, the
  optimizer step) is not counted; in common training steps it has no FLOP formula anyway (it would
  be listed as uncounted). Backward, where it ran, is counted for every grad-enabled call.
  A shadow pass runs in a thread of its own, so no counting mode of the caller's thread sees it.
  Windows of the same meter that are open during a shadow pass contain its cost: the meter says so
  in their ``warnings``.
* A window without ``model=`` is counted inline only by a meter that measures no energy (a meter of
  ``["flops"]`` alone). A meter with energy backends gives it ``flops=None`` and a warning that says
  how to count it (``model=``, or a separate ``Meter(["flops"])``).

Inline counts are kept per thread (one ``FlopCounterMode`` per thread, its total read with the public
``get_total_flops()``), so windows on other threads never leak into each other.
"""

from __future__ import annotations

import functools
import importlib.util
import threading
import time
import weakref
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

from ..measurement import COUNTED
from ..observer import add_counting_s
from .base import OPERATION_COUNTER, Backend, BackendStatus, WindowCounter
from .flop_counting import _convert, _Counting, _hook_free_copy, _tensors
from .flop_recording import (ModelWindow, ModuleState, drop_recorders, install, put_marks, uninstall, unpark_marks,
                             window_calls, window_inputs)

DOMAIN = "flops"
_new = object.__new__
_get_ident = threading.get_ident
#: Ready results kept per module for windows of one signature called n times (n > 1), by (signature, n).
_RESULTS_N_KEPT = 64

NOT_COUNTED_WITHOUT_MODEL = (
    "flops: not counted: counting without model= would run inside this window and its joules (several times "
    "the work); pass model=net to count on a shadow pass after the window, or count in a Meter(['flops'])")


@dataclass(frozen=True, slots=True)
class FlopResult:
    """FLOPs of one window.

    Attributes:
        flops: Counted FLOPs, or None when the window could not be counted.
        uncounted_ops: Operator to calls, for operators without a FLOP formula.
        warnings: Why ``flops`` is None, or other caveats.
        shadow_s: Seconds spent on shadow passes when this window ended (outside its energy reading).
    """

    flops: int | None
    uncounted_ops: Mapping[str, int] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    shadow_s: float = 0.0


class FlopsBackend(Backend):
    """FLOP counting with torch's ``FlopCounterMode``; provenance ``counted``."""

    name = "flops"
    kind = OPERATION_COUNTER
    options = ()

    def _probe(self) -> BackendStatus:
        # find_spec looks for torch without importing it: a probe must stay cheap.
        if importlib.util.find_spec("torch") is None:
            return BackendStatus(self.name, False, "torch is not installed; pip install 'energymeter[torch]'", (),
                                 COUNTED)
        return BackendStatus(self.name, True, "torch FlopCounterMode (multiply-add = 2 FLOPs, forward + backward)",
                             (DOMAIN,), COUNTED)

    def _open(self) -> "FlopSession":
        return FlopSession()


class _InlineWindow:
    __slots__ = ("thread", "counting", "start_total", "start_uncounted")

    def __init__(self, counting: _Counting) -> None:
        self.thread = threading.get_ident()
        self.counting = counting
        self.start_total, self.start_uncounted = counting.snapshot()


class FlopSession(WindowCounter):
    """FLOP windows: per-thread inline counting, or shadow passes for windows that name their module."""

    provenance = {DOMAIN: COUNTED}
    not_counted_without_model = NOT_COUNTED_WITHOUT_MODEL

    def __init__(self) -> None:
        import torch

        self._torch = torch
        self._local = threading.local()
        #: Shadow passes run so far (each counts one new call signature).
        self.shadow_passes = 0
        # Hooks stay on a module between windows (registering them per window costs more than the
        # window itself); with no window open on it they return at once.
        # id(module) -> its state; the state holds a weak reference to the module, whose callback drops
        # the entry, so an id reused by a later module never finds a stale state.
        self._modules: dict[int, ModuleState] = {}
        #: Guards the window lists and the module table; a meter may take it for its own bookkeeping
        #: and call the ``*_locked`` methods under it (one lock per window edge).
        self.lock = threading.Lock()

    # -- windows ----------------------------------------------------------------------------------
    def begin(self, model: Any = None) -> _InlineWindow | ModelWindow:
        """Start a window in the calling thread.

        Args:
            model: The ``torch.nn.Module`` the window runs: its calls are counted on a shadow pass when
                the window ends. None counts every operator inline (only for meters measuring no energy).
        """
        if model is not None:
            lock = self.lock  # acquire/release: half the cost of a with statement
            lock.acquire()
            try:
                window = self.begin_locked(model)
            finally:
                lock.release()
            if window is None:  # its first window: the recorder goes on (``_state`` takes the lock itself)
                self._state(model)
                with lock:
                    window = self.begin_locked(model)
            return window  # type: ignore[return-value]
        counting = getattr(self._local, "counting", None)
        if counting is None:
            counting = self._local.counting = _Counting()
        if counting.depth == 0:
            counting.enter()
        counting.depth += 1
        return _InlineWindow(counting)

    def end(self, window: _InlineWindow | ModelWindow) -> FlopResult:
        """Close a window and return its FLOPs (a model window may run shadow passes here)."""
        if type(window) is ModelWindow:
            return self._end_model(window)
        if threading.get_ident() != window.thread:
            return FlopResult(None, {}, ("flops: a FLOP-counting window must end in the thread that began it",))
        counting = window.counting
        total, uncounted = counting.snapshot()
        counting.depth -= 1
        if counting.depth == 0:
            counting.exit()
        ops = {k: n - window.start_uncounted.get(k, 0) for k, n in uncounted.items()
               if n - window.start_uncounted.get(k, 0) > 0}
        return FlopResult(total - window.start_total, ops)

    def begin_locked(self, model: Any) -> ModelWindow | None:
        """``begin(model)`` for a caller holding ``lock``; None where ``model`` has no recorder yet (its first
        window: ``begin`` installs one, which takes the lock)."""
        state = self._modules.get(id(model))
        if state is None or state.module() is not model:
            return None
        window = _new(ModelWindow)  # no __init__: a call frame fewer at every window
        window.thread = _get_ident()
        window.model = model
        window.state = state
        window.first = window.more = None
        window.first_calls = 0
        window.backward_ran = False
        state.marks_idle = False  # this window is not marked
        if state.parked:
            unpark_marks(state)
        windows = state.windows  # copy on write: recorders iterate without a lock
        state.windows = [*windows, window] if windows else (window,)
        return window

    def end_fast(self, window: Any) -> FlopResult | None:
        """The cached result of a model window of one call whose signature was counted before, or None."""
        lock = self.lock
        lock.acquire()
        try:
            return self.end_fast_locked(window)
        finally:
            lock.release()

    def end_fast_locked(self, window: Any) -> FlopResult | None:
        """``end_fast`` for a caller holding ``lock``."""
        if type(window) is not ModelWindow or window.more is not None:
            return None
        calls = window.first_calls
        if calls == 0:
            return None
        signature = window.first
        state = window.state
        backward = window.backward_ran and signature[-1]
        result = (state.results[backward].get(signature) if calls == 1
                  else state.results_n[backward].get((signature, calls)))
        if result is not None:
            windows = state.windows
            state.windows = () if len(windows) == 1 and windows[0] is window else [
                w for w in windows if w is not window]
        return result

    def counts_on_end(self, window: Any) -> bool:
        """Whether ending ``window`` runs a shadow pass: a model window with a call whose count is not cached
        (an inline window counts as it goes)."""
        if type(window) is not ModelWindow:
            return False
        cache, ran = window.state.cache, window.backward_ran
        return any((signature, ran and signature[-1]) not in cache for signature in window_calls(window))

    def _end_model(self, window: ModelWindow) -> FlopResult:
        state = window.state
        with self.lock:
            state.windows = [w for w in state.windows if w is not window] or ()
        if window.first is None:
            return FlopResult(None, {}, ("flops: the named model was not called in this window; nothing was counted",))
        if window.more is None and window.first_calls == 1:  # the common case: one call, already counted
            signature = window.first
            result = state.results[window.backward_ran and signature[-1]].get(signature)
            if result is not None:
                return result
        flops, ops, shadow_s = 0, {}, 0.0
        for signature, calls in window_calls(window).items():
            key = (signature, window.backward_ran and signature[-1])
            counted = state.cache.get(key)
            if counted is None:
                start_s = time.perf_counter()
                args, kwargs = window_inputs(window, signature)
                counted = self._shadow(window.model, args, kwargs, signature[-1], key[1])
                if type(counted) is tuple:  # cached read-only: the fast path above hands it out as it is
                    counted = (counted[0], MappingProxyType(counted[1]))
                    state.results[key[1]][signature] = FlopResult(counted[0], counted[1])
                state.cache[key] = counted
                spent_s = time.perf_counter() - start_s
                add_counting_s(spent_s)  # inside any other window open now, of any meter
                shadow_s += spent_s
            if isinstance(counted, str):
                return FlopResult(None, {}, (counted,), shadow_s)
            flops += counted[0] * calls
            for op, n in counted[1].items():
                ops[op] = ops.get(op, 0) + n * calls
        if window.more is None:  # one signature called n times: ready for the fast path of the next such window
            results_n = state.results_n[window.backward_ran and window.first[-1]]
            if len(results_n) >= _RESULTS_N_KEPT:
                results_n.clear()
            results_n[(window.first, window.first_calls)] = FlopResult(flops, MappingProxyType(dict(ops)))
        return FlopResult(flops, ops, (), shadow_s)

    # -- shadow passes ----------------------------------------------------------------------------
    def _shadow(self, model: Any, args: Any, kwargs: Any, grad_enabled: bool,
                backward: bool) -> tuple[int, dict[str, int]] | str:
        """Count one call of ``model`` (and backward from its outputs) on a hook-free copy, in a new thread."""
        torch = self._torch
        outcome: list[Any] = []

        def on_meta(t: Any) -> Any:
            return torch.empty_like(t, device="meta").requires_grad_(t.requires_grad)

        def on_device(t: Any) -> Any:
            return t.detach().clone().requires_grad_(t.requires_grad)

        def run() -> None:
            errors = []
            for tensor_fn in (on_meta, on_device):
                try:
                    twin = _hook_free_copy(model, tensor_fn)
                    drop_recorders(twin)
                    outcome.append(self._count_call(twin, args, kwargs, tensor_fn, grad_enabled, backward))
                    return
                except Exception as exc:  # noqa: BLE001 - reported in the window's warnings below
                    errors.append(f"{type(exc).__name__}: {exc}")
            outcome.append("flops: the shadow pass could not run this module's call (on meta: "
                           f"{errors[0]}; on its device: {errors[1]}); nothing was counted")

        # A thread of its own: dispatch modes and grad mode are per thread, so no counting mode the caller
        # has entered sees the shadow pass, and the shadow's modes see nothing of the caller's.
        thread = threading.Thread(target=run, name="energymeter-flops-shadow")
        thread.start()
        thread.join()
        with self.lock:
            self.shadow_passes += 1
        return outcome[0]

    def _count_call(self, twin: Any, args: Any, kwargs: Any, tensor_fn: Any, grad_enabled: bool,
                    backward: bool) -> tuple[int, dict[str, int]]:
        torch = self._torch
        tensor_type = torch.Tensor
        args = _convert(args, tensor_fn, tensor_type)
        kwargs = _convert(kwargs, tensor_fn, tensor_type)
        counting = _Counting()
        with torch.set_grad_enabled(grad_enabled):
            counting.enter()
            try:
                out = twin(*args, **kwargs)
                if backward:
                    roots = [t for t in _tensors(out, tensor_type) if t.requires_grad]
                    if roots:
                        torch.autograd.backward(roots, [torch.ones_like(t) for t in roots])
            finally:
                counting.exit()
        return counting.snapshot()

    # -- module recorders -----------------------------------------------------------------------------
    def _state(self, model: Any) -> ModuleState:
        state = self._modules.get(id(model))
        if state is not None and state.module() is model:
            return state
        with self.lock:
            state = self._modules.get(id(model))
            if state is not None and state.module() is model:
                return state
            key = id(model)
            modules = self._modules

            def forget(_: Any, key: int = key) -> None:
                modules.pop(key, None)
            state = modules[key] = ModuleState(weakref.ref(model, forget))
        install(model, state, self._torch)
        trainable = [p for p in model.parameters() if p.requires_grad]
        if trainable and all(hasattr(p, "register_post_accumulate_grad_hook") for p in trainable):
            put_marks(state, trainable, self.lock)
        else:
            state.handles.append(model.register_forward_hook(functools.partial(self._post_hook, state)))
        return state

    def _post_hook(self, state: ModuleState, module: Any, args: Any, output: Any) -> None:
        pending = [w for w in state.windows if not w.backward_ran]
        if not pending:
            return
        tensor = output[0] if isinstance(output, (tuple, list)) and output else output
        if isinstance(tensor, self._torch.Tensor) and tensor.requires_grad:
            def mark(grad: Any, windows: tuple[ModelWindow, ...] = tuple(pending)) -> None:
                for w in windows:
                    w.backward_ran = True
            tensor.register_hook(mark)

    def close(self) -> None:
        """Remove the hooks this session put on modules."""
        for state in list(self._modules.values()):
            model = state.module()
            if model is not None:
                uninstall(model, state)
        self._modules.clear()
