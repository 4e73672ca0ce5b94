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
patch, another open meter's recorder) or is a TorchScript module, a forward pre-hook records instead.
One caveat of the wrapper: ``torch.nn.DataParallel`` copies a module's attributes into its replicas, so
name the ``DataParallel`` object as the window's model, not the module inside it.
"""

from __future__ import annotations

import functools
import threading
import types
from typing import Any

from .flop_counting import _describe

#: Marks the recording forwards this module makes (its value: the ``ModuleState`` it records for), so a copy's
#: inherited one is recognised and replaced, and another live session's on the same module is left in place.
_MARK = "__energymeter_recorder__"


class ModelWindow:
    """A window open on one module: the call signatures seen in it, in the thread that opened it.

    Built by ``FlopSession.begin`` (no ``__init__``: a window edge is a few microseconds, a call frame counts).
    The first signature seen is kept in slots (``first``, its calls and inputs): most windows see one, and
    no dict is built or hashed for it; any other signature goes to ``more``.
    """

    __slots__ = ("thread", "model", "state", "first", "first_calls", "first_inputs", "more", "backward_ran")
    thread: int
    model: Any
    state: "ModuleState"
    first: tuple[Any, ...] | None  # the first call's signature, None until the module is called
    first_calls: int  # calls with that signature
    first_inputs: tuple[Any, Any]  # (args, kwargs) of the first call
    more: dict[tuple[Any, ...], list[Any]] | None  # any other signature -> [calls, (args, kwargs) of its first]
    backward_ran: bool


def window_calls(window: ModelWindow) -> dict[tuple[Any, ...], int]:
    """Call signature -> calls in ``window``, in the order first seen."""
    calls = {} if window.first is None else {window.first: window.first_calls}
    for signature, (n, _) in (window.more or {}).items():
        calls[signature] = n
    return calls


def window_inputs(window: ModelWindow, signature: tuple[Any, ...]) -> tuple[Any, Any]:
    """(args, kwargs) of the first call with ``signature`` in ``window``."""
    return window.first_inputs if signature == window.first else window.more[signature][1]  # type: ignore[index]


class ModuleState:
    """The recorder a module gets on its first window, the windows open on it now, and its cached counts."""

    __slots__ = ("module", "windows", "handles", "forward", "cache", "results", "results_n", "marks", "mark", "park",
                 "marks_idle", "parked")

    def __init__(self, module: Any) -> None:
        self.module = module  # a weak reference
        self.windows: list[ModelWindow] | tuple[()] = ()  # replaced, never changed: recorders read it unlocked
        self.handles: list[Any] = []
        self.forward: Any = None  # the recording forward set on the module, or None (a pre-hook records)
        # (call signature, backward counted) -> (flops, uncounted ops), or a str: why it cannot be counted.
        self.cache: dict[tuple[Any, ...], tuple[int, Any] | str] = {}
        # The same counts as ready FlopResults, for windows of one call (the common case): nothing is built.
        # Two maps, indexed by whether backward is counted (False, True): the signature is hashed once.
        self.results: tuple[dict[tuple[Any, ...], Any], dict[tuple[Any, ...], Any]] = ({}, {})
        # The same for windows of one signature called n > 1 times (a window of a logging interval), by
        # (signature, n); kept once such a window has ended the whole way.
        self.results_n: tuple[dict[tuple[Any, ...], Any], dict[tuple[Any, ...], Any]] = ({}, {})
        # Backward marks (one hook per trainable parameter of the first window: (parameter, its hook dict, the
        # handle)), None where a forward hook notes backward instead.
        # A window needs one mark: once every open window is marked, the next recorded call parks them
        # (``park``), and the next window to open puts them back (``parked``); a window of many steps then
        # pays the marks of its first backward only.
        self.marks: list[Any] | None = None
        self.mark: Any = None  # the hook the marks call
        self.park: Any = None  # takes the marks off while every open window is marked
        self.marks_idle = False  # set by a mark: every open window is marked
        self.parked = False


def _recorder(torch: Any, state: ModuleState) -> Any:
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
                first = w.first
                if first is None:
                    w.first, w.first_calls, w.first_inputs = signature, 1, (args, kwargs)
                elif first == signature:
                    w.first_calls += 1
                else:
                    more = w.more
                    if more is None:
                        more = w.more = {}
                    if signature in more:
                        more[signature][0] += 1
                    else:
                        more[signature] = [1, (args, kwargs)]
        if state.marks_idle:  # a backward marked every open window: its marks can rest until the next one
            state.park()

    return record


def install(model: Any, state: ModuleState, torch: Any) -> None:
    """Put a recorder on ``model`` for ``state``'s windows: a recording ``forward``, else a forward pre-hook."""
    record = _recorder(torch, state)
    own = vars(model).get("forward")
    owner = getattr(getattr(own, "__func__", None), _MARK, None)  # the state of the recorder there, if ours
    inherited = owner is not None and not (owner.module() is model and owner.forward is not None)
    if (own is None or inherited) and not isinstance(model, torch.jit.ScriptModule):
        original = type(model).forward

        @functools.wraps(original)
        def forward(self: Any, *args: Any, **kwargs: Any) -> Any:
            windows = state.windows
            if windows:
                record(windows, self, args, kwargs)
            return original(self, *args, **kwargs)

        setattr(forward, _MARK, state)
        state.forward = types.MethodType(forward, model)
        object.__setattr__(model, "forward", state.forward)  # a plain attribute, as Module.__setattr__ sets it
        return

    def pre_hook(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        windows = state.windows
        if windows:
            record(windows, module, args, kwargs)

    state.handles.append(model.register_forward_pre_hook(pre_hook, with_kwargs=True))


def put_marks(state: ModuleState, trainable: list[Any], lock: Any) -> None:
    """Note backward in ``state``'s windows: one trivial call per trainable parameter after its gradient
    accumulates (cheaper than a tensor hook per forward), parked while every open window is marked.

    Every parameter, not one: a backward that skips the first (an unused layer) still marks the window.
    Gradients taken with ``torch.autograd.grad`` accumulate nothing and are not seen. ``lock`` guards
    ``state.windows`` (the session's).
    """
    state.mark = functools.partial(mark_backward, state)
    state.park = functools.partial(park_marks, state, lock)
    state.marks = [_mark_on(p, state.mark) for p in trainable]


def mark_backward(state: ModuleState, param: Any = None) -> None:
    """A trainable parameter's gradient accumulated: every window open on the module saw backward."""
    for w in state.windows:  # backward may run on an autograd worker thread: mark every open window
        w.backward_ran = True
    state.marks_idle = True


def park_marks(state: ModuleState, lock: Any) -> None:
    """Take the backward marks out of their parameters' hook dicts while every open window is marked (a
    recorded call found them idle). Out of the dict, not unregistered: torch keeps its call into the dict
    either way, and putting an entry back costs a tenth of registering a hook."""
    with lock:
        state.marks_idle = False
        if not state.marks or state.parked:
            return
        for w in state.windows:
            if not w.backward_ran:
                return
        for _, hooks, handle in state.marks:
            hooks.pop(handle.id, None)
        state.parked = True


def unpark_marks(state: ModuleState) -> None:
    """Put the backward marks back (a window opens; the caller holds the session's lock)."""
    mark = state.mark
    kept = []
    for entry in state.marks:  # type: ignore[union-attr]
        param, hooks, handle = entry
        if param._post_accumulate_grad_hooks is hooks:
            hooks[handle.id] = mark
            kept.append(entry)
        elif param.requires_grad and param.grad_fn is None:  # someone replaced its hook dict: register anew
            kept.append(_mark_on(param, mark))
        # else: no gradient accumulates into it any more (frozen, or no longer a leaf): its mark goes
    state.marks = kept
    state.parked = False


def _mark_on(param: Any, mark: Any) -> tuple[Any, Any, Any]:
    """Register ``mark`` after ``param``'s gradient accumulates: (param, its hook dict, the handle)."""
    handle = param.register_post_accumulate_grad_hook(mark)
    return param, param._post_accumulate_grad_hooks, handle


def uninstall(model: Any, state: ModuleState) -> None:
    """Take ``state``'s recorder and hooks off ``model``."""
    if state.forward is not None and vars(model).get("forward") is state.forward:
        del vars(model)["forward"]
    state.forward = None
    for handle in [*state.handles, *(handle for _, _, handle in state.marks or ())]:
        handle.remove()
    state.handles = []
    state.marks = None
    state.parked = state.marks_idle = False


def drop_recorders(module: Any) -> None:
    """Remove every recording forward from ``module`` and its submodules (a shadow pass's hook-free copy)."""
    for sub in module.modules():
        own = vars(sub).get("forward")
        if own is not None and getattr(getattr(own, "__func__", None), _MARK, False):
            del vars(sub)["forward"]
