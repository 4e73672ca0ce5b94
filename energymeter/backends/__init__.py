"""The explicit backend registry.

Each entry names a module and class; nothing is imported or probed until asked, and importing a
backend's class imports no optional library (torch, pynvml, amdsmi): those load in ``probe()`` or ``open()``.
What a backend is (hardware counter, model, operation counter, simulator) is declared on its class
(``Backend.kind``, ``Backend.covers``); the default selection reads it. ``available()`` probes every
backend once per process (with default options) and says what it found and why.
"""

from __future__ import annotations

import importlib
import threading
from typing import Any, Iterable

from ..errors import UnknownBackend
from .base import (HARDWARE_COUNTER, KINDS, MODEL, OPERATION_COUNTER, SIMULATOR, Backend, BackendStatus,
                   EnergySession, Reading)

#: name -> "module:Class", in the order a default meter tries them.
REGISTRY: dict[str, str] = {
    "rapl": "energymeter.backends.rapl:RaplBackend",
    "nvml": "energymeter.backends.nvml:NvmlBackend",
    "amdsmi": "energymeter.backends.amdsmi:AmdsmiBackend",
    "hwmon": "energymeter.backends.hwmon:HwmonBackend",
    "cpu-model": "energymeter.backends.cpu_model:CpuModelBackend",
    "flops": "energymeter.backends.flops:FlopsBackend",
    "loihi": "energymeter.backends.loihi:LoihiBackend",
}

_default_instances: dict[str, Backend] = {}
_lock = threading.Lock()

__all__ = ["HARDWARE_COUNTER", "KINDS", "MODEL", "OPERATION_COUNTER", "REGISTRY", "SIMULATOR", "Backend",
           "BackendStatus", "EnergySession", "Reading", "available", "backend_class", "create", "default_backend",
           "default_selection", "energy_names", "names", "register"]


def register(name: str, target: str) -> None:
    """Add one backend to the registry without editing ``REGISTRY`` (a plugin, a test's fake).

    Args:
        name: The backend's registry name (its class's ``name``).
        target: ``"module:Class"``; nothing is imported until the backend is asked for.

    Raises:
        ValueError: ``name`` is already registered (two producers of one name are an error, never an
            overwrite), or ``target`` is not of the form ``"module:Class"``.
    """
    module_name, _, class_name = target.partition(":")
    if not module_name or not class_name:
        raise ValueError(f"backend target {target!r} must be 'module:Class'")
    with _lock:
        if name in REGISTRY:
            raise ValueError(f"backend {name!r} is already registered ({REGISTRY[name]}); not replacing it "
                             f"with {target}")
        REGISTRY[name] = target


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
    """One status per registered backend: name, available, reason, domains (probes are cached).

    A probe that raises makes its backend unavailable with the error as the reason; the others are listed.
    """
    statuses = []
    for name in REGISTRY:
        try:
            statuses.append(default_backend(name).probe())
        except ImportError as exc:
            statuses.append(BackendStatus(name, False, f"cannot import backend: {exc}"))
        except Exception as exc:  # one backend's fault is that backend's, never the listing's
            statuses.append(BackendStatus(name, False, f"probe failed: {type(exc).__name__}: {exc}"))
    return statuses


def default_selection(available_names: Iterable[str], kinds: Iterable[str] = (HARDWARE_COUNTER, MODEL,
                                                                               OPERATION_COUNTER)) -> list[str]:
    """The backends a default meter uses out of ``available_names``, by their declared kinds.

    Hardware counters always, except one that ``overlaps`` others (hwmon: a whole-system meter contains
    the CPU and GPUs) where any other hardware counter is available; a model only where no selected
    hardware counter covers the same device class (a modeled CPU figure is only for machines with no CPU
    counter); operation counters and simulators only when their kind is in ``kinds``. Simulators are never
    in the default: they report simulated hardware, not what ran.
    """
    wanted = set(kinds)
    chosen = [n for n in available_names if backend_class(n).kind in wanted]
    if any(backend_class(n).kind == HARDWARE_COUNTER and not backend_class(n).overlaps for n in chosen):
        chosen = [n for n in chosen if not backend_class(n).overlaps]
    covered = {device for n in chosen if backend_class(n).kind == HARDWARE_COUNTER
               for device in backend_class(n).covers}
    return [n for n in chosen
            if backend_class(n).kind != MODEL or not covered.intersection(backend_class(n).covers)]


def energy_names() -> list[str]:
    """The available backends that measure or model this machine's energy (no operation counters, no simulators)."""
    return default_selection([s.name for s in available() if s.available], kinds=(HARDWARE_COUNTER, MODEL))
