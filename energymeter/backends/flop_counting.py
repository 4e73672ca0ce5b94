"""How FLOPs are counted: a per-thread ``FlopCounterMode`` read through its public API, a dispatch mode that
lists operators with no formula in the public ``flop_registry``, and hook-free copies of a module for
shadow passes (on the ``meta`` device, or on its own device when it cannot run on ``meta``)."""

from __future__ import annotations

import copy
import functools
from typing import Any

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
    # Size and layout queries, which FlopCounterMode passes on untouched.
    "aten.size", "aten.sym_size", "aten.stride", "aten.sym_stride", "aten.numel", "aten.sym_numel", "aten.dim",
    "aten.storage_offset", "aten.sym_storage_offset", "aten.is_contiguous", "aten.sym_is_contiguous",
    "aten.is_strides_like_format", "aten.is_non_overlapping_and_dense",
})


@functools.lru_cache(maxsize=None)
def _modes() -> tuple[type, type, Any]:
    """(FlopCounterMode, the recorder of operators without a formula, the formula registry)."""
    from torch.utils._python_dispatch import TorchDispatchMode  # the documented base of dispatch modes
    from torch.utils.flop_counter import FlopCounterMode, flop_registry

    class UncountedOps(TorchDispatchMode):
        """Records the operators without a FLOP formula that reach it.

        Entered *before* (outside) a ``FlopCounterMode``, it sees the operators that mode runs after its
        own decompositions, so an operator it lists is one whose FLOPs the counter did not count.
        """

        def __init__(self) -> None:
            super().__init__()
            self.calls: dict[str, int] = {}

        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            packet = getattr(func, "overloadpacket", func)
            if packet not in flop_registry:
                name = str(packet)
                if name not in _NO_ARITHMETIC and not name.startswith(("profiler.", "prim.")):
                    self.calls[name] = self.calls.get(name, 0) + 1
            return func(*args, **(kwargs or {}))

    return FlopCounterMode, UncountedOps, flop_registry


class _Counting:
    """A FlopCounterMode and its uncounted-operator recorder, entered together in one thread."""

    __slots__ = ("counter", "recorder", "depth")

    def __init__(self) -> None:
        counter_cls, recorder_cls, _ = _modes()
        self.recorder = recorder_cls()
        self.counter = counter_cls(display=False)
        self.depth = 0

    def enter(self) -> None:
        self.recorder.__enter__()
        self.counter.__enter__()

    def exit(self) -> None:
        self.counter.__exit__(None, None, None)
        self.recorder.__exit__(None, None, None)

    def snapshot(self) -> tuple[int, dict[str, int]]:
        return self.counter.get_total_flops(), dict(self.recorder.calls)


def _describe(value: Any, tensor_type: type) -> Any:
    if isinstance(value, tensor_type):
        return (value.shape, value.dtype, value.device, value.requires_grad)
    if isinstance(value, (list, tuple)):
        return tuple(_describe(v, tensor_type) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _describe(v, tensor_type)) for k, v in value.items()))
    if isinstance(value, (int, float, str, bool, type(None))):
        return value
    # Another object: its type and a bounded repr, so two calls with different settings are not taken
    # for one cached signature (a repr with an address only costs a recount, never a wrong count).
    return (type(value).__name__, repr(value)[:200])


def _tensors(value: Any, tensor_type: type) -> list[Any]:
    if isinstance(value, tensor_type):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v, tensor_type)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v, tensor_type)]
    return []


def _convert(value: Any, fn: Any, tensor_type: type) -> Any:
    if isinstance(value, tensor_type):
        return fn(value)
    if isinstance(value, (list, tuple)):
        converted = [_convert(v, fn, tensor_type) for v in value]
        return type(value)(converted) if type(value) in (list, tuple) else type(value)(*converted)
    if isinstance(value, dict):
        return {k: _convert(v, fn, tensor_type) for k, v in value.items()}
    return value


def _hook_free_copy(model: Any, tensor_fn: Any) -> Any:
    """A deep copy of ``model`` without any hook, its parameters and buffers replaced by ``tensor_fn(t)``.

    The memo maps every hook dictionary to an empty one, so no hook (ours, ActivationEnergy's, a user's)
    and nothing a hook holds is copied or called.
    """
    import torch

    memo: dict[int, Any] = {}
    for module in model.modules():
        for name, value in vars(module).items():
            if "hook" in name and isinstance(value, dict):
                memo[id(value)] = type(value)()
    for param in model.parameters():
        memo[id(param)] = torch.nn.Parameter(tensor_fn(param), requires_grad=param.requires_grad)
    for buffer in model.buffers():
        memo[id(buffer)] = tensor_fn(buffer)
    try:
        return copy.deepcopy(model, dict(memo))
    except (TypeError, copy.Error, RuntimeError):
        # An attribute that cannot be copied (a LightningModule's trainer holds locks, and through its callbacks
        # an open Meter): the twin shares every attribute that is not a module, parameter or buffer.
        for module in model.modules():
            for name, value in vars(module).items():
                if name not in ("_parameters", "_buffers", "_modules") and id(value) not in memo:
                    memo[id(value)] = value
        return copy.deepcopy(model, memo)
