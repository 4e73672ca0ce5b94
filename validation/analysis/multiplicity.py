"""Families of verdicts, each controlled for its size, so dozens of claims per sweep do not buy false findings.

Every verdict is read from a 95% interval: one one-sided decision at alpha = 0.025 (``stats_core``). A
sweep makes dozens of them (a tracking claim per energy figure and lambda, a saving claim beside each, a
correlation per figure, an efficiency claim per cost), and at 0.025 each a family of 40 true nulls would
expect one false verdict. The claims of one family are therefore controlled together:

* ``holm`` (the default): Holm's step-down procedure on the decided claims' one-sided p-values, with the
  family's size m counting every claim of the family (decided or not). It bounds the chance of any false
  verdict in the family by 0.025 under any dependence between the claims (they share baseline runs).
* ``bh``: Benjamini-Hochberg at 0.025, bounding the expected share of false verdicts among those kept
  (valid under the positive dependence claims sharing a baseline have; weaker than Holm's guarantee).

A verdict whose p-value does not survive becomes ``inconclusive``; its sentence says so first, with its p and
the threshold, then what its interval alone said. Families: ``FAMILIES`` (claim kind -> family).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Sequence

from .claims import Claim
from .stats_core import INCONCLUSIVE, INTERVAL_LEVEL

#: Claim kind -> the family its verdicts are controlled in.
FAMILIES = {"energy_tracking": "tracking", "energy_saving": "saving", "correlation": "correlation",
            "training_efficiency": "efficiency"}
#: The one-sided error of each decision, the level families are controlled at.
ALPHA = (1 - INTERVAL_LEVEL) / 2
METHODS = ("holm", "bh")
_NAMES = {"holm": "Holm's step-down (family-wise error)", "bh": "Benjamini-Hochberg (false discovery rate)"}


@dataclass(frozen=True)
class FamilyControl:
    """How one family's verdicts were controlled.

    Attributes:
        family: The family's name (``FAMILIES``'s values).
        size: Claims in the family (every one counts towards the correction, decided or not).
        method: ``holm`` or ``bh``.
        alpha: The one-sided level the family is controlled at.
        decided: Verdicts the intervals alone reached (not ``inconclusive``).
        kept: Of those, the verdicts that survive the control.
    """

    family: str
    size: int
    method: str
    alpha: float
    decided: int
    kept: int

    @property
    def sentence(self) -> str:
        """The family in one sentence, for the report."""
        return (f"{self.family}: {self.size} claim(s), {self.decided} decided by their intervals, {self.kept} kept "
                f"after {_NAMES[self.method]} at {self.alpha:g} one-sided")

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "sentence": self.sentence}


def _thresholds(p_sorted: Sequence[float], m: int, method: str) -> int:
    """How many of the smallest p-values are kept."""
    if method == "holm":
        kept = 0
        for k, p in enumerate(p_sorted):
            if p > ALPHA / (m - k):
                break
            kept += 1
        return kept
    return max((k + 1 for k, p in enumerate(p_sorted) if p <= (k + 1) / m * ALPHA), default=0)


def control(claims: Sequence[Claim], method: str = "holm") -> tuple[list[Claim], list[FamilyControl]]:
    """Every claim, with the verdicts that do not survive their family's control made ``inconclusive``.

    A decided claim without a p-value (a statistic that gives none) is withdrawn: it cannot be shown to
    survive. Claims of kinds outside ``FAMILIES`` are left as they are.

    Raises:
        ValueError: ``method`` is not one of ``METHODS``.
    """
    if method not in METHODS:
        raise ValueError(f"multiplicity method {method!r}: choose one of {', '.join(METHODS)}")
    out = list(claims)
    summaries = []
    for family in dict.fromkeys(FAMILIES.values()):
        members = [i for i, c in enumerate(out) if FAMILIES.get(c.kind) == family]
        if not members:
            continue
        m = len(members)
        decided = [i for i in members if out[i].verdict != INCONCLUSIVE]
        ranked = sorted(decided, key=lambda i: _p(out[i]))
        kept = _thresholds([_p(out[i]) for i in ranked], m, method)
        for rank, i in enumerate(ranked[kept:], start=kept):
            out[i] = _withdrawn(out[i], family, m, method, rank)
        summaries.append(FamilyControl(family, m, method, ALPHA, len(decided), kept))
    return out, summaries


def _p(c: Claim) -> float:
    p = c.details.get("p_value")
    return 1.0 if p is None else float(p)


def _withdrawn(c: Claim, family: str, m: int, method: str, rank: int) -> Claim:
    p = c.details.get("p_value")
    threshold = ALPHA / (m - rank) if method == "holm" else (rank + 1) / m * ALPHA
    shown = "no p-value" if p is None else f"p = {p:.2g} > {threshold:.2g}"
    text = (f"inconclusive once the {m} {family} claims are controlled together ({method}: {shown}); its interval "
            f"alone read: {c.sentence}")
    return dataclasses.replace(c, verdict=INCONCLUSIVE, sentence=text, seeds_needed=None,
                               details={**c.details, "withdrawn_by": method, "verdict_before_control": c.verdict})
