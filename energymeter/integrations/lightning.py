"""Energy per training step, per epoch and per validation and test loop, in every logger the Trainer has.

``EnergyCallback`` is a ``lightning.pytorch.Callback`` (``pytorch_lightning.Callback`` where only that is
installed). Every logger the trainer has (CSV, TensorBoard, MLflow, W&B) receives the figures, and energymeter
writes no client of its own. The keys are those of ``energymeter.integrations.keys``
(``energy/train_steps/measured/cpu_0_package_j``, ...); the phases:

* ``train_steps``: the training batches since the previous log, logged every ``log_every_n_steps`` batches
  (``Trainer(log_every_n_steps=1)``: each batch's own) and at the epoch's end for the batches left, so the logged
  figures add up to every batch. It is one window from the first batch's ``on_train_batch_start`` to the
  logging batch's ``on_train_batch_end`` (the forward, backward and optimizer steps, and the loop's work between
  batches: data loading, other callbacks), paused around a validation loop; a window per batch would cost a
  reading at each batch's edges (bench/bench_callbacks.py). The figures go to ``trainer.loggers`` directly
  (``log_metrics``, with the step and the epoch as Lightning logs them): ``LightningModule.log`` costs about
  0.5 ms per key and step in Lightning 2.6, many times the callback's own work.
* ``train_epoch``: the epoch's training, without the validation loop Lightning runs inside it: the epoch is
  measured in segments, paused at a validation loop and resumed at the next batch, and its figure is their sum.
* ``validation`` and ``test``: one window per loop (the sanity check is not measured).

The epoch, validation and test figures are logged with ``pl_module.log_dict`` (so ``ModelCheckpoint`` or
``EarlyStopping`` can monitor them).

FLOPs are counted for the module's calls (the LightningModule's ``forward``, or the submodule named by
``model=``) on a shadow pass after the closing reading of the steps', validation's or test's window, outside its
joules. An epoch's FLOPs are its steps'; when closing the steps' window counts a call not seen before (the
first batch, a smaller last one: ``Meter.counts_on_end``), the epoch is paused first, so that counting is outside
the epoch's joules too.

Under DDP (``torch.distributed`` initialised with more than one rank) every figure is the aggregate of the ranks'
windows (``energymeter.distributed.aggregate``: host-wide domains once per host, GPUs once per id), the same on
every rank, and Lightning's loggers write it once, from rank 0. The aggregate is a collective at each log of
the steps and at each epoch's, validation's and test's end (one small ``all_gather_object``). Importing this
module imports no framework; reading ``EnergyCallback`` does.
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence

from ..measurement import Measurement
from .keys import metric_items
from .lazy import framework_class, import_first
from .phases import Counts, Phases

STEPS, EPOCH, VALIDATION, TEST = "train_steps", "train_epoch", "validation", "test"


class EnergyHooks:
    """The hooks of ``EnergyCallback`` (the class itself is built on first use, with Lightning's base).

    Args:
        backends: Backend names, or None for the default selection (see ``energymeter.Meter``).
        model: Whose calls' FLOPs are counted: the name of an attribute of the LightningModule (``"net"``) that
            its steps call, a module, or False for no FLOPs. None: the LightningModule's own ``forward`` calls
            where the strategy does not wrap it; under DDP or FSDP (which call it with the step's arguments)
            nothing is counted, with a warning.
        meter: A Meter to take the windows on (otherwise each training process opens its own at ``setup``).
        group: The torch.distributed group the aggregate gathers over (None: the default group).
        **options: Backend options, as for ``energymeter.Meter`` (``powercap_root``, ...).

    Attributes:
        logged: Every ``train_steps`` figure logged (the aggregate under DDP), in order.
        results: Phase (``train_epoch``, ``validation``, ``test``) to each of its figures, in order.
    """

    # The per-batch hooks this callback has no use for are not callable: Lightning's dispatcher
    # (``trainer.call._call_callback_hooks``) skips a hook that is not callable, and dispatching the four of a
    # training batch to a callback costs about 1.5% of a 784-256-10 step on a 2-core machine (bench_callbacks.py).
    on_before_backward = on_after_backward = on_before_optimizer_step = on_before_zero_grad = None
    on_validation_batch_start = on_validation_batch_end = on_test_batch_start = on_test_batch_end = None
    on_predict_batch_start = on_predict_batch_end = None

    def __init__(self, backends: Sequence[str] | None = None, *, model: Any = None, meter: Any = None,
                 group: Any = None, **options: Any) -> None:
        super().__init__()
        self._phases = Phases(backends, meter=meter, group=group, **options)
        self._model = model
        self._module: Any = None
        self._epoch_counts = Counts()
        self._steps_since_log = 0
        self.logged: list[Measurement] = []
        self.results: dict[str, list[Measurement]] = {EPOCH: [], VALIDATION: [], TEST: []}

    def __getstate__(self) -> dict[str, Any]:
        # Pickled for a spawned rank before setup: a meter given is process-local, so the rank opens its own.
        state = dict(self.__dict__)
        if state["_phases"].meter is not None:
            raise TypeError("an EnergyCallback with a meter cannot go to another process (ddp_spawn): pass "
                            "backends and options instead, and each rank opens its own meter")
        return state

    # -- the meter's life: opened in the process that trains -----------------------------------------
    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        self._phases.start()
        if self._model is False:
            self._module = None
        elif isinstance(self._model, str):
            self._module = pl_module
            for part in self._model.split("."):
                self._module = getattr(self._module, part)
        elif self._model is not None:
            self._module = self._model
        elif getattr(trainer.strategy, "model", pl_module) is pl_module:
            self._module = pl_module
        else:
            # A wrapping strategy (DDP, FSDP) calls the LightningModule with the step's arguments (its forward
            # patched to the step): counting that call would run the step itself on the shadow pass.
            self._module = None
            warnings.warn(f"EnergyCallback: {type(trainer.strategy).__name__} wraps the LightningModule, so its "
                          "FLOPs are not counted; pass model='<attribute>' naming the module training_step calls",
                          stacklevel=2)

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        self._phases.close()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self.teardown(trainer, pl_module, "exception")

    # -- training ------------------------------------------------------------------------------------------
    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self._epoch_counts = Counts()
        self._phases.begin(EPOCH)  # no model: its FLOPs are its steps', and no shadow pass runs inside it

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        phases = self._phases
        if not phases.is_open(EPOCH):  # resumed after a validation loop or a new call's counting
            phases.begin(EPOCH)
        if not phases.is_open(STEPS):  # the first batch since a log or a validation loop: a new segment
            phases.begin(STEPS, self._module)

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if not self._phases.is_open(STEPS):
            return
        self._steps_since_log += 1
        if self._steps_since_log >= trainer.log_every_n_steps:  # the same count on every rank
            self._log_steps(trainer)

    def _pause_steps(self) -> None:
        """Close the open segment of the steps' window; the epoch is paused first when that counts a new call."""
        phases = self._phases
        if phases.counts_on_end(STEPS):
            phases.pause(EPOCH)
        phases.pause(STEPS)

    def _log_steps(self, trainer: Any) -> None:
        """Log the steps since the previous log (a collective under DDP) to every logger."""
        self._pause_steps()
        own = self._phases.end(STEPS)
        self._steps_since_log = 0
        if own is None:
            return
        self._epoch_counts.add(own)
        steps = self._phases.combined(own)
        self.logged.append(steps)
        items: dict[str, float] = metric_items(steps, STEPS)
        items["epoch"] = trainer.current_epoch  # as Lightning adds to the step metrics it logs
        for logger in trainer.loggers:
            logger.log_metrics(items, step=trainer.global_step - 1)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        self._log_steps(trainer)
        self._log_phase(EPOCH, pl_module)

    # -- validation and test loops -------------------------------------------------------------------------
    def on_validation_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        if trainer.sanity_checking:
            return
        self._phases.pause(EPOCH)
        self._phases.pause(STEPS)
        self._phases.begin(VALIDATION, self._module)

    def on_validation_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        self._log_phase(VALIDATION, pl_module)

    def on_test_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self._phases.begin(TEST, self._module)

    def on_test_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        self._log_phase(TEST, pl_module)

    def _log_phase(self, phase: str, pl_module: Any) -> None:
        own = self._phases.end(phase)
        if own is None:
            return
        if phase == EPOCH and self._module is not None:
            own = self._epoch_counts.onto(own)
        result = self._phases.combined(own)
        self.results[phase].append(result)
        # Every rank logs the same aggregate: "max" syncs it without changing it (and without Lightning's warning).
        pl_module.log_dict(metric_items(result, phase), on_step=False, on_epoch=True, batch_size=1,
                           sync_dist=self._phases.distributed, reduce_fx="max")


def __getattr__(name: str) -> Any:
    """``EnergyCallback``, built on first access from ``EnergyHooks`` and ``lightning.pytorch.Callback`` (else
    ``pytorch_lightning.Callback``)."""
    if name != "EnergyCallback":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    base = import_first([("lightning.pytorch", "Callback"), ("pytorch_lightning", "Callback")], "lightning", __name__)
    return framework_class(__name__, name, EnergyHooks, base)


__all__ = ["EPOCH", "STEPS", "TEST", "VALIDATION", "EnergyCallback", "EnergyHooks"]
