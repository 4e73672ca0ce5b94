"""The elasticity of energy with respect to E, and the verdict "does energy follow E" read from it.

The question the premise asks is not "did energy move by 10%?" but "does energy follow E?". Its figure is
the elasticity: the slope of log energy on log E within each seed (1: energy proportional to E; 0: energy
ignores E), with a Student-t interval over seeds. A fall of E by 1.05x and one by 1000x ask the same
question of it; a precise experiment can only sharpen the answer, never turn a proportional energy into
``does_not_track`` (which the energy-change test did at small E changes).

Thresholds (``MIN_ELASTICITY``, ``NULL_ELASTICITY``), chosen against the paper's own scale, a ~1000-fold
fall of E:

* ``tracks`` when the interval lies above 0.05: a 1000-fold fall of E then lowers energy by at least 29%
  (1000 ** -0.05 = 0.71), a 10-fold fall by at least 11%: a proxy worth optimising.
* ``does_not_track`` when the interval lies inside +-0.02: a 1000-fold fall of E then moves energy by at
  most 13% either way, a 10-fold fall by at most 4.7% (within the spread of a shared host's counters, and
  below the data-dependent share of GPU GEMM power that would make magnitude matter), or when it lies below
  -0.02 (energy rises as E falls).
* between the two bands, or with an interval that reaches across a band: ``inconclusive``, with the seeds
  that would resolve it at the observed spread.

Fewer than ``MIN_ELASTICITY_SEEDS`` seeds decide nothing: a t interval over two slopes is valid but a
single odd seed then decides, so the verdict is ``inconclusive`` ("needs 3 seeds").
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Hashable, Sequence

import numpy as np

from .stats_core import (DOES_NOT_TRACK, INCONCLUSIVE, TRACKS, StatResult, finite_array, make_result, one_sided_p,
                         seeds_needed, t_interval)

#: The least elasticity that counts as tracking (see the module docstring).
MIN_ELASTICITY = 0.05
#: Elasticities inside +-this count as not tracking.
NULL_ELASTICITY = 0.02
#: Fewest seeds an elasticity verdict rests on.
MIN_ELASTICITY_SEEDS = 3


def elasticity(energy_j: Sequence[float], activation_energy: Sequence[float],
               cluster: Sequence[Hashable]) -> StatResult:
    """Log-log slope of energy on the proxy, fitted within each cluster (seed), with a t interval over clusters.

    Within a seed the slope of ``log(energy_j)`` on ``log(activation_energy)`` across the lambda sweep says
    how much energy changes per change of E with everything the seed fixes held fixed; 1 means energy is
    proportional to E, 0 means it ignores E. Each seed gives one slope, so n is the number of seeds and the
    interval is a Student-t interval over them (seeds are the independent units). Pass a sweep of two lambdas
    to get the elasticity beside a lambda-vs-0 ratio.

    Args:
        energy_j: Energy (J) of each run.
        activation_energy: E of each run (arbitrary units, positive).
        cluster: The seed (or any independent unit) of each run; clusters whose E does not vary are skipped.

    Returns:
        ``elasticity`` (dimensionless), verdict None; detail ``skipped_clusters`` counts unusable clusters.

    Raises:
        ValueError: On mismatched lengths, non-positive or non-finite values.
    """
    y, x = finite_array(energy_j, "energy_j"), finite_array(activation_energy, "activation_energy")
    if not len(y) == len(x) == len(cluster):
        raise ValueError("energy_j, activation_energy and cluster must have one entry per run")
    if (y <= 0).any() or (x <= 0).any():
        raise ValueError("elasticity needs positive energies and positive E")
    rows: dict[Hashable, list[int]] = defaultdict(list)
    for i, c in enumerate(cluster):
        rows[c].append(i)
    slopes, skipped = [], 0
    for idx in rows.values():
        lx, ly = np.log(x[idx]), np.log(y[idx])
        if len(idx) < 2 or np.ptp(lx) == 0:
            skipped += 1
            continue
        lx = lx - lx.mean()
        slopes.append(float(lx @ (ly - ly.mean()) / (lx @ lx)))
    mean, lo, hi, sd = t_interval(np.asarray(slopes))
    n = len(slopes)
    method = "OLS slope of log energy on log E within each seed; Student t over seeds"
    if n == 0:
        return make_result("elasticity", 0, None, (None, None), method, None,
                           "no seed has two runs with different E", skipped_clusters=skipped, sd=None)

    def per_tenfold(s: float | None) -> str:
        if s is None:
            return "?"
        if abs(s) > 300:  # 10 ** 300 and beyond leave a float: say it in words rather than overflow
            return "beyond a 1e300-fold" + (" rise" if s < 0 else " fall")
        return f"{(10 ** (-s) - 1) * 100:+.1f}%"
    shown = f"{mean:+.3f}" + (f" [{lo:+.3f}, {hi:+.3f}]" if lo is not None else " (no interval)")
    span = f" [{per_tenfold(hi)}, {per_tenfold(lo)}]" if lo is not None else ""
    return make_result("elasticity", n, mean, (lo, hi), method, None,
                       f"elasticity {shown}: a 10-fold fall in E goes with a {per_tenfold(mean)}{span} change "
                       "in energy", skipped_clusters=skipped, sd=sd)


def elasticity_verdict(slope: StatResult, *, min_elasticity: float = MIN_ELASTICITY,
                       null_band: float = NULL_ELASTICITY, min_seeds: int = MIN_ELASTICITY_SEEDS) -> StatResult:
    """Whether energy follows E, read from an ``elasticity`` result's interval (see the module docstring).

    Returns:
        The same estimate and interval with ``verdict`` ``tracks`` / ``does_not_track`` / ``inconclusive``;
        details ``p_value`` (the one-sided p of the decision reached; for an equivalence the larger of its
        two, None when undecided), ``min_elasticity``, ``null_band``.
    """
    mean, lo, hi, n = slope.estimate, slope.low, slope.high, slope.n
    sd = slope.detail("sd")
    shown = slope.reason.split(":")[0] if slope.reason else "elasticity"

    def result(verdict: str, reason: str, p: float | None = None, needed: int | None = None) -> StatResult:
        return make_result("elasticity", n, mean, (lo, hi), slope.method, verdict, reason, needed,
                           **dict(slope.details), p_value=p, min_elasticity=min_elasticity, null_band=null_band)

    if mean is None or lo is None or hi is None or sd is None:
        return result(INCONCLUSIVE, slope.reason or "no elasticity")
    if n < min_seeds:
        return result(INCONCLUSIVE, f"{shown} over {n} seed(s): too few to decide; needs {min_seeds} seeds",
                      needed=min_seeds)
    if lo > min_elasticity:
        return result(TRACKS, f"{shown}: above the {min_elasticity} that tracking needs",
                      one_sided_p(mean, sd, n, min_elasticity, above=True))
    if -null_band < lo and hi < null_band:
        p = max(one_sided_p(mean, sd, n, -null_band, above=True) or 0.0,
                one_sided_p(mean, sd, n, null_band, above=False) or 0.0)
        return result(DOES_NOT_TRACK, f"{shown}: inside +-{null_band}, energy does not follow E", p)
    if hi < -null_band:
        return result(DOES_NOT_TRACK, f"{shown}: below -{null_band}, energy rises as E falls",
                      one_sided_p(mean, sd, n, -null_band, above=False))
    candidates = [seeds_needed(sd, mean - min_elasticity)] if mean > min_elasticity else []
    if abs(mean) < null_band:
        candidates.append(seeds_needed(sd, null_band - abs(mean), sides=2))
    needed = min((c for c in candidates if c is not None), default=None)
    plan = (f"about {needed} seeds would resolve it at the observed spread" if needed is not None else
            f"an elasticity between {null_band} and {min_elasticity} is resolved by no seed count")
    return result(INCONCLUSIVE, f"{shown}: neither above {min_elasticity} nor inside +-{null_band}; {plan}",
                  needed=needed)


__all__ = ["MIN_ELASTICITY", "MIN_ELASTICITY_SEEDS", "NULL_ELASTICITY", "elasticity", "elasticity_verdict"]
