"""A SoC-like backend, written as a new backend would be (one file, one ``register()`` line).

Like an Apple-Silicon power meter it reports one combined figure (``soc:0``) beside the CPU and GPU
clusters that figure already contains; its names follow no pattern the library knows, so only the
declarations can say what is inside what.
"""

from __future__ import annotations

from energymeter.backends import Backend, BackendStatus, EnergySession, Reading
from energymeter.domains import CPU, GPU, HOST, SOC, Domain
from energymeter.kinds import HARDWARE_COUNTER

COMBINED, CPU_CLUSTER, GPU_CLUSTER = "soc:0", "soc:0:p-cluster", "soc:0:gpu-cluster"
#: Joules each read adds: the combined figure is more than its clusters (memory, fabric).
STEP_J = {COMBINED: 10.0, CPU_CLUSTER: 4.0, GPU_CLUSTER: 5.0}


class FakeSocBackend(Backend):
    name = "fake-soc"
    kind = HARDWARE_COUNTER
    covers = ("cpu", "gpu")

    def _probe(self) -> BackendStatus:
        return BackendStatus(self.name, True, "a fake SoC for tests", tuple(STEP_J), "measured")

    def _open(self) -> "FakeSocSession":
        return FakeSocSession()


class FakeSocSession(EnergySession):
    def __init__(self) -> None:
        self.domains = {
            COMBINED: Domain(COMBINED, SOC, HOST, "measured", HARDWARE_COUNTER, "soc0", (CPU_CLUSTER, GPU_CLUSTER)),
            CPU_CLUSTER: Domain(CPU_CLUSTER, CPU, HOST, "measured", HARDWARE_COUNTER, "soc0-p"),
            GPU_CLUSTER: Domain(GPU_CLUSTER, GPU, HOST, "measured", HARDWARE_COUNTER, "soc0-gpu"),
        }
        self._reads = 0

    def read(self) -> Reading:
        self._reads += 1
        return Reading({d: step * self._reads for d, step in STEP_J.items()})
