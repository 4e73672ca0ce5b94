"""Notices a module's call with inputs not seen before: the call that a window's FLOP counter counts anew.

The FLOP counter counts each new call signature on a shadow pass when the window that saw it ends. A longer
window open then (an epoch, a whole run) would contain that counting; an integration that knows a new call
happened pauses the longer window around the step's end, so the counting lies outside every window.
"""

from __future__ import annotations

import sys
from typing import Any

_modules = sys.modules


def _signature(value: Any) -> Any:
    shape = getattr(value, "shape", None)
    if shape is not None:
        return (tuple(shape), str(getattr(value, "dtype", "")), bool(getattr(value, "requires_grad", False)))
    if isinstance(value, (list, tuple)):
        return tuple(_signature(v) for v in value)
    if isinstance(value, dict):
        return tuple((k, _signature(v)) for k, v in value.items())
    return type(value).__name__


class NewCalls:
    """A forward pre-hook on one module that notes calls whose inputs (shapes, dtypes, grad) are new.

    Costs one hook call per forward; nothing is copied or kept but the signatures seen.
    """

    def __init__(self) -> None:
        self._seen: set[Any] = set()
        self._handle: Any = None
        self.fresh = False

    def watch(self, module: Any) -> None:
        """Hook ``module`` (replacing any module watched before)."""
        self.close()
        self._handle = module.register_forward_pre_hook(self._note, with_kwargs=True)

    def _note(self, module: Any, args: Any, kwargs: Any) -> None:
        torch = _modules["torch"]  # a module's forward is running: torch is imported
        if len(args) == 1 and not kwargs and type(args[0]) is torch.Tensor:  # the common call: one tensor
            a = args[0]
            key: Any = (a.shape, a.dtype, a.device, a.requires_grad, torch.is_grad_enabled())
        else:
            key = (_signature(args), _signature(kwargs), torch.is_grad_enabled())
        if key not in self._seen:
            self._seen.add(key)
            self.fresh = True

    def take(self) -> bool:
        """Whether a new call was seen since the last ``take``."""
        fresh, self.fresh = self.fresh, False
        return fresh

    def close(self) -> None:
        """Remove the hook."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
