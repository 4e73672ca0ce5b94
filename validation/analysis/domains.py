"""Where the analysis picks an energy domain by what it is, in one place.

Today a domain's meaning is read from its name (``cpu:0:psys``, ``cpu:model``, a rank prefix ``rank1/``);
when ``Measurement`` carries a declaration per domain (``energymeter.domains.Domain``: device class, scope,
containment), these functions switch to reading it and nothing else in the analysis changes.
"""

from __future__ import annotations

from typing import Iterable

#: The reference workload (CPU matrix products) is read on the widest CPU figure there is: a counter's psys
#: (the whole SoC) before its package, a counter before the CPU model.
_REFERENCE_PREFERENCE = (":psys", ":package", "cpu:model")


def is_cpu(domain: str) -> bool:
    """Whether a domain measures a CPU (a counter's zone or the CPU model), with or without a rank prefix."""
    return domain.split("/")[-1].startswith("cpu:")


def reference_domain(domains: Iterable[str]) -> str | None:
    """The domain a run's reference workload is read on, chosen among ``domains`` (the reference window's):
    a CPU counter's psys or package where one exists, else the modeled CPU; None where no CPU figure exists."""
    cpu = sorted(d for d in domains if is_cpu(d))
    for suffix in _REFERENCE_PREFERENCE:
        chosen = [d for d in cpu if d.endswith(suffix)]
        if chosen:
            return chosen[0]
    return None
