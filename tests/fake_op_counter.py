"""An operation counter written as a new one would be: a Backend of kind operation-counter whose session is a
WindowCounter. The meter picks the protocol by the backend's kind, so nothing in ``meter.py`` names it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping

from energymeter.backends import OPERATION_COUNTER, Backend, BackendStatus
from energymeter.backends.base import WindowCounter


@dataclass(frozen=True)
class OpsResult:
    flops: int | None
    uncounted_ops: Mapping[str, int] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    shadow_s: float = 0.0


class FakeOpsBackend(Backend):
    """Counts ``ops_per_window`` operations in every window that names a model."""

    name = "fake-ops"
    kind = OPERATION_COUNTER
    options = ("ops_per_window",)

    def __init__(self, ops_per_window: int = 7) -> None:
        super().__init__()
        self.ops_per_window = ops_per_window

    def _probe(self) -> BackendStatus:
        return BackendStatus(self.name, True, "a fake operation counter for tests", ("ops",), "counted")

    def _open(self) -> "FakeOpsCounter":
        return FakeOpsCounter(self.ops_per_window)


class FakeOpsCounter(WindowCounter):
    not_counted_without_model: ClassVar[str] = "fake-ops: not counted without model="

    def __init__(self, ops: int) -> None:
        self.ops = ops
        self.begun: list[Any] = []
        self.closed = False

    def begin(self, model: Any = None) -> Any:
        self.begun.append(model)
        return model

    def end(self, token: Any) -> OpsResult:
        return OpsResult(self.ops, {"op.unknown": 1} if token == "partial" else {})

    def close(self) -> None:
        self.closed = True
