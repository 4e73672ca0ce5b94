"""E's ratio against training length: E(0) / E(lambda) on the test split after each epoch, and whether it levelled off.

The paper's "about 1000x" is a statement about a trained network; a ratio measured after a few epochs
may still be rising. Each record keeps E per epoch on the test split (``EpochRecord.
test_activation_energy_by_kind``); this module pairs them by seed and epoch and applies one stated rule.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

from ..records.record import RunRecord

#: The ratio has levelled off when the last epoch's ratio is within this fraction of the ratio ...
LEVEL_TOLERANCE = 0.10
#: ... this share of the run's epochs earlier (at least one epoch).
LEVEL_LOOKBACK_SHARE = 0.25


def lookback_epochs(epochs: int) -> int:
    """Epochs between the two ratios the levelling rule compares."""
    return max(1, math.ceil(LEVEL_LOOKBACK_SHARE * epochs))


def level_rule() -> str:
    """The levelling rule in words, for the reports."""
    return (f"levelled off: the last epoch's E(0)/E is within {LEVEL_TOLERANCE:.0%} of the ratio "
            f"{LEVEL_LOOKBACK_SHARE:.0%} of the epochs earlier (at least one epoch); still rising: more than "
            f"{LEVEL_TOLERANCE:.0%} above it")


def ratio_by_epoch(runs: Mapping[int, RunRecord], base: Mapping[int, RunRecord], seeds: Sequence[int],
                   measure: str) -> tuple[float | None, ...]:
    """E(0) / E(lambda) after each epoch, the geometric mean over seeds with that epoch's E on both sides.

    Args:
        runs, base: Seed to record at lambda and at lambda = 0.
        seeds: Seeds paired.
        measure: The definition (``l2``, ``l2-scale-free`` ...), a key of ``test_activation_energy_by_kind``.

    Returns:
        One ratio per epoch (None where no seed pair has a positive E that epoch); empty when the records
        hold no per-epoch test E (lines written before it was recorded).
    """
    epochs = min((len(runs[s].history) for s in seeds), default=0)
    out: list[float | None] = []
    for k in range(epochs):
        logs = []
        for s in seeds:
            if k >= len(base[s].history):
                continue
            a = runs[s].history[k].test_activation_energy_by_kind.get(measure)
            b = base[s].history[k].test_activation_energy_by_kind.get(measure)
            if a is not None and b is not None and a > 0 and b > 0:
                logs.append(math.log(b / a))
        out.append(math.exp(math.fsum(logs) / len(logs)) if logs else None)
    return tuple(out) if any(r is not None for r in out) else ()


def levelled_off(series: Sequence[float | None]) -> bool | None:
    """Whether the ratio had levelled off by the last epoch (``level_rule``); None where it cannot be told
    (fewer than two epochs, or either ratio missing)."""
    if len(series) < 2:
        return None
    last, earlier = series[-1], series[-1 - lookback_epochs(len(series))]
    if last is None or earlier is None or earlier <= 0:
        return None
    return abs(last / earlier - 1.0) <= LEVEL_TOLERANCE


def still_rising(series: Sequence[float | None]) -> bool:
    """True when the last epoch's ratio is more than ``LEVEL_TOLERANCE`` above the ratio the rule compares with."""
    if levelled_off(series) is not False:
        return False
    last, earlier = series[-1], series[-1 - lookback_epochs(len(series))]
    return last is not None and earlier is not None and last > earlier
