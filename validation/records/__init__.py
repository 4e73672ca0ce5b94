"""What a sweep leaves on disk, typed: a run (``spec``), its record (``record``, ``record_parts``), the
directory (``store``) and ``sweep.json`` (``manifest``). Imports nothing else of the validation suite."""

from .manifest import SweepManifest
from .record import EpochRecord, LoihiRecord, MachineLoad, RecordError, RunRecord, WindowRecord
from .spec import RunSpec

__all__ = ["EpochRecord", "LoihiRecord", "MachineLoad", "RecordError", "RunRecord", "RunSpec", "SweepManifest",
           "WindowRecord"]
