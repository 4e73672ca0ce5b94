"""What a measured domain is, declared as data by the session that reports it.

Every energy session publishes, for each domain it reports, one frozen ``Domain``: which class of
device it belongs to, whether its figure is host-wide, per device or per process, the device's stable
identity, which other domains its figure already contains, its provenance and the kind of backend
that produced it. ``Measurement``, its total rule, ``distributed.merge``, the analysis and the
cross-checks read these fields; no consumer parses a domain's meaning out of its name.

Only records written before declarations existed (schemas 1 and 2), and sessions written before them
(which publish only ``provenance`` and ``devices``), have their declarations inferred from their names,
by ``infer_domain`` below: it is the one place that knows the old naming patterns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any, Mapping

from .kinds import HARDWARE_COUNTER, KINDS, MODEL, SIMULATOR

# Device classes.
CPU = "cpu"
GPU = "gpu"
SOC = "soc"  # a combined figure of a system on chip (CPU, GPU and memory of one package)
ACCELERATOR = "accelerator"
SIMULATED = "simulated"
SYSTEM = "system"  # a whole machine's figure (an ACPI power meter): it contains every other device of its host
DEVICE_CLASSES = (CPU, GPU, SOC, ACCELERATOR, SIMULATED, SYSTEM)

# Scopes: who else sees the same figure.
HOST = "host"  # every process on the host reads the same counter (RAPL packages, a board rail)
DEVICE = "device"  # one device, identified by device_id, which several processes (ranks) may share
PROCESS = "process"  # this process's own figure (a CPU-time model, a simulation)
SCOPES = (HOST, DEVICE, PROCESS)

_PROVENANCES = ("measured", "integrated", "modeled")

#: The kind of a domain read from an old record whose name says nothing known: it never counts in a total.
#: No backend has it (it is not in ``energymeter.kinds.KINDS``).
UNKNOWN_KIND = "unknown"


@dataclass(frozen=True, slots=True)
class Domain:
    """The declaration of one energy domain.

    Attributes:
        name: The domain's key in ``Measurement.energy_j`` (``"cpu:0:package"``, ``"gpu:0"``).
        device_class: One of ``DEVICE_CLASSES``.
        scope: One of ``SCOPES``.
        device_id: A stable identity of the hardware (a GPU's UUID, a RAPL zone's sysfs path, a socket);
            ``""`` when there is none.
        contains: Names of the domains whose energy this domain's figure already includes (a platform
            ``psys`` contains the packages and DRAM; a package contains its cores).
        provenance: ``measured``, ``integrated`` or ``modeled``.
        kind: The kind of backend that reports it (``energymeter.kinds.KINDS``).
    """

    name: str
    device_class: str
    scope: str
    provenance: str
    kind: str
    device_id: str = ""
    contains: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.device_class not in DEVICE_CLASSES:
            raise ValueError(f"domain {self.name!r}: unknown device class {self.device_class!r}")
        if self.scope not in SCOPES:
            raise ValueError(f"domain {self.name!r}: unknown scope {self.scope!r}")
        if self.provenance not in _PROVENANCES:
            raise ValueError(f"domain {self.name!r}: unknown provenance {self.provenance!r}")
        if self.kind not in KINDS and self.kind != UNKNOWN_KIND:
            raise ValueError(f"domain {self.name!r}: unknown backend kind {self.kind!r}")
        if type(self.contains) is not tuple:
            object.__setattr__(self, "contains", tuple(self.contains))
        if self.name in self.contains:
            raise ValueError(f"domain {self.name!r} cannot contain itself")

    def renamed(self, name: str, contains: tuple[str, ...] | None = None) -> "Domain":
        """The same declaration under another name (a host prefix, a rank suffix)."""
        return replace(self, name=name, contains=self.contains if contains is None else contains)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (without the name, which is the key it is stored under)."""
        return {"device_class": self.device_class, "scope": self.scope, "device_id": self.device_id,
                "contains": list(self.contains), "provenance": self.provenance, "kind": self.kind}

    @classmethod
    def from_dict(cls, name: str, data: Mapping[str, Any]) -> "Domain":
        """Reads ``to_dict``'s form back.

        Raises:
            ValueError, TypeError, KeyError: a malformed declaration.
        """
        contains = data.get("contains", ())
        if not isinstance(contains, (list, tuple)):
            raise TypeError(f"domain {name!r}: contains must be a list")
        return cls(name=name, device_class=str(data["device_class"]), scope=str(data["scope"]),
                   device_id=str(data.get("device_id", "")), contains=tuple(str(c) for c in contains),
                   provenance=str(data["provenance"]), kind=str(data["kind"]))


