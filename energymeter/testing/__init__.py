"""Fakes of the hardware interfaces, for energymeter's tests and for users' own.

``FakeNVML`` implements the subset of nvidia-ml-py's ``pynvml`` module that energymeter calls, with the
same names, arguments, units (mJ, mW) and error classes, and injects the faults a real driver shows
(``FakeGpu(lost=True)``, ``accessible=False``, ``errors=[NVML_ERROR_TIMEOUT]`` for one transient
error). ``FakePowercap`` builds a powercap sysfs tree under a directory of your choice; write any text
into its files to reproduce a broken counter or range. ``FakeAMDSMI`` implements the subset of AMD's
``amdsmi`` package that energymeter calls (its names, return dicts, units and ``AmdSmiLibraryException``
codes), with GPUs (``FakeAmdGpu``) whose ``energy_j`` is the truth its wrapping counter shows in counts and a
writer (``draw(seconds)``) that adds each GPU's power x time. ``FakeHwmon`` builds a hwmon tree of the known
layouts (Jetson INA3221, Grace, amd_energy, ACPI power meters) with a writer that keeps its own clock and
knows the true energy each sensor drew. None touches real hardware.
"""

from .fake_amdsmi import FakeAmdGpu, FakeAMDSMI
from .fake_hwmon import FakeHwmon
from .fake_nvml import FakeGpu, FakeNVML
from .fake_powercap import FakePowercap

__all__ = ["FakeAMDSMI", "FakeAmdGpu", "FakeGpu", "FakeHwmon", "FakeNVML", "FakePowercap"]
