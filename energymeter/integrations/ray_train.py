"""Ray Train: each worker's energy between reports, aggregated over the workers, in ``ray.train.report``.

Ray forwards only worker 0's metrics to Tune and the trainer's result, so a figure that worker 0 measured alone
misses the other workers' hardware (and one that each worker measured counts a shared socket once per worker).
``EnergyReporter`` measures this worker from its creation (or the previous report) to each ``report()``, then
every worker aggregates its window with the others' (``energymeter.distributed.aggregate`` over the process group
that ``TorchTrainer`` sets up: host-wide domains once per host, GPUs once per id) and reports the same figures::

    def train_func(config):
        energy = EnergyReporter(model=net)         # this worker's meter; the first window opens here
        for epoch in range(config["epochs"]):
            loss = train_epoch(net)
            energy.report({"loss": loss})          # ray.train.report(metrics + the aggregate's keys)
        energy.close()

Two phases go into each report (keys of ``energymeter.integrations.keys``): ``report``, the window since the
previous report, and ``train``, every report's window added up. ``report()`` is a collective: every worker must
call it, as Ray Train asks of ``ray.train.report`` anyway. Importing this module imports neither Ray nor torch.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from ..distributed import DistributedError
from ..measurement import Measurement
from .keys import metric_items
from .phases import Phases, add

REPORT, RUN = "report", "train"


class EnergyReporter:
    """Measures this worker between reports and reports the workers' aggregate with ``ray.train.report``.

    Args:
        backends: Backend names, or None for the default selection (see ``energymeter.Meter``).
        model: The module the training runs, whose calls' FLOPs are counted (outside the joules); None for none.
        meter: A Meter to take the windows on (otherwise this worker opens its own).
        group: The torch.distributed group the aggregate gathers over (None: the default group).
        report: The function called with the metrics (default ``ray.train.report``).
        **options: Backend options, as for ``energymeter.Meter`` (``powercap_root``, ...).

    Attributes:
        last: The latest ``report`` figure (the aggregate when several workers run).
        total: Every report's figure added up.
    """

    def __init__(self, backends: Sequence[str] | None = None, *, model: Any = None, meter: Any = None,
                 group: Any = None, report: Any = None, **options: Any) -> None:
        self._phases = Phases(backends, meter=meter, group=group, **options)
        self._model = model
        self._report = report
        self.last: Measurement | None = None
        self.total: Measurement | None = None
        self._phases.start()
        self._phases.begin(REPORT, model)

    def report(self, metrics: Mapping[str, Any], **kwargs: Any) -> dict[str, Any]:
        """Close this worker's window, aggregate it with the other workers', report, and open the next window.

        Args:
            metrics: The training's own metrics; the energy keys are added to a copy.
            **kwargs: Passed to ``ray.train.report`` (``checkpoint=``, ...).

        Returns:
            The metrics reported.

        Raises:
            DistributedError: several Ray workers and no torch.distributed process group to aggregate over.
        """
        own: Measurement = self._phases.end(REPORT)  # type: ignore[assignment]
        self.last = self._phases.combined(own)  # a collective: every worker reports at the same point
        self.total = add(self.total, self.last)
        reported = {**metrics, **metric_items(self.last, REPORT), **metric_items(self.total, RUN)}
        report = self._report
        if report is None:
            import ray.train

            workers = ray.train.get_context().get_world_size()
            if workers > 1 and not self._phases.distributed:
                raise DistributedError(f"EnergyReporter: {workers} workers but no torch.distributed process group "
                                       "to aggregate over: use TorchTrainer (it sets one up), or init one")
            report = ray.train.report
        report(reported, **kwargs)
        self._phases.begin(REPORT, self._model)
        return reported

    def close(self) -> None:
        """Close this worker's meter (the window since the last report is dropped)."""
        self._phases.close()

    def __enter__(self) -> "EnergyReporter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


__all__ = ["REPORT", "RUN", "EnergyReporter"]