def system_contains_the_rest(declarations: Mapping[str, Domain]) -> dict[str, Domain]:
    """The declarations, with each whole-system counter (class ``system``) containing every other counter beside it.

    A session declares containment among its own domains only, but a whole machine's figure (an ACPI power
    meter) also contains what other backends of the same meter measure: RAPL packages, GPUs. A meter applies
    this once when it opens, so its windows carry the containment as data. Two system meters are taken to be
    separate supplies: neither contains the other.

    Args:
        declarations: Every domain of one meter (one host), by name.
    """
    systems = [n for n, d in declarations.items() if d.device_class == SYSTEM and d.kind == HARDWARE_COUNTER]
    if not systems:
        return dict(declarations)
    others = tuple(n for n, d in declarations.items() if d.device_class != SYSTEM and d.kind == HARDWARE_COUNTER)
    out = dict(declarations)
    for name in systems:
        declaration = declarations[name]
        out[name] = declaration.renamed(name, tuple(dict.fromkeys((*declaration.contains, *others))))
    return out


def host_of(name: str) -> str | None:
    """The host prefix of an aggregate's domain (``"h1/cpu:0:package"`` -> ``"h1"``), None for a single process's.

    Host prefixes are added by ``energymeter.distributed.merge``; the total rule applies host by host.
    """
    host, _, _ = name.rpartition("/")
    return host or None


# -- schemas 1 and 2, and sessions that publish no declarations: inferred from names ----------------
_OLD_CPU = re.compile(r"^(?:(.+)/)?cpu:(\d+):(package|dram|psys|core|uncore)$")
_OLD_GPU = re.compile(r"^(?:(.+)/)?gpu:[^/]+$")
_OLD_CPU_MODEL = re.compile(r"^(?:(.+)/)?cpu:model(?::.+)?$")
_OLD_LOIHI = re.compile(r"^(?:(.+)/)?loihi:sim(?::.+)?$")


def _default_provenance(kind: str | None) -> str:
    return "modeled" if kind in (MODEL, SIMULATOR) else "measured"


def infer_domain(name: str, provenance: str | None, kind: str | None, device_id: str,
                 names: tuple[str, ...], device_class: str | None = None) -> Domain:
    """A declaration for a domain that has none (an old record's, or a session's that publishes none).

    Known names (RAPL's ``cpu:N:part``, ``gpu:N``, ``cpu:model``, ``loihi:sim``, each with an optional
    ``"<host>/"`` prefix and a ``:rank<R>`` suffix where merges added them) get what those names always
    meant. Any other name gets ``device_class`` (default ``accelerator``), scope ``process`` and the
    given kind, or ``UNKNOWN_KIND`` (never counted) when it has none.

    Args:
        name: The domain's name.
        provenance: Its provenance label; None where the record has none (a failed domain): then
            ``modeled`` for models and simulators, else ``measured``.
        kind: Its backend kind where known (schema 2, a session's backend), else None.
        device_id: Its device identity where known, else ``""``.
        names: Every domain name of the record or session (energy and failed), for containment.
        device_class: The class for a name this function does not know (a backend's ``covers``).
    """
    provenance = provenance or _default_provenance(kind)
    cpu = _OLD_CPU.match(name)
    if cpu is not None:
        host, socket, part = cpu.group(1), cpu.group(2), cpu.group(3)
        prefix = f"{host}/" if host else ""
        if part == "psys":
            parts = [n for n in names if (m := _OLD_CPU.match(n)) and m.group(1) == host and m.group(3) != "psys"]
            contains = tuple(sorted(parts))
        elif part == "package":
            contains = tuple(n for n in (f"{prefix}cpu:{socket}:core", f"{prefix}cpu:{socket}:uncore") if n in names)
        else:
            contains = ()
        return Domain(name, CPU, HOST, provenance, kind or HARDWARE_COUNTER, device_id, contains)
    if _OLD_GPU.match(name):
        return Domain(name, GPU, DEVICE, provenance, kind or HARDWARE_COUNTER, device_id)
    if _OLD_CPU_MODEL.match(name):
        return Domain(name, CPU, PROCESS, provenance, kind or MODEL, device_id)
    if _OLD_LOIHI.match(name):
        return Domain(name, SIMULATED, PROCESS, provenance, kind or SIMULATOR, device_id)
    chosen_class = device_class if device_class in DEVICE_CLASSES else ACCELERATOR
    return Domain(name, chosen_class, PROCESS, provenance, kind or UNKNOWN_KIND, device_id)


def infer_domains(provenance: Mapping[str, str], devices: Mapping[str, str], kinds: Mapping[str, str],
                  names: tuple[str, ...], device_class: str | None = None) -> dict[str, Domain]:
    """``infer_domain`` for each of ``names``, from the parallel maps that records before schema 3 carried."""
    return {n: infer_domain(n, provenance.get(n), kinds.get(n), devices.get(n, ""), names, device_class)
            for n in names}
