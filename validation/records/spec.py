"""Which run: a ``RunSpec`` (model, dataset, lambda, seed, E definition) and its key, and the one rule for lambda.

A sweep's grid is a list of ``RunSpec``; a ``RunRecord`` says which spec it measured; ``RunSpec.key`` is the
identity of a run in ``results.jsonl`` and ``sweep.json``. Lambda is called ``lam`` in Python (``lambda`` is a
keyword) and ``lambda`` in every file written; ``check_lambda`` is the only place its rule is written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: How E's per-sample values are reduced over a layer's units: every run uses the sum.
REDUCTION = "sum"


class SpecError(ValueError):
    """A run that cannot exist (a lambda below 0 or not finite); the message says which value."""


def check_lambda(value: float) -> float:
    """``value`` as a float when it is a valid lambda (finite, >= 0).

    Raises:
        SpecError: not a number, not finite, or below 0.
    """
    try:
        lam = float(value)
    except (TypeError, ValueError):
        raise SpecError(f"lambda must be a finite number >= 0, got {value!r}") from None
    if not (math.isfinite(lam) and lam >= 0):
        raise SpecError(f"lambda must be a finite number >= 0, got {value!r}")
    return lam


def run_key(model: str, dataset: str, lam: float, seed: int, activation_energy_kind: str = "l2/sum") -> str:
    """The identity of one run in results.jsonl (``activation_energy_kind`` as ``"<kind>/<reduction>"``)."""
    return f"{model}|{dataset}|{lam!r}|{seed}|{activation_energy_kind}"


@dataclass(frozen=True, order=True)
class RunSpec:
    """One run of a sweep's grid.

    Attributes:
        model, dataset: Names in ``energymeter.models``' registries.
        lam: Lambda, the weight of E in the loss (finite, >= 0).
        seed: The run's seed.
        activation_energy: The E definition trained with as the penalty (``l2``, ``l1``).
    """

    model: str
    dataset: str
    lam: float
    seed: int
    activation_energy: str = "l2"

    def __post_init__(self) -> None:
        object.__setattr__(self, "lam", check_lambda(self.lam))

    @property
    def activation_energy_kind(self) -> str:
        """E's definition as records name it: ``"<kind>/<reduction>"`` (e.g. ``"l2/sum"``)."""
        return f"{self.activation_energy}/{REDUCTION}"

    @property
    def key(self) -> str:
        """The run's identity in results.jsonl and sweep.json."""
        return run_key(self.model, self.dataset, self.lam, self.seed, self.activation_energy_kind)
