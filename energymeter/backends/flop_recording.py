"""How a FLOP session sees a module's calls during a window without counting them: a recording ``forward``.

A window that names its module (``measure(model=net)``) records each call's signature (tensor shapes,
dtypes, devices, requires_grad, other arguments, grad mode) and counts it later, on a shadow pass. The
recorder is a ``forward`` set on the module instance, wrapping its class's ``forward`` (as accelerate's
hooks do): torch then keeps its fast call path, where a forward pre-hook makes every call of the module
take the hooked one (about 4 us more per call, window or not). The wrapper:

* keeps the class's signature for ``inspect.signature`` (``functools.wraps``: the Transformers ``Trainer``
  reads it to pick dataset columns);
* is a method bound to its module, so ``copy.deepcopy`` rebinds it to the copy and ``pickle`` (``torch.save``)
  stores it as the class's ``forward`` of the copy; a copy never records into the original's windows (each
  window checks the module it sees);
* is removed when the session closes.

Where a module has a ``forward`` of its own on the instance already (another library's wrapper, a user's
patch) or is a TorchScript module, a forward pre-hook records instead.
One caveat of the wrapper: ``torch.nn.DataParallel`` copies a module's attributes into its replicas, so
name the ``DataParallel`` object as the window's model, not the module inside it.
"""

from __future__ import annotations

import functools
import threading
import types
from typing import Any

from .flop_counting import _describe

#: Marks the recording forwards this module makes, so a copy's inherited one is recognised and replaced.
_MARK = "__energymeter_recorder__"


class ModelWindow:
    """A window open on one module: the call signatures seen in it, in the thread that opened it.

    Built by ``open_window`` (no ``__init__``: a window edge is a few microseconds, a call frame counts).
    """

    __slots__ = ("thread", "model", "state", "calls", "inputs", "backward_ran")
    thread: int
    model: Any
    state: "ModuleState"
    calls: dict[tuple[Any, ...], int]  # call signature -> calls
    inputs: dict[tuple[Any, ...], tuple[Any, Any]]  # signature -> (args, kwargs) of its first call
    backward_ran: bool


_new = object.__new__
_get_ident = threading.get_ident


def open_window(model: Any, state: "ModuleState") -> ModelWindow:
    """A new window on ``model`` in the calling thread (not yet listed in ``state.windows``)."""
    window = _new(ModelWindow)
    window.thread = _get_ident()
    window.model = model
    window.state = state
    window.calls = {}
    window.inputs = {}
    window.backward_ran = False
    return window


class ModuleState:
    """The recorder a module gets on its first window, the windows open on it now, and its cached counts."""

    __slots__ = ("module", "windows", "handles", "forward", "cache", "results")

    def __init__(self, module: Any) -> None:
        self.module = module  # a weak reference
        self.windows: list[ModelWindow] | tuple[()] = ()  # replaced, never changed: recorders read it unlocked
        self.handles: list[Any] = []
        self.forward: Any = None  # the recording forward set on the module, or None (a pre-hook records)
        # (call signature, backward counted) -> (flops, uncounted ops), or a str: why it cannot be counted.
        self.cache: dict[tuple[Any, ...], tuple[int, Any] | str] = {}
        # The same counts as ready FlopResults, for windows of one call (the common case): nothing is built.
        self.results: dict[tuple[Any, ...], Any] = {}


def _recorder(torch: Any) -> Any:
    """``record(state, module, args, kwargs)``: note one call of ``module`` in the open windows of its thread."""
    tensor_type = torch.Tensor
    grad_enabled = torch.is_grad_enabled
    get_ident = threading.get_ident

    def record(windows: Any, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if len(args) == 1 and not kwargs and type(args[0]) is tensor_type:
            a = args[0]
            signature: tuple[Any, ...] = (a.shape, a.dtype, a.device, a.requires_grad, grad_enabled())
        else:
            signature = (_describe(args, tensor_type), _describe(kwargs, tensor_type), grad_enabled())
        thread = get_ident()
        for w in windows:  # a snapshot: windows open and close by replacing the sequence
            if w.thread == thread and w.model is module:
                calls = w.calls
                if signature in calls:
                    calls[signature] += 1
                else:
                    calls[signature] = 1
                    w.inputs[signature] = (args, kwargs)

    return record


def install(model: Any, state: ModuleState, torch: Any) -> None:
    """Put a recorder on ``model`` for ``state``'s windows: a recording ``forward``, else a forward pre-hook."""
    record = _recorder(torch)
    own = vars(model).get("forward")
    if (own is None or getattr(getattr(own, "__func__", None), _MARK, False)) and not isinstance(
            model, torch.jit.ScriptModule):
        original = type(model).forward

        @functools.wraps(original)
        def forward(self: Any, *args: Any, **kwargs: Any) -> Any:
            windows = state.windows
            if windows:
                record(windows, self, args, kwargs)
            return original(self, *args, **kwargs)

        setattr(forward, _MARK, True)
        state.forward = types.MethodType(forward, model)
        object.__setattr__(model, "forward", state.forward)  # a plain attribute, as Module.__setattr__ sets it
        return

    def pre_hook(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        windows = state.windows
        if windows:
            record(windows, module, args, kwargs)

    state.handles.append(model.register_forward_pre_hook(pre_hook, with_kwargs=True))


def uninstall(model: Any, state: ModuleState) -> None:
    """Take ``state``'s recorder and hooks off ``model``."""
    if state.forward is not None and vars(model).get("forward") is state.forward:
        del vars(model)["forward"]
    state.forward = None
    for handle in state.handles:
        handle.remove()
    state.handles = []


def drop_recorders(module: Any) -> None:
    """Remove every recording forward from ``module`` and its submodules (a shadow pass's hook-free copy)."""
    for sub in module.modules():
        own = vars(sub).get("forward")
        if own is not None and getattr(getattr(own, "__func__", None), _MARK, False):
            del vars(sub)["forward"]
