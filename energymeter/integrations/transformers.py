"""Energy in the Transformers ``Trainer``'s logs: per logging step and for the whole run, on every rank.

``EnergyCallback`` is a ``transformers.TrainerCallback``. At each of the Trainer's logs (``on_log``) it adds to
the log the keys of ``energymeter.integrations.keys`` for two phases:

* ``train_steps``: the optimizer steps since the previous log (with ``logging_steps=1``, one step): one window
  from the first step's ``on_step_begin`` on (the forward and backward of every micro-batch, the optimizer steps
  and the loop's work between them, data loading included), closed at the log, and paused at the end of a step
  after which the Trainer evaluates, saves a checkpoint or stops (the flags its ``DefaultFlowCallback`` has set
  by then), so evaluation and checkpoints are not in it. A window per step would cost a reading at each step's
  edges (bench/bench_callbacks.py).
* ``train``: the whole run, from ``on_train_begin`` to the Trainer's closing log (the one with
  ``train_runtime``), evaluation and checkpoints included, but not the counting of a new call's FLOPs: when
  closing the steps' window counts a call not seen before (``Meter.counts_on_end``), the run is paused around it.

The keys go into the ``logs`` dict the Trainer hands its callbacks and into ``state.log_history``. The Trainer
puts its ``report_to`` integrations (TensorBoard, MLflow, W&B) *before* the callbacks passed to it, and each
callback sees the dict after the ones before it, so ``attach(trainer)`` puts the callback right after the
``DefaultFlowCallback`` (which sets the flags and reads no log), before every integration: then every
integration receives the figures. FLOPs are those of the model's calls (its forward, backward where it ran),
counted on a shadow pass after the closing reading of the steps' window.

Under torch.distributed (the Trainer launched by torchrun or accelerate) every figure is the aggregate of the
ranks' windows (``energymeter.distributed.aggregate``: host-wide domains once per host, GPUs once per id),
computed at each log on every rank, so each rank's logs hold the same figures. Evaluation (which the Trainer
starts without a callback event) is measured inside ``train`` only. Importing this module imports no framework;
reading ``EnergyCallback`` (or calling ``attach``) does.
"""

from __future__ import annotations

from typing import Any, Sequence

from ..measurement import Measurement
from .keys import metric_items
from .lazy import framework_class, import_first
from .phases import Counts, Phases

STEPS, RUN = "train_steps", "train"
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
        self._run_counts = Counts()
        self.logged: list[Measurement] = []
        self.run: Measurement | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        self._phases.start()
        self._model = model if self._count_flops else None
        self.run, self._run_counts = None, Counts()
        self._phases.begin(RUN)  # no model: its FLOPs are its steps', and no shadow pass runs inside it

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not self._phases.is_open(STEPS):  # the first step since a log, an evaluation or a checkpoint
            self._phases.begin(STEPS, self._model)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        # Set by the DefaultFlowCallback before this callback (see attach): what follows is not a training step.
        if control.should_evaluate or control.should_save or control.should_training_stop:
            self._pause_steps()

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._pause_steps()  # an epoch-end evaluation or checkpoint may follow

    def _pause_steps(self) -> None:
        """Close the open segment of the steps' window; the run is paused around it when that counts a new
        call, so the counting is outside the run's joules too."""
        phases = self._phases
        if not phases.is_open(STEPS):
            return
        counting = phases.counts_on_end(STEPS)
        if counting:
            phases.pause(RUN)
        phases.pause(STEPS)
        if counting and self.run is None:
            phases.begin(RUN)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
               **kwargs: Any) -> None:
        # Every rank logs at the same steps, so each aggregate below is reached by every rank alike.
        items: dict[str, float] = {}
        self._pause_steps()
        own = self._phases.end(STEPS)
        if own is not None:
            self._run_counts.add(own)
            steps = self._phases.combined(own)
            self.logged.append(steps)
            items.update(metric_items(steps, STEPS))
        if logs is not None and CLOSING_KEY in logs and self._phases.is_open(RUN):
            run: Measurement = self._phases.end(RUN)  # type: ignore[assignment]
            if self._model is not None:
                run = self._run_counts.onto(run)
            self.run = self._phases.combined(run)
            items.update(metric_items(self.run, RUN))
        if not items:
            return
        if logs is not None:
            logs.update(items)
        if state.log_history:  # the Trainer appended this log's copy before calling on_log
            state.log_history[-1].update(items)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._phases.close()


def _energy_callback() -> type:
    base = import_first([("transformers", "TrainerCallback")], "transformers", __name__)
    return framework_class(__name__, "EnergyCallback", EnergyHooks, base)


def attach(trainer: Any, backends: Sequence[str] | None = None, **kwargs: Any) -> Any:
    """Put a new ``EnergyCallback`` right after ``trainer``'s ``DefaultFlowCallback`` (first where it has none),
    before every integration, so its figures reach them all and it sees the flow flags at each step's end.

    Args:
        trainer: A ``transformers.Trainer``.
        backends: Backend names, or None for the default selection.
        **kwargs: The callback's other arguments (``count_flops``, ``meter``, ``group``, backend options).

    Returns:
        The callback (its ``logged`` and ``run`` hold the figures too).
    """
    callback = _energy_callback()(backends, **kwargs)
    callbacks = trainer.callback_handler.callbacks
    flow_type = import_first([("transformers", "DefaultFlowCallback")], "transformers", "attach")
    flow = [i for i, c in enumerate(callbacks) if isinstance(c, flow_type)]
    callbacks.insert(flow[0] + 1 if flow else 0, callback)
    return callback


def __getattr__(name: str) -> Any:
    """``EnergyCallback``, built on first access from ``EnergyHooks`` and ``transformers.TrainerCallback``."""
    if name != "EnergyCallback":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return _energy_callback()


__all__ = ["CLOSING_KEY", "RUN", "STEPS", "EnergyCallback", "EnergyHooks", "attach"]
