"""Energy in the Transformers ``Trainer``'s logs: per logging step and for the whole run, on every rank.

``EnergyCallback`` is a ``transformers.TrainerCallback``. Each optimizer step is a window (``on_step_begin`` to
``on_step_end``: the forward and backward of every micro-batch, the optimizer step). At each of the Trainer's
logs (``on_log``) it adds to the log the keys of ``energymeter.integrations.keys`` for two phases:

* ``train_steps``: the step windows since the previous log, added up (with ``logging_steps=1``, one step);
* ``train``: the whole run, from ``on_train_begin`` to the Trainer's closing log (the one with
  ``train_runtime``), evaluation and checkpoints included, but not the counting of a new call's FLOPs: the run
  is paused around the end of a step whose model call was new (``energymeter.integrations.calls``).

The keys go into the ``logs`` dict the Trainer hands its callbacks and into ``state.log_history``. The Trainer
puts its ``report_to`` integrations (TensorBoard, MLflow, W&B) *before* the callbacks passed to it, and each
callback sees the dict after the ones before it, so ``attach(trainer)`` puts the callback first: then every
integration receives the figures. FLOPs are those of the model's calls (its forward, backward where it ran),
counted on a shadow pass after each step's closing reading.

Under torch.distributed (the Trainer launched by torchrun or accelerate) every figure is the aggregate of the
ranks' windows (``energymeter.distributed.aggregate``: host-wide domains once per host, GPUs once per id),
computed at each log on every rank, so each rank's logs hold the same figures. Evaluation (which the Trainer
starts without a callback event) is measured inside ``train`` only. Importing this module imports no framework;
reading ``EnergyCallback`` (or calling ``attach``) does.
"""

from __future__ import annotations

from typing import Any, Sequence

from ..measurement import Measurement
from .calls import NewCalls
from .keys import metric_items
from .lazy import framework_class, import_first
from .phases import Phases, add, with_counts

STEP, STEPS, RUN = "train_step", "train_steps", "train"
#: The key of the Trainer's closing log, which ends the ``train`` phase.
CLOSING_KEY = "train_runtime"


class EnergyHooks:
    """The events of ``EnergyCallback`` (the class itself is built on first use, with ``TrainerCallback``).

    Args:
        backends: Backend names, or None for the default selection (see ``energymeter.Meter``).
        count_flops: Count the FLOPs of the model's calls (on a shadow pass outside the joules).
        meter: A Meter to take the windows on (otherwise the callback opens its own at ``on_train_begin``).
        group: The torch.distributed group the aggregate gathers over (None: the default group).
        **options: Backend options, as for ``energymeter.Meter`` (``powercap_root``, ...).

    Attributes:
        logged: Each log's ``train_steps`` figure (the aggregate under torch.distributed), in order.
        run: The ``train`` figure, once the Trainer's closing log has passed.
    """

    def __init__(self, backends: Sequence[str] | None = None, *, count_flops: bool = True, meter: Any = None,
                 group: Any = None, **options: Any) -> None:
        self._phases = Phases(backends, meter=meter, group=group, **options)
        self._count_flops = count_flops
        self._model: Any = None
        self._new_calls = NewCalls()
        self._since_log: Measurement | None = None
        self._run_flops: int | None = 0
        self._run_uncounted: dict[str, int] = {}
        self.logged: list[Measurement] = []
        self.run: Measurement | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        self._phases.start()
        self._model = model if self._count_flops else None
        if self._model is not None:
            self._new_calls.watch(self._model)
        self._since_log, self.run, self._run_flops, self._run_uncounted = None, None, 0, {}
        self._phases.begin(RUN)  # no model: its FLOPs are its steps', and no shadow pass runs inside it

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._phases.begin(STEP, self._model)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not self._phases.is_open(STEP):
            return
        if self._new_calls.take():  # the step's end counts a new call: outside the run's joules too
            self._phases.pause(RUN)
        step: Measurement = self._phases.end(STEP)  # type: ignore[assignment]
        if not self._phases.is_open(RUN) and self.run is None:
            self._phases.begin(RUN)
        self._since_log = add(self._since_log, step)
        if self._run_flops is not None:
            self._run_flops = None if step.flops is None else self._run_flops + step.flops
        for op, calls in step.uncounted_ops.items():
            self._run_uncounted[op] = self._run_uncounted.get(op, 0) + calls

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
               **kwargs: Any) -> None:
        # Every rank logs at the same steps, so each aggregate below is reached by every rank alike.
        items: dict[str, float] = {}
        if self._since_log is not None:
            steps, self._since_log = self._phases.combined(self._since_log), None
            self.logged.append(steps)
            items.update(metric_items(steps, STEPS))
        if logs is not None and CLOSING_KEY in logs and self._phases.is_open(RUN):
            run: Measurement = self._phases.end(RUN)  # type: ignore[assignment]
            if self._model is not None:
                run = with_counts(run, self._run_flops, self._run_uncounted)
            self.run = self._phases.combined(run)
            items.update(metric_items(self.run, RUN))
        if not items:
            return
        if logs is not None:
            logs.update(items)
        if state.log_history:  # the Trainer appended this log's copy before calling on_log
            state.log_history[-1].update(items)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._new_calls.close()
        self._phases.close()


def _energy_callback() -> type:
    base = import_first([("transformers", "TrainerCallback")], "transformers", __name__)
    return framework_class(__name__, "EnergyCallback", EnergyHooks, base)


def attach(trainer: Any, backends: Sequence[str] | None = None, **kwargs: Any) -> Any:
    """Put a new ``EnergyCallback`` first among ``trainer``'s callbacks, so its figures reach every integration.

    Args:
        trainer: A ``transformers.Trainer``.
        backends: Backend names, or None for the default selection.
        **kwargs: The callback's other arguments (``count_flops``, ``meter``, ``group``, backend options).

    Returns:
        The callback (its ``logged`` and ``run`` hold the figures too).
    """
    callback = _energy_callback()(backends, **kwargs)
    trainer.callback_handler.callbacks.insert(0, callback)
    return callback


def __getattr__(name: str) -> Any:
    """``EnergyCallback``, built on first access from ``EnergyHooks`` and ``transformers.TrainerCallback``."""
    if name != "EnergyCallback":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return _energy_callback()


__all__ = ["CLOSING_KEY", "RUN", "STEP", "STEPS", "EnergyCallback", "EnergyHooks", "attach"]
