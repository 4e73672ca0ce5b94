"""Where and with what a sweep ran: host, CPU and GPU models, driver and library versions, backends."""

from __future__ import annotations

import os
import platform
import socket
import sys
from typing import Any


def collect(backend_statuses: list[Any]) -> dict[str, Any]:
    """Machine and software facts for a report (no network, nothing written)."""
    import torch

    from energymeter import __version__
    from energymeter.backends.cpu_model import read_cpu_model

    gpus, driver = [], None
    if torch.cuda.is_available():
        gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            driver = pynvml.nvmlSystemGetDriverVersion()
            driver = driver.decode() if isinstance(driver, bytes) else driver
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # no driver or no nvidia-ml-py: the metadata simply has no driver version
        driver = None
    return {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu_model": read_cpu_model(),
        "logical_cpus": os.cpu_count(),
        "gpus": gpus,
        "nvidia_driver": driver,
        "cuda": torch.version.cuda,
        "torch": torch.__version__,
        "energymeter": __version__,
        "backends": [s.to_dict() for s in backend_statuses],
    }
