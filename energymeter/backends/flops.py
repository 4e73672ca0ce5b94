"""Counted FLOPs of a window, through ``torch.utils.flop_counter.FlopCounterMode``.

Convention: a multiply-add counts 2 FLOPs (torch's convention); forward and backward are both counted.
Only operators with a formula in torch's registry are counted (matmuls, convolutions, attention);
every other operator the window ran is listed in ``uncounted_ops`` rather than silently counted as 0.

Counting dispatches every operator through Python, which is costly. A window that names its module
(``measure(model=net)``) is counted once per (module, input shapes and dtypes, grad mode, whether
backward ran), from the module's first call to the window's end; later windows with the same key
reuse the count at the cost of two module hooks, which stay on the module until the meter closes.
"""

from __future__ import annotations

import functools
import importlib.util
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any

from ..errors import BackendUnavailable
from ..measurement import COUNTED
from .base import OPERATION_COUNTER, Backend, BackendStatus

DOMAIN = "flops"

# Operators that move or describe data without arithmetic: not worth listing as "uncounted".
_NO_ARITHMETIC = frozenset({
    "aten.view", "aten._unsafe_view", "aten.t", "aten.transpose", "aten.permute", "aten.expand",
    "aten.reshape", "aten.detach", "aten.alias", "aten.clone", "aten.copy_", "aten._to_copy",
    "aten.empty", "aten.empty_like", "aten.zeros_like", "aten.ones_like", "aten.new_empty",
    "aten.new_empty_strided", "aten.empty_strided", "aten.fill_", "aten.zero_", "aten.as_strided",
    "aten.unsqueeze", "aten.squeeze", "aten.slice", "aten.select", "aten.split", "aten.lift_fresh",
    "aten.new_zeros", "aten.new_ones", "aten.zeros", "aten.ones", "aten.full", "aten.scalar_tensor",
    "aten._local_scalar_dense", "aten.unbind", "aten.flatten", "aten.contiguous", "aten.to",
    "aten.set_", "aten.resize_", "aten.lift", "aten.is_same_size", "aten.item",
})


@dataclass(frozen=True, slots=True)
class FlopResult:
    """FLOPs of one window.

    Attributes:
        flops: Counted FLOPs, or None when the window could not be counted.
        uncounted_ops: Operator to calls, for operators without a FLOP formula.
        warnings: Why ``flops`` is None, or other caveats.
    """

    flops: int | None
    uncounted_ops: dict[str, int] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


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


def _make_counter_class() -> type:
    from torch.utils.flop_counter import FlopCounterMode

    class _RecordingCounter(FlopCounterMode):
        """FlopCounterMode that adds to a shared total and records operators it has no formula for."""

        def __init__(self, session: "FlopSession") -> None:
            super().__init__(display=False)
            self._session = session

        def _count_flops(self, func_packet: Any, out: Any, args: Any, kwargs: Any) -> Any:
            formula = self.flop_registry.get(func_packet)
            if formula is None:
                name = str(func_packet)
                if name not in _NO_ARITHMETIC and not name.startswith("profiler."):
                    self._session._add(0, name)
                return out
            self._session._add(int(formula(*args, **kwargs, out_val=out)), None)
            return out

    return _RecordingCounter


class _Window:
    __slots__ = ("thread", "model", "counting", "start_total", "start_uncounted", "signatures", "grad_enabled",
                 "backward_ran", "prefix")

    def __init__(self, model: Any) -> None:
        self.thread = threading.get_ident()
        self.model = model
        self.counting = False
        self.start_total = 0
        self.start_uncounted: dict[str, int] = {}
        self.signatures: list[tuple[Any, ...]] = []
        self.grad_enabled = False
        self.backward_ran = False
        self.prefix: tuple[Any, ...] | None = None


def _describe(value: Any, tensor_type: type) -> Any:
    if isinstance(value, tensor_type):
        return (value.shape, value.dtype, value.device, value.requires_grad)
    if isinstance(value, (list, tuple)):
        return tuple(_describe(v, tensor_type) for v in value)
    if isinstance(value, (int, float, str, bool, type(None))):
        return value
    return type(value).__name__


