"""Where the analysis picks an energy domain by what it is, in one place: from its declaration, never its name.

A measurement's ``domains`` carry one ``energymeter.domains.Domain`` per domain (device class, scope,
containment, kind); records of schemas 1 and 2 have theirs inferred from the names when read.
"""

from __future__ import annotations

from typing import Mapping

from energymeter.domains import CPU, SOC, Domain
from energymeter.kinds import HARDWARE_COUNTER, MODEL


def reference_domain(domains: Mapping[str, Domain]) -> str | None:
    """The domain a run's reference workload (CPU matrix products) is read on.

    The widest CPU figure there is: among the hardware counters of device class cpu or soc, one that no
    other contains, the one containing the most (a psys before its packages); a CPU model only where
    no counter covers the CPU; None where there is no CPU figure. Ties go to the first name in order.

    Args:
        domains: Domain name to its declaration (``Measurement.domains``).
    """
    cpu = [d for d in domains.values() if d.device_class in (CPU, SOC)]
    pool = [d for d in cpu if d.kind == HARDWARE_COUNTER] or [d for d in cpu if d.kind == MODEL]
    if not pool:
        return None
    contained = {name for d in pool for name in d.contains}
    widest = [d for d in pool if d.name not in contained] or pool
    return min(widest, key=lambda d: (-len(d.contains), d.name)).name


def device_class_of(domain: Domain) -> str:
    """The class a domain's drift is referenced by: ``cpu`` for CPU and SoC figures, else its device class."""
    return CPU if domain.device_class in (CPU, SOC) else domain.device_class


def factor_for(factors: Mapping[str, float] | float, domain: Domain | None) -> float:
    """The drift factor a domain's figure is divided by: its device class's (1.0 where it has none)."""
    if isinstance(factors, (int, float)):
        return float(factors)
    return 1.0 if domain is None else float(factors.get(device_class_of(domain), 1.0))
