"""Statistics for the validation suite: pure functions on numbers, each returning a frozen, JSON-safe record.

Everything the analysis layer needs is importable from here; the work is split by job into
``stats_core`` (the record, the decision rule, seeds needed), ``stats_paired`` (energy and accuracy
changes paired by seed), ``stats_elasticity`` (does energy follow E: the elasticity and its verdict),
``stats_correlation`` (within-group correlations with cluster resampling) and ``stats_series`` (cost to a target accuracy, drift of a reference workload).

The decision rule, in one place: every interval reported is a 95% interval, and every verdict is read
from that same interval, so each one-sided test is at alpha = 0.025 (equivalence: two one-sided tests at
0.025 each). An interval that decides nothing gives ``inconclusive`` with the seeds that would resolve it.
"""

from __future__ import annotations

from .stats_core import (DOES_NOT_TRACK, FAILS, HOLDS, INCONCLUSIVE, INTERVAL_LEVEL, TARGET_POWER, TRACKS,
                         StatResult, make_result, seeds_needed)
from .stats_correlation import (BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, FEW_CLUSTERS, NEGLIGIBLE_R, TRACKS_R,
                                correlation_by_group, within_group_correlation)
from .stats_elasticity import MIN_ELASTICITY, MIN_ELASTICITY_SEEDS, NULL_ELASTICITY, elasticity, elasticity_verdict
from .stats_paired import ACCURACY_MAX_LOSS_PP, ENERGY_SESOI, accuracy_change, energy_change, paired_ratio
from .stats_series import (CLAIMED_GAIN_BAND, DRIFT_TOLERANCE, DRIFTING, PLAUSIBLE_FACTOR_BAND, STABLE, TargetCost,
                           cost_to_target, efficiency_gain, reference_drift)

__all__ = [
    "ACCURACY_MAX_LOSS_PP", "BOOTSTRAP_RESAMPLES", "BOOTSTRAP_SEED", "CLAIMED_GAIN_BAND", "DOES_NOT_TRACK",
    "DRIFTING", "DRIFT_TOLERANCE", "ENERGY_SESOI", "MIN_ELASTICITY", "MIN_ELASTICITY_SEEDS", "NULL_ELASTICITY", "FAILS", "FEW_CLUSTERS", "HOLDS", "INCONCLUSIVE", "INTERVAL_LEVEL",
    "NEGLIGIBLE_R", "PLAUSIBLE_FACTOR_BAND", "STABLE", "TARGET_POWER", "TRACKS", "TRACKS_R", "StatResult", "TargetCost", "accuracy_change",
    "correlation_by_group", "cost_to_target", "efficiency_gain", "elasticity", "elasticity_verdict",
    "energy_change", "make_result", "paired_ratio", "reference_drift", "seeds_needed", "within_group_correlation",
]
