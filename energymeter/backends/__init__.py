"""The explicit backend registry.

Each entry names a module and class; nothing is imported or probed until asked. ``available()``
probes every backend once per process (with default options) and says what it found and why.
"""

from __future__ import annotations

import importlib
import threading
from typing import Any

from ..errors import UnknownBackend
from .base import Backend, BackendStatus, EnergySession, Reading

#: name -> "module:Class", in the order a default meter tries them.
REGISTRY: dict[str, str] = {
    "rapl": "energymeter.backends.rapl:RaplBackend",
    "nvml": "energymeter.backends.nvml:NvmlBackend",
    "cpu-model": "energymeter.backends.cpu_model:CpuModelBackend",
    "flops": "energymeter.backends.flops:FlopsBackend",
    "loihi": "energymeter.loihi.backend:LoihiBackend",
}

_default_instances: dict[str, Backend] = {}
_lock = threading.Lock()

#: Backends that report something other than this process's hardware energy.
NOT_HARDWARE = ("flops", "loihi")

__all__ = ["NOT_HARDWARE", "REGISTRY", "Backend", "BackendStatus", "EnergySession", "Reading", "available",
           "backend_class", "create", "default_backend", "hardware_energy_names", "names", "prefer_counters"]


def names() -> list[str]:
    """Registered backend names."""
    return list(REGISTRY)


def backend_class(name: str) -> type[Backend]:
    """The class registered under ``name``.

    Raises:
        UnknownBackend: ``name`` is not registered.
    """
    try:
        target = REGISTRY[name]
    except KeyError:
        raise UnknownBackend(f"unknown backend {name!r}; known backends: {', '.join(REGISTRY)}") from None
    module_name, _, class_name = target.partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def create(name: str, options: dict[str, Any]) -> Backend:
    """A backend built with the options it accepts (others are ignored here; the meter checks them)."""
    cls = backend_class(name)
    return cls(**{k: v for k, v in options.items() if k in cls.options})


def default_backend(name: str) -> Backend:
    """The process-wide backend object with default options, so its probe runs once."""
    with _lock:
        if name not in _default_instances:
            _default_instances[name] = create(name, {})
        return _default_instances[name]


def available() -> list[BackendStatus]:
    """One status per registered backend: name, available, reason, domains (probes are cached)."""
    statuses = []
    for name in REGISTRY:
        try:
            statuses.append(default_backend(name).probe())
        except ImportError as exc:
            statuses.append(BackendStatus(name, False, f"cannot import backend: {exc}"))
    return statuses


def prefer_counters(names: list[str]) -> list[str]:
    """Drop ``cpu-model`` where ``rapl`` is among ``names``: a modeled CPU figure is only for machines
    where no CPU counter exists."""
    return [n for n in names if n != "cpu-model"] if "rapl" in names else list(names)


def hardware_energy_names() -> list[str]:
    """The available backends that measure or model this machine's energy (no FLOPs, no simulation)."""
    return prefer_counters([s.name for s in available() if s.available and s.name not in NOT_HARDWARE])
