"""Fakes of the hardware interfaces, for energymeter's tests and for users' own.

``FakeNVML`` implements the subset of nvidia-ml-py's ``pynvml`` module that energymeter calls, with the
same names, arguments, units (mJ, mW) and error classes. ``FakePowercap`` builds a powercap sysfs tree
under a directory of your choice. Neither touches real hardware.
"""

from .fake_nvml import FakeGpu, FakeNVML
from .fake_powercap import FakePowercap

__all__ = ["FakeGpu", "FakeNVML", "FakePowercap"]
