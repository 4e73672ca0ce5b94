"""The immutable record of one measured window and the rule for its total.

Every energy figure is in joules and carries one provenance label:

* ``measured``: read from a hardware energy counter (RAPL, NVML's total-energy counter).
* ``integrated``: power samples integrated over time (NVML power sampling).
* ``modeled``: computed from a model (TDP x utilisation, pJ-per-operation tables).

FLOPs are ``counted``; they are not energy and live in their own field.

What each domain is (device class, scope, device id, what it contains, provenance, backend kind) is
declared by the session that measured it (``energymeter.domains.Domain``) and carried in
``Measurement.domains``; the total rule reads those declarations, never the domains' names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

from .domains import UNKNOWN_KIND, Domain, host_of, infer_domains
from .errors import EnergymeterError
from .kinds import HARDWARE_COUNTER, MODEL

SCHEMA_VERSION = 3
#: Versions ``from_dict`` reads: 1 lacks ``devices`` (read as empty); 1 and 2 lack ``domains`` (their
#: declarations are inferred from the domains' names by ``energymeter.domains.infer_domain``).
READABLE_SCHEMA_VERSIONS = (1, 2, 3)

MEASURED = "measured"
INTEGRATED = "integrated"
MODELED = "modeled"
COUNTED = "counted"
PROVENANCES = (MEASURED, INTEGRATED, MODELED)

# Strongest first: a total is only as strong as its weakest contributor.
_PROVENANCE_RANK = {MEASURED: 0, INTEGRATED: 1, MODELED: 2}
_Proxy = MappingProxyType
_EMPTY: Mapping[str, Any] = MappingProxyType({})


class SchemaError(EnergymeterError, ValueError):
    """A serialised measurement that cannot be read back (a ValueError too, as it always was)."""


@dataclass(frozen=True, slots=True, init=False)
class Measurement:
    """Energy drawn by each domain during one window.

    Build one with ``domains=`` (the declarations), or, as before declarations existed, with the maps
    ``provenance=`` (required then: one label per energy domain), ``devices=`` and ``kinds=``, from which
    the declarations are inferred by name (``energymeter.domains.infer_domain``).

    Attributes:
        name: The window's name.
        start_time_s: Wall-clock start, seconds since the Unix epoch.
        duration_s: Window length in seconds (monotonic clock).
        energy_j: Joules per domain, e.g. ``"gpu:0"``, ``"cpu:0:package"``, ``"cpu:0:dram"``,
            ``"cpu:0:psys"``, ``"cpu:model"``. Failed domains are absent here and present in ``failed``.
        domains: Domain to its declaration, for every domain in ``energy_j`` and ``failed``.
        flops: Floating-point operations counted in the window (a multiply-add counts 2), or None
            when no FLOP counter ran or it could not count this window.
        uncounted_ops: Operator name to call count for operators the FLOP counter saw but has no
            formula for (their FLOPs are not in ``flops``).
        failed: Domain to the reason it has no figure for this window.
        warnings: Human-readable caveats (short window, no wraparound correction, ...).
        timeline: Power over the window, where it was kept (``timeline_period_s=``; see ``energymeter.timeline``):
            ``((t_s, {domain: power_w}), ...)``, each the mean power (W) over the interval ending ``t_s`` seconds
            after the window opened; empty when no timeline was kept.
    """

    name: str
    duration_s: float
    energy_j: Mapping[str, float]
    domains: Mapping[str, Domain]
    flops: int | None
    uncounted_ops: Mapping[str, int]
    failed: Mapping[str, str]
    warnings: tuple[str, ...]
    start_time_s: float
    timeline: tuple[tuple[float, Mapping[str, float]], ...]
    # Derived maps and the total, computed on first use (the record is immutable, so they never go stale).
    _cache: dict[str, Any] = field(init=False, repr=False, compare=False)

    def __init__(self, name: str, duration_s: float, energy_j: Mapping[str, float] | None = None,
                 provenance: Mapping[str, str] | None = None, flops: int | None = None,
                 uncounted_ops: Mapping[str, int] | None = None, failed: Mapping[str, str] | None = None,
                 warnings: tuple[str, ...] = (), start_time_s: float = 0.0, devices: Mapping[str, str] | None = None,
                 kinds: Mapping[str, str] | None = None, *, domains: Mapping[str, Domain] | None = None,
                 timeline: Any = ()) -> None:
        energy = dict(energy_j or {})
        failures = dict(failed or {})
        names = tuple(dict.fromkeys((*energy, *failures)))
        if domains is None:
            labels = dict(provenance or {})
            if energy.keys() != labels.keys():
                raise ValueError("every energy domain needs exactly one provenance label")
            for domain, label in labels.items():
                if label not in _PROVENANCE_RANK:
                    raise ValueError(f"domain {domain!r}: unknown provenance {label!r}")
            declared = infer_domains(labels, devices or {}, kinds or {}, names)
        else:
            if provenance is not None or devices is not None or kinds is not None:
                raise TypeError("give domains= or the provenance/devices/kinds maps, not both")
            declared = dict(domains)
            for key, declaration in declared.items():
                if not isinstance(declaration, Domain) or declaration.name != key:
                    raise ValueError(f"domains[{key!r}] must be the Domain named {key!r}, not {declaration!r}")
            undeclared = [n for n in names if n not in declared]
            if undeclared:
                raise ValueError(f"domain(s) without a declaration: {', '.join(undeclared)}")
            extra = [n for n in declared if n not in energy and n not in failures]
            if extra:
                raise ValueError(f"declaration(s) of domains with neither a figure nor a failure: {', '.join(extra)}")
        setattr_ = object.__setattr__
        setattr_(self, "name", name)
        setattr_(self, "duration_s", duration_s)
        setattr_(self, "energy_j", _Proxy(energy))
        setattr_(self, "domains", _Proxy({n: declared[n] for n in names}))
        setattr_(self, "flops", flops)
        setattr_(self, "uncounted_ops", _Proxy(dict(uncounted_ops or {})))
        setattr_(self, "failed", _Proxy(failures))
        setattr_(self, "warnings", tuple(warnings))
        setattr_(self, "start_time_s", start_time_s)
        setattr_(self, "timeline", _timeline(timeline) if timeline else ())
        setattr_(self, "_cache", {})

    @classmethod
    def _trusted(cls, name: str, duration_s: float, energy_j: Mapping[str, float], domains: Mapping[str, Domain],
                 flops: int | None, uncounted_ops: Mapping[str, int], warnings: tuple[str, ...],
                 start_time_s: float, provenance: Mapping[str, str]) -> "Measurement":
        """A window in which every declared domain has its figure, built without the checks (the Meter's path).

        The caller guarantees what ``__init__`` would check: ``energy_j`` has exactly the keys of
        ``domains``, ``provenance`` is each domain's declared label, and every mapping is read-only and
        owned by nobody who changes it.
        """
        # Filled as a twin with the same slots and no frozen __setattr__, then turned into the class itself
        # (``__class__`` assignment between classes of one slot layout): plain stores, a third of the cost.
        m = _new(_Unsealed)
        m.name = name
        m.duration_s = duration_s
        m.energy_j = energy_j
        m.domains = domains
        m.flops = flops
        m.uncounted_ops = uncounted_ops
        m.failed = _EMPTY
        m.warnings = warnings
        m.start_time_s = start_time_s
        m.timeline = ()
        m._cache = {"provenance": provenance}
        m.__class__ = cls
        return m

    def _with_timeline(self, timeline: tuple[tuple[float, Mapping[str, float]], ...]) -> "Measurement":
        """This record with ``timeline`` (read-only mappings, in time order: the meter's recorder builds them)."""
        m = _new(_Unsealed)
        for name in Measurement.__slots__:
            setattr(m, name, getattr(self, name))
        m.timeline = timeline
        m._cache = dict(self._cache)
        m.__class__ = Measurement
        return m

    def _repr_html_(self) -> str:
        """The table of ``energymeter.display.format_measurement`` as escaped HTML, for Jupyter."""
        from .notebook_html import measurement_html

        return measurement_html(self)

    # -- the parallel maps of schemas 1 and 2, derived from the declarations ------------------------
    @property
    def provenance(self) -> Mapping[str, str]:
        """Domain to ``measured`` | ``integrated`` | ``modeled``, for every domain in ``energy_j``."""
        cache = self._cache
        if "provenance" not in cache:
            cache["provenance"] = _Proxy({d: self.domains[d].provenance for d in self.energy_j})
        return cache["provenance"]

    @property
    def devices(self) -> Mapping[str, str]:
        """Domain to its stable hardware identity (a GPU's UUID, a RAPL zone's sysfs path), where it has one."""
        cache = self._cache
        if "devices" not in cache:
            cache["devices"] = _Proxy({d: c.device_id for d, c in self.domains.items() if c.device_id})
        return cache["devices"]

    @property
    def kinds(self) -> Mapping[str, str]:
        """Domain to the kind of backend that measured it (domains of old records whose kind is unknown are absent)."""
        cache = self._cache
        if "kinds" not in cache:
            cache["kinds"] = _Proxy({d: c.kind for d, c in self.domains.items() if c.kind != UNKNOWN_KIND})
        return cache["kinds"]

    # -- the total rule ------------------------------------------------------------------------------
    def _rule(self) -> tuple[tuple[str, ...], bool]:
        """(total_domains, total_complete), computed once from the declarations."""
        cache = self._cache
        if "total" in cache:
            return cache["total"]
        domains, energy = self.domains, self.energy_j
        # (host, device class) pairs with a hardware counter, measured or failed: a model stands in for neither.
        covered = {(host_of(n), d.device_class) for n, d in domains.items() if d.kind == HARDWARE_COUNTER}
        containers: dict[str, list[str]] = {}  # domain -> the counters with a figure that contain it
        for n in energy:
            declaration = domains[n]
            if declaration.kind == HARDWARE_COUNTER:
                for inner in declaration.contains:
                    containers.setdefault(inner, []).append(n)
        counts: dict[str, bool] = {}

        def counted(n: str) -> bool:
            # A counter counts unless a counter that counts contains it (a failed container has no figure
            # and is no container here). A containment cycle leaves one of its members counting.
            if n not in counts:
                counts[n] = False
                counts[n] = not any(counted(outer) for outer in containers.get(n, ()))
            return counts[n]

        chosen = []
        for n in sorted(energy):
            declaration = domains[n]
            if declaration.kind == HARDWARE_COUNTER:
                if counted(n):
                    chosen.append(n)
            elif declaration.kind == MODEL and (host_of(n), declaration.device_class) not in covered:
                chosen.append(n)
        complete = True
        for n in self.failed:
            declaration = domains[n]
            if declaration.kind == HARDWARE_COUNTER:
                would_count = not any(counted(outer) for outer in containers.get(n, ()))
            else:
                would_count = declaration.kind == MODEL and (host_of(n), declaration.device_class) not in covered
            if would_count:
                complete = False
                break
        cache["total"] = (tuple(chosen), complete)
        return cache["total"]

    @property
    def total_domains(self) -> tuple[str, ...]:
        """The domains that ``total_energy_j`` adds up, by the no-double-counting rule.

        The rule reads each domain's declaration (``domains``):

        1. A hardware counter with a figure counts unless a hardware counter that counts contains it
           (``Domain.contains``): a platform ``psys`` that has a figure stands in for the packages and
           DRAM it contains; a failed one contains nothing here, so the packages count. A package's
           ``core`` and ``uncore`` are contained by it. GPUs contain nothing and are contained by nothing.
        2. A model's domain (``cpu:model``) counts only where no hardware counter of its device class
           exists on its host at all, measured or failed: a modeled figure never stands in for hardware
           that was measured.
        3. Simulators (``loihi:sim``), operation counters, and domains of old records whose kind is
           unknown never count.

        Domains prefixed with a host (``"<host>/cpu:0:package"``) follow the same rule host by host.
        """
        return self._rule()[0]

    @property
    def total_complete(self) -> bool:
        """False when a domain that would have counted in the total failed in this window (a GPU, a socket's
        package or DRAM, a platform psys that nothing counted contains): ``total_energy_j`` then leaves that
        hardware out."""
        return self._rule()[1]

    @property
    def total_energy_j(self) -> float:
        """Joules summed over ``total_domains`` (0.0 when none)."""
        return math.fsum(self.energy_j[d] for d in self.total_domains)

    @property
    def total_provenance(self) -> str | None:
        """The weakest provenance among the domains in the total, or None when it is empty."""
        labels = [self.domains[d].provenance for d in self.total_domains]
        return max(labels, key=_PROVENANCE_RANK.__getitem__) if labels else None

    # -- JSON ---------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict, with ``schema_version``, that ``from_dict`` reads back.

        ``domains`` holds the declarations; ``provenance``, ``devices`` and ``kinds`` are the same
        facts as flat maps, for readers of schema 2.
        """
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
            "domains": {n: d.to_dict() for n, d in self.domains.items()},
            "devices": dict(self.devices),
            "kinds": dict(self.kinds),
            **({"timeline": [{"t_s": t, "power_w": dict(p)} for t, p in self.timeline]} if self.timeline else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Measurement":
        """Rebuilds a measurement written by ``to_dict`` (schema 3, or 1 and 2 with inferred declarations).

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
            common: dict[str, Any] = dict(
                name=str(data["name"]),
                start_time_s=float(data.get("start_time_s", 0.0)),
                duration_s=float(data["duration_s"]),
                energy_j={str(k): float(v) for k, v in data["energy_j"].items()},
                flops=None if data.get("flops") is None else int(data["flops"]),
                uncounted_ops={str(k): int(v) for k, v in data.get("uncounted_ops", {}).items()},
                failed={str(k): str(v) for k, v in data.get("failed", {}).items()},
                warnings=tuple(str(w) for w in data.get("warnings", ())),
                timeline=[(point["t_s"], point["power_w"]) for point in data.get("timeline") or ()],
            )
            if version >= 3:
                return cls(**common, domains={str(k): Domain.from_dict(str(k), v) for k, v in data["domains"].items()})
            return cls(**common, provenance={str(k): str(v) for k, v in data["provenance"].items()},
                       devices={str(k): str(v) for k, v in data.get("devices", {}).items()},
                       kinds={str(k): str(v) for k, v in data.get("kinds", {}).items()})
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SchemaError(f"malformed measurement: {exc}") from exc


_new = object.__new__


def _timeline(points: Any) -> tuple[tuple[float, Mapping[str, float]], ...]:
    """A timeline as read-only (seconds, {domain: watts}) pairs in time order.

    Raises:
        ValueError: a point that is no (finite seconds, {domain: finite watts}) pair, or points out of order.
    """
    out = []
    for t_s, power in points:
        point = (float(t_s), _Proxy({str(d): float(w) for d, w in power.items()}))
        if not all(map(math.isfinite, (point[0], *point[1].values()))):
            raise ValueError(f"timeline point at {t_s!r} s is not finite")
        if out and point[0] < out[-1][0]:
            raise ValueError(f"timeline points out of order ({out[-1][0]} s, then {point[0]} s)")
        out.append(point)
    return tuple(out)


class _Unsealed:
    """``Measurement``'s slots without its frozen ``__setattr__``; ``Measurement._trusted`` fills one, then seals it."""

    __slots__ = Measurement.__slots__
