"""What a meter knows of each energy session it opened, and what a window computes from two readings.

A ``SessionPlan`` is computed once when the meter opens: the session's domain declarations (published by
the session, or inferred from its names and backend where it publishes none), their provenance, and the
names a window reads. ``merged_declarations`` refuses two sessions that report one domain name.
``read_plan`` takes one reading of a session (its fast read where it has one); ``difference`` turns a
window's two readings into its joules and failures, exactly (integer microjoules) between two fast
readings that span no fault.
"""

from __future__ import annotations

from operator import add
from types import MappingProxyType
from typing import Any

from .backends.base import Backend, EnergySession, Reading
from .domains import Domain, infer_domains, system_contains_the_rest
from .errors import DomainConflict
from .unrolled import joules_between


class SessionPlan:
    """What a window needs of one energy session, computed once when the meter opens."""

    __slots__ = ("session", "backend", "declarations", "domains", "provenance", "provenance_proxy", "fast", "joules")

    def __init__(self, session: EnergySession, backend: Backend) -> None:
        self.session = session
        self.backend = backend.name
        self.declarations = declarations_of(session, backend)
        self.provenance = {n: d.provenance for n, d in self.declarations.items()}
        self.provenance_proxy = MappingProxyType(self.provenance)
        self.domains = tuple(self.declarations)
        #: The session's fast read (``EnergySession.read_fast``), or None.
        self.fast = session.read_fast
        #: ``joules(end_uj, begin_uj)``: the domains' joules from two fast readings' integer microjoules.
        self.joules = joules_between(self.domains)

    def as_reading(self, raw: Any) -> Reading:
        """A fast read's ``(state, values_uj)`` as the ``Reading`` it stands for."""
        (epochs, reasons, offsets_uj), values_uj = raw
        return Reading({d: (v + o) / 1e6 for d, v, o in zip(self.domains, values_uj, offsets_uj)}, {}, epochs, reasons)


def declarations_of(session: EnergySession, backend: Backend) -> dict[str, Domain]:
    """The session's declarations; for a session that publishes none, inferred from its names and backend.

    Raises:
        ValueError: a declaration stored under another name, or a label that is no provenance.
    """
    declared = dict(session.domains)
    if not declared:
        names = tuple(session.provenance)
        kinds = dict.fromkeys(names, backend.kind)
        covers = backend.covers[0] if backend.covers else None
        try:
            return infer_domains(session.provenance, session.devices, kinds, names, covers)
        except ValueError as exc:
            raise ValueError(f"{backend.name}: session reports {exc}") from None
    for name, declaration in declared.items():
        if not isinstance(declaration, Domain) or declaration.name != name:
            raise ValueError(f"{backend.name}: domains[{name!r}] is not the Domain named {name!r}")
    return declared


def merged_declarations(plans: "list[SessionPlan]") -> dict[str, Domain]:
    """Every plan's declarations in one map, a whole-system counter containing every other counter of the meter.

    Raises:
        DomainConflict: two sessions report one domain name; the message names it and both backends.
    """
    declarations: dict[str, Domain] = {}
    owners: dict[str, str] = {}
    for plan in plans:
        for domain in plan.domains:
            if domain in owners:
                raise DomainConflict(
                    f"domain {domain!r} is reported by both {owners[domain]!r} and {plan.backend!r}: one figure "
                    f"would replace the other; measure them in separate meters, or give one backend's domains "
                    f"other names")
            owners[domain] = plan.backend
        declarations.update(plan.declarations)
    return system_contains_the_rest(declarations)


def read_plan(plan: SessionPlan) -> Any:
    """One reading of the plan's session: its fast read where it has one, else a ``Reading``.

    A read that raises fails every domain of the session for it, with the reason.
    """
    try:
        fast = plan.fast
        return fast() if fast is not None else plan.session.read()
    except Exception as exc:  # recorded per domain, not swallowed: the other domains must survive
        return failed_reading(plan.domains, exc)


def failed_reading(domains: tuple[str, ...], exc: Exception) -> Reading:
    """A reading in which every domain failed with ``exc``."""
    reason = f"{type(exc).__name__}: {exc}"
    return Reading({}, {d: reason for d in domains})


def difference(plan: "SessionPlan", before: Any, after: Any) -> tuple[dict[str, float], Any, dict[str, str]]:
    """A session's joules, provenance and failures over a window, from its two readings (fast or ``Reading``)."""
    if type(before) is tuple:
        if type(after) is tuple:
            # Two fast readings: integer microjoules, converted once, unless a fault lies between them.
            state, a_uj = after
            if before[0] is state:  # no careful read between them: the offsets are the same
                return plan.joules(a_uj, before[1]), plan.provenance_proxy, {}
            if before[0][0] is state[0]:  # careful reads, but no fault: totals are values + offsets
                b_uj = list(map(add, before[1], before[0][2]))
                return plan.joules(list(map(add, a_uj, state[2])), b_uj), plan.provenance_proxy, {}
        before = plan.as_reading(before)
    if type(after) is tuple:
        after = plan.as_reading(after)
    b, a = before.energy_j, after.energy_j
    if not before.failed and not after.failed and before.epochs == after.epochs and len(a) == len(b) == len(
            plan.domains):
        # Nothing failed or recovered: every domain has both readings.
        return {d: a[d] - b[d] for d in plan.domains}, plan.provenance_proxy, {}
    energy, provenance, failed = {}, {}, {}
    for domain, label in plan.provenance.items():
        reason = after.failed.get(domain) or before.failed.get(domain)
        if reason is None and (domain not in a or domain not in b):
            reason = "no reading"
        if reason is None and before.epochs.get(domain, 0) != after.epochs.get(domain, 0):
            fault = after.fault_reasons.get(domain)
            reason = ("a read of this domain failed inside the window and recovered (its figure would be "
                      f"incomplete): {fault}" if fault else "a read of this domain failed inside the window and "
                      "recovered; its figure would be incomplete")
        if reason is not None:
            failed[domain] = reason
            continue
        energy[domain] = a[domain] - b[domain]
        provenance[domain] = label
    return energy, provenance, failed
