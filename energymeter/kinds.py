"""What a backend is, declared as data on its class (``Backend.kind``) and carried into every Measurement
(each domain's ``Domain.kind``): the default selection, the meter's protocol per session and the
no-double-counting total rule all read it."""

HARDWARE_COUNTER = "hardware-counter"  # reads this machine's energy from the hardware (RAPL, NVML)
MODEL = "model"  # estimates this machine's energy from a model (TDP x utilisation)
OPERATION_COUNTER = "operation-counter"  # counts operations (FLOPs), not joules
SIMULATOR = "simulator"  # prices operations of simulated hardware (Loihi); never this machine's energy
KINDS = (HARDWARE_COUNTER, MODEL, OPERATION_COUNTER, SIMULATOR)
