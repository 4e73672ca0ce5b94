"""A second GPU backend, written as a new backend would be: this one file plus one ``register()`` line.

It reports ``gpu:0`` (as an AMD backend numbering its devices by HIP index might), which is the name
FakeNVML's GPU also gets from the ``nvml`` backend: a meter must refuse the pair, not let one figure
replace the other.
"""

from __future__ import annotations

from typing import ClassVar

from energymeter.backends import Backend, BackendStatus, EnergySession, Reading
from energymeter.domains import DEVICE, GPU, Domain
from energymeter.kinds import HARDWARE_COUNTER

DOMAIN = "gpu:0"


class FakeGpuBackend(Backend):
    """One GPU whose counter reads ``fake_gpu_joules`` (a list of cumulative joules, one per read)."""

    name = "fake-gpu"
    kind = HARDWARE_COUNTER
    covers = ("gpu",)
    options = ("fake_gpu_joules",)
    opened: ClassVar[list["FakeGpuSession"]] = []

    def __init__(self, fake_gpu_joules: list[float] | None = None) -> None:
        super().__init__()
        self._joules = list(fake_gpu_joules or [0.0])

    def _probe(self) -> BackendStatus:
        return BackendStatus(self.name, True, "a fake GPU for tests", (DOMAIN,), "measured")

    def _open(self) -> "FakeGpuSession":
        session = FakeGpuSession(self._joules)
        FakeGpuBackend.opened.append(session)
        return session


class FakeGpuSession(EnergySession):
    def __init__(self, joules: list[float]) -> None:
        self.domains = {DOMAIN: Domain(DOMAIN, GPU, DEVICE, "measured", HARDWARE_COUNTER, "FAKE-GPU-0")}
        self._joules = joules
        self.closed = False

    def read(self) -> Reading:
        return Reading({DOMAIN: self._joules.pop(0) if len(self._joules) > 1 else self._joules[0]})

    def close(self) -> None:
        self.closed = True