class _ModuleState:
    """The two hooks a module gets on its first counted window, and the windows open on it now."""

    __slots__ = ("windows", "handles", "cache", "seen")

    def __init__(self) -> None:
        self.windows: list[_Window] = []
        self.handles: list[Any] = []
        # full key -> (flops, uncounted ops); first-call prefixes already counted.
        self.cache: dict[tuple[Any, ...], tuple[int, dict[str, int]]] = {}
        self.seen: set[tuple[Any, ...]] = set()


class FlopSession:
    """Shares one counting mode per thread among that thread's open windows."""

    provenance = {DOMAIN: COUNTED}

    def __init__(self) -> None:
        import torch

        self._torch = torch
        self._counter_cls = _make_counter_class()
        self._lock = threading.Lock()
        self._total = 0
        self._uncounted: dict[str, int] = {}
        self._local = threading.local()
        # Hooks stay on a module between windows (registering them per window costs more than the
        # window itself); with no window open on it they return at once.
        self._modules: "weakref.WeakKeyDictionary[Any, _ModuleState]" = weakref.WeakKeyDictionary()

    # -- shared counter -------------------------------------------------------------------------
    def _add(self, flops: int, uncounted_op: str | None) -> None:
        with self._lock:
            self._total += flops
            if uncounted_op is not None:
                self._uncounted[uncounted_op] = self._uncounted.get(uncounted_op, 0) + 1

    def _snapshot(self) -> tuple[int, dict[str, int]]:
        with self._lock:
            return self._total, dict(self._uncounted)

    def _start_counting(self, window: _Window) -> None:
        depth = getattr(self._local, "depth", 0)
        if depth == 0:
            self._local.mode = self._counter_cls(self)
            self._local.mode.__enter__()
        self._local.depth = depth + 1
        window.counting = True
        window.start_total, window.start_uncounted = self._snapshot()

    def _stop_counting(self) -> None:
        self._local.depth -= 1
        if self._local.depth == 0:
            self._local.mode.__exit__(None, None, None)
            self._local.mode = None

    # -- module hooks -------------------------------------------------------------------------------
    def _state(self, model: Any) -> _ModuleState:
        state = self._modules.get(model)
        if state is None:
            state = self._modules[model] = _ModuleState()
            # The hooks carry their state: no per-call lookup (a weak-dict get allocates a weakref).
            state.handles = [model.register_forward_pre_hook(functools.partial(self._pre_hook, state),
                                                             with_kwargs=True)]
            first = next((p for p in model.parameters() if p.requires_grad), None)
            if first is not None and hasattr(first, "register_post_accumulate_grad_hook"):
                # One call per backward on one parameter: cheaper than a tensor hook per forward.
                state.handles.append(first.register_post_accumulate_grad_hook(
                    lambda param, state=state: self._mark_backward(state)))
            else:
                state.handles.append(model.register_forward_hook(functools.partial(self._post_hook, state)))
        return state

    @staticmethod
    def _mark_backward(state: _ModuleState) -> None:
        for w in tuple(state.windows):  # backward may run on an autograd worker thread: mark every open window
            w.backward_ran = True

    def _pre_hook(self, state: _ModuleState, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if not state.windows:
            return
        thread = threading.get_ident()
        tensor_type = self._torch.Tensor
        if len(args) == 1 and not kwargs and type(args[0]) is tensor_type:
            a = args[0]
            signature: tuple[Any, ...] = (a.shape, a.dtype, a.device, a.requires_grad)
        else:
            signature = (_describe(args, tensor_type), tuple(sorted((k, _describe(v, tensor_type))
                                                                    for k, v in kwargs.items())) if kwargs else ())
        for w in tuple(state.windows):  # a snapshot: other threads may open or close windows meanwhile
            if w.thread != thread:
                continue
            w.signatures.append(signature)
            if w.prefix is None:
                w.grad_enabled = self._torch.is_grad_enabled()
                w.prefix = (signature, w.grad_enabled)
                if w.prefix not in state.seen:
                    self._start_counting(w)

    def _post_hook(self, state: _ModuleState, module: Any, args: Any, output: Any) -> None:
        if not state.windows:
            return
        pending = [w for w in state.windows if not w.backward_ran]
        if not pending:
            return
        tensor = output[0] if isinstance(output, (tuple, list)) and output else output
        if isinstance(tensor, self._torch.Tensor) and tensor.requires_grad:
            def mark(grad: Any, windows: tuple[_Window, ...] = tuple(pending)) -> None:
                for w in windows:
                    w.backward_ran = True
            tensor.register_hook(mark)

    # -- windows ----------------------------------------------------------------------------------
    def begin(self, model: Any = None) -> _Window:
        """Start counting for a window in the calling thread.

        Args:
            model: The ``torch.nn.Module`` the window runs; enables the per-shape cache.
        """
        window = _Window(model)
        if model is None:
            self._start_counting(window)
        else:
            self._state(model).windows.append(window)
        return window

    def end(self, window: _Window) -> FlopResult:
        """Stop counting for a window and return its FLOPs."""
        state = self._modules.get(window.model) if window.model is not None else None
        if state is not None:
            state.windows.remove(window)
        if threading.get_ident() != window.thread and window.counting:
            return FlopResult(None, {}, ("flops: a FLOP-counting window must end in the thread that began it",))
        if window.counting:
            self._stop_counting()
            total, uncounted = self._snapshot()
            flops = total - window.start_total
            ops = {k: v - window.start_uncounted.get(k, 0) for k, v in uncounted.items()
                   if v - window.start_uncounted.get(k, 0) > 0}
            if state is not None:
                state.cache[self._key(window)] = (flops, ops)
                state.seen.add(window.prefix)
            return FlopResult(flops, ops)
        if not window.signatures:
            return FlopResult(None, {}, ("flops: the named model was not called in this window; nothing was counted",))
        cached = state.cache.get(self._key(window)) if state is not None else None
        if cached is None:
            if state is not None:
                state.seen.discard(window.prefix)
            return FlopResult(None, {}, ("flops: this window called the model in a pattern not seen before "
                                         "(other calls or shapes after the first); the next such window is counted",))
        return FlopResult(cached[0], dict(cached[1]))

    @staticmethod
    def _key(window: _Window) -> tuple[Any, ...]:
        return (tuple(window.signatures), window.grad_enabled, window.backward_ran)

    def close(self) -> None:
        """Remove the hooks this session put on modules."""
        for state in list(self._modules.values()):
            for handle in state.handles:
                handle.remove()
        self._modules = weakref.WeakKeyDictionary()


def fvcore_cross_check(model: Any, inputs: tuple[Any, ...]) -> dict[str, Any]:
    """Count one forward pass with fvcore, for comparison with torch's counter.

    fvcore counts one fused multiply-add as one "flop", i.e. it reports MACs; torch counts 2 FLOPs per
    multiply-add. The result names the convention so the two are not confused.

    Args:
        model: A ``torch.nn.Module``.
        inputs: Positional inputs for one forward pass.

    Returns:
        ``{"macs": int, "flops_equivalent": 2 * macs, "convention": ..., "unsupported_ops": {...}}``.

    Raises:
        BackendUnavailable: fvcore is not installed (``pip install 'energymeter[fvcore]'``).
    """
    try:
        from fvcore.nn import FlopCountAnalysis
    except ImportError as exc:
        raise BackendUnavailable("fvcore is not installed: pip install 'energymeter[fvcore]'") from exc
    import logging

    analysis = FlopCountAnalysis(model, inputs)
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    logging.getLogger("fvcore").setLevel(logging.ERROR)
    macs = int(analysis.total())
    return {"macs": macs, "flops_equivalent": 2 * macs,
            "convention": "fvcore counts one multiply-add as 1 (MACs); energymeter/torch count it as 2 FLOPs",
            "unsupported_ops": dict(analysis.unsupported_ops())}
