"""The immutable record of one measured window and the rule for its total.

Every energy figure is in joules and carries one provenance label:

* ``measured``: read from a hardware energy counter (RAPL, NVML's total-energy counter).
* ``integrated``: power samples integrated over time (NVML power sampling).
* ``modeled``: computed from a model (TDP x utilisation, pJ-per-operation tables).

FLOPs are ``counted``; they are not energy and live in their own field.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

from .kinds import HARDWARE_COUNTER, KINDS, MODEL

SCHEMA_VERSION = 2
#: Versions ``from_dict`` reads: 1 lacks ``devices`` (read as empty).
READABLE_SCHEMA_VERSIONS = (1, 2)

MEASURED = "measured"
INTEGRATED = "integrated"
MODELED = "modeled"
COUNTED = "counted"
PROVENANCES = (MEASURED, INTEGRATED, MODELED)

# Strongest first: a total is only as strong as its weakest contributor.
_PROVENANCE_RANK = {MEASURED: 0, INTEGRATED: 1, MODELED: 2}

# Domains may carry a host prefix (``"<host>/cpu:0:package"``) when windows of several hosts are combined
# (``energymeter.distributed.aggregate``); the total rule then applies per host.
_CPU_DOMAIN = re.compile(r"^(?:(.+)/)?cpu:(\d+):(package|dram|psys|core|uncore)$")
_GPU_DOMAIN = re.compile(r"^(?:.+/)?gpu:[^/]+$")
_CPU_MODEL_DOMAIN = re.compile(r"^(?:(.+)/)?cpu:model(?::.+)?$")


def _host_and_class(domain: str) -> tuple[str | None, str]:
    """(host or None, device class) of a domain: ``"a/cpu:0:package"`` -> ("a", "cpu"); ``"gpu:0"`` -> (None, "gpu")."""
    host, _, local = domain.rpartition("/")
    return (host or None, local.split(":", 1)[0])


class SchemaError(ValueError):
    """A serialised measurement that cannot be read back."""


@dataclass(frozen=True, slots=True)
class Measurement:
    """Energy drawn by each hardware domain during one window.

    Attributes:
        name: The window's name.
        start_time_s: Wall-clock start, seconds since the Unix epoch.
        duration_s: Window length in seconds (monotonic clock).
        energy_j: Joules per domain, e.g. ``"gpu:0"``, ``"cpu:0:package"``, ``"cpu:0:dram"``,
            ``"cpu:0:psys"``, ``"cpu:model"``. Failed domains are absent here and present in ``failed``.
        provenance: Domain to ``measured`` | ``integrated`` | ``modeled``.
        flops: Floating-point operations counted in the window (a multiply-add counts 2), or None
            when no FLOP counter ran or it could not count this window.
        uncounted_ops: Operator name to call count for operators the FLOP counter saw but has no
            formula for (their FLOPs are not in ``flops``).
        failed: Domain to the reason it has no figure for this window.
        warnings: Human-readable caveats (short window, no wraparound correction, ...).
        devices: Domain to a stable hardware identity where one exists (a GPU's UUID, a RAPL zone's
            sysfs path), so windows from several processes can be combined without double counting.
        kinds: Domain to the kind of backend that measured it (``hardware-counter``, ``model``,
            ``simulator``), which the total rule reads; domains without one are judged by their names.
    """

    name: str
    duration_s: float
    energy_j: Mapping[str, float] = field(default_factory=dict)
    provenance: Mapping[str, str] = field(default_factory=dict)
    flops: int | None = None
    uncounted_ops: Mapping[str, int] = field(default_factory=dict)
    failed: Mapping[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    start_time_s: float = 0.0
    devices: Mapping[str, str] = field(default_factory=dict)
    kinds: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.energy_j.keys() != self.provenance.keys():
            raise ValueError("every energy domain needs exactly one provenance label")
        for domain, label in self.provenance.items():
            if label not in _PROVENANCE_RANK:
                raise ValueError(f"domain {domain!r}: unknown provenance {label!r}")
        # Read-only copies so that a frozen record cannot be changed through its dicts. This runs at
        # every window's end, so it avoids getattr/setattr by name.
        setattr_ = object.__setattr__
        setattr_(self, "energy_j", MappingProxyType(dict(self.energy_j)))
        setattr_(self, "provenance", MappingProxyType(dict(self.provenance)))
        setattr_(self, "uncounted_ops", MappingProxyType(dict(self.uncounted_ops)))
        setattr_(self, "failed", MappingProxyType(dict(self.failed)))
        setattr_(self, "devices", MappingProxyType(dict(self.devices)))
        setattr_(self, "kinds", MappingProxyType(dict(self.kinds)))
        for domain, kind in self.kinds.items():
            if kind not in KINDS:
                raise ValueError(f"domain {domain!r}: unknown backend kind {kind!r}")
        if type(self.warnings) is not tuple:
            setattr_(self, "warnings", tuple(self.warnings))

    @property
    def total_domains(self) -> tuple[str, ...]:
        """The domains that ``total_energy_j`` adds up, by the no-double-counting rule.

        The rule, applied in order:

        1. GPUs (``gpu:N``) are disjoint hardware and always count.
        2. CPU counters: where a ``psys`` domain exists it covers the whole platform (package,
           DRAM and more), so it counts and the sockets' package and DRAM domains do not.
           Otherwise each socket's ``package`` and ``dram`` count. ``core`` and ``uncore`` are
           parts of ``package`` and never count.
        3. A model's domain (``cpu:model``) counts only where no hardware counter of the same device class
           (cpu, gpu) exists on its host at all, measured or failed: a modeled figure never stands in
           for hardware that was measured.
        4. Simulators (``loihi:sim``) and operation counters are not the hardware that ran the code and
           never count.

        Which rule a domain follows comes from ``kinds`` (the backend's declared kind); a domain without
        one (a record written before kinds existed) is judged by its name, and an unknown name never counts.

        Domains prefixed with a host (``"<host>/cpu:0:package"``) follow the same rule host by host.
        """
        chosen: list[str] = []
        counted: set[tuple[str | None, str]] = set()  # (host, device class) with a hardware counter
        psys_hosts: set[str | None] = set()
        for d in (*self.energy_j, *self.failed):
            if self._kind(d) == HARDWARE_COUNTER:
                counted.add(_host_and_class(d))
                match = _CPU_DOMAIN.match(d)
                # Only a psys that has a figure stands in for the sockets; a failed one leaves them to count.
                if match and match.group(3) == "psys" and d in self.energy_j:
                    psys_hosts.add(match.group(1))
        for domain in sorted(self.energy_j):
            kind = self._kind(domain)
            if kind == HARDWARE_COUNTER:
                match = _CPU_DOMAIN.match(domain)
                if match is None:  # a GPU, or another counter of its own hardware: disjoint, always counts
                    chosen.append(domain)
                    continue
                host, part = match.group(1), match.group(3)
                has_psys = host in psys_hosts
                if (has_psys and part == "psys") or (not has_psys and part in ("package", "dram")):
                    chosen.append(domain)
            elif kind == MODEL and _host_and_class(domain) not in counted:
                chosen.append(domain)
        return tuple(chosen)

    def _kind(self, domain: str) -> str | None:
        """The domain's backend kind: declared, else inferred from its name (None: never counts)."""
        kind = self.kinds.get(domain)
        if kind is not None:
            return kind
        if _GPU_DOMAIN.match(domain) or _CPU_DOMAIN.match(domain):
            return HARDWARE_COUNTER
        if _CPU_MODEL_DOMAIN.match(domain):
            return MODEL
        return None

    @property
    def total_complete(self) -> bool:
        """False when a domain that would have counted in the total failed in this window (a GPU, a socket's
        package or DRAM, a platform psys): ``total_energy_j`` then leaves that hardware out."""
        for domain in self.failed:
            kind = self._kind(domain)
            if kind == HARDWARE_COUNTER:
                match = _CPU_DOMAIN.match(domain)
                if match is None or match.group(3) in ("package", "dram", "psys"):
                    return False
            elif kind == MODEL:
                return False
        return True

    @property
    def total_energy_j(self) -> float:
        """Joules summed over ``total_domains`` (0.0 when none)."""
        return math.fsum(self.energy_j[d] for d in self.total_domains)

    @property
    def total_provenance(self) -> str | None:
        """The weakest provenance among the domains in the total, or None when it is empty."""
        labels = [self.provenance[d] for d in self.total_domains]
        return max(labels, key=_PROVENANCE_RANK.__getitem__) if labels else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict, with ``schema_version``, that ``from_dict`` reads back."""
        return {
            "schema_version": SCHEMA_VERSION,
            "name": self.name,
            "start_time_s": self.start_time_s,
            "duration_s": self.duration_s,
            "energy_j": dict(self.energy_j),
            "provenance": dict(self.provenance),
            "total_energy_j": self.total_energy_j,
            "total_domains": list(self.total_domains),
            "total_provenance": self.total_provenance,
            "total_complete": self.total_complete,
            "flops": self.flops,
            "flops_provenance": COUNTED if self.flops is not None else None,
            "uncounted_ops": dict(self.uncounted_ops),
            "failed": dict(self.failed),
            "warnings": list(self.warnings),
            "devices": dict(self.devices),
            "kinds": dict(self.kinds),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Measurement":
        """Rebuilds a measurement written by ``to_dict``.

        Raises:
            SchemaError: the dict is not a measurement of a schema version this code reads.
        """
        if not isinstance(data, Mapping):
            raise SchemaError("a measurement must be a JSON object")
        version = data.get("schema_version")
        if version not in READABLE_SCHEMA_VERSIONS:
            raise SchemaError(f"unsupported measurement schema_version {version!r} (this energymeter reads "
                              f"{', '.join(map(str, READABLE_SCHEMA_VERSIONS))})")
        try:
            return cls(
                name=str(data["name"]),
                start_time_s=float(data.get("start_time_s", 0.0)),
                duration_s=float(data["duration_s"]),
                energy_j={str(k): float(v) for k, v in data["energy_j"].items()},
                provenance={str(k): str(v) for k, v in data["provenance"].items()},
                flops=None if data.get("flops") is None else int(data["flops"]),
                uncounted_ops={str(k): int(v) for k, v in data.get("uncounted_ops", {}).items()},
                failed={str(k): str(v) for k, v in data.get("failed", {}).items()},
                warnings=tuple(str(w) for w in data.get("warnings", ())),
                devices={str(k): str(v) for k, v in data.get("devices", {}).items()},
                kinds={str(k): str(v) for k, v in data.get("kinds", {}).items()},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SchemaError(f"malformed measurement: {exc}") from exc
