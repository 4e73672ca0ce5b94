"""Proxy-vs-energy correlations within groups, with intervals from resampling whole clusters.

Why within groups: in a sweep over architectures and datasets, a pooled correlation mostly measures that
a bigger network has both more FLOPs and more joules (a 2x2 sweep gave "r = 0.93" from that alone). The
question is whether the proxy tracks energy *as lambda moves it*, so each group (architecture x dataset)
is centred on its own means (for Spearman: ranked within the group, then centred) and only the variation
left inside groups is correlated. For Pearson this is the partial correlation controlling for group dummies.

Why clusters, and which: runs are not independent. The runs of one seed share an initialisation, a data
order and a measuring session, so the recommended cluster is the seed, each seed carrying its whole lambda
sweep (in every group). The lambdas are design points the experimenter chose, as fixed as the architectures,
so by default they are not resampled; runs sharing a lambda share its effect, which is the signal under test,
not noise. Pass ``cross_cluster`` (the lambda) to also resample them (a pigeonhole bootstrap over seeds x
lambdas), which asks the wider question "would it hold for other lambdas" and gives wider intervals.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Hashable, Sequence

import numpy as np
from scipy import stats as _sp

from .stats_core import (DOES_NOT_TRACK, INCONCLUSIVE, INTERVAL_LEVEL, TARGET_POWER, TRACKS, StatResult, finite_array,
                         make_result)

#: A proxy tracks an energy when the interval's lower end exceeds this r (it explains over 25% of the
#: within-group variance of energy at the least); kept from the earlier analysis's threshold.
TRACKS_R = 0.5
#: A correlation is negligible inside (-0.3, +0.3): under 9% of the variance explained, Cohen's "small-to-
#: medium" boundary; ``does_not_track`` needs the whole interval inside this band.
NEGLIGIBLE_R = 0.3
#: Below this many clusters a percentile bootstrap understates the spread (few distinct resamples exist:
#: 10 for 3 clusters), so it decides nothing: the verdict is inconclusive, "needs 5 seeds or more".
FEW_CLUSTERS = 5
#: Bootstrap resamples and the fixed seed of their generator (results repeat exactly).
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
METHODS = ("pearson", "spearman")


def _centred(values: np.ndarray, groups: np.ndarray, rank: bool) -> np.ndarray:
    """Values (or their within-group ranks, ties averaged) minus their group's mean; groups are codes 0..k-1."""
    if rank:
        # Sort by (group, value); positions averaged over tied blocks are the within-group ranks plus a constant
        # per group (the runs of earlier groups), which the centring below removes.
        order = np.lexsort((values, groups))
        v, g = values[order], groups[order]
        new_block = np.r_[True, (v[1:] != v[:-1]) | (g[1:] != g[:-1])]
        block = np.cumsum(new_block) - 1
        average = np.bincount(block, weights=np.arange(1.0, len(v) + 1)) / np.bincount(block)
        ranked = np.empty(len(v))
        ranked[order] = average[block]
        values = ranked
    means = np.bincount(groups, weights=values) / np.maximum(np.bincount(groups), 1)
    return values - means[groups]


def _within_r(x: np.ndarray, y: np.ndarray, g: np.ndarray, rank: bool) -> float:
    """Correlation of within-group-centred values; NaN when either is constant within every group."""
    xc, yc = _centred(x, g, rank), _centred(y, g, rank)
    ssx, ssy = float(xc @ xc), float(yc @ yc)
    # Centring a constant leaves rounding dust, not zero: compare with the raw values' size.
    if ssx <= 1e-24 * float(x @ x) or ssy <= 1e-24 * float(y @ y) or ssx == 0 or ssy == 0:
        return float("nan")
    return float(xc @ yc) / math.sqrt(ssx * ssy)


def _codes(labels: Sequence[Hashable]) -> np.ndarray:
    index: dict[Hashable, int] = {}
    return np.asarray([index.setdefault(v, len(index)) for v in labels], dtype=int)


def within_group_correlation(proxy: Sequence[float], energy_j: Sequence[float], group: Sequence[Hashable],
                             cluster: Sequence[Hashable], *, method: str = "spearman",
                             cross_cluster: Sequence[Hashable] | None = None,
                             resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED,
                             tracks_r: float = TRACKS_R, negligible_r: float = NEGLIGIBLE_R) -> StatResult:
    """Correlation of proxy and energy with the group as a covariate, and a cluster-bootstrap interval.

    Verdict: ``tracks`` when the 95% interval's lower end exceeds ``tracks_r``; ``does_not_track`` when the
    whole interval lies inside ``(-negligible_r, +negligible_r)`` or below ``-negligible_r`` (energy rises as
    the proxy falls); otherwise ``inconclusive``, with
    ``seeds_needed``: the clusters at which the interval would clear the nearer band with ``TARGET_POWER``,
    taking the observed half-width h as z[0.975] standard errors that shrink as 1/sqrt(clusters):
    ``k * ((z[0.975] + z[power]) / z[0.975] * h / margin) ** 2``. A rough plan: a percentile bootstrap over
    few clusters is itself rough, and too narrow below about 5 clusters.

    Args:
        proxy: The proxy per run (E, FLOPs, ...). Pass logs for multiplicative quantities if Pearson is wanted
            on the log scale.
        energy_j: Energy (J) per run.
        group: The group of each run (e.g. ``(architecture, dataset)``); a single label gives a plain correlation.
        cluster: The resampling unit of each run (recommended: the seed; each run as its own cluster gives the
            naive bootstrap that treats runs as independent).
        method: ``"spearman"`` (ranks within group) or ``"pearson"``.
        cross_cluster: A second, crossed factor to resample as well (e.g. the lambda), or None.
        resamples: Bootstrap resamples.
        seed: Seed of the resampling generator.
        tracks_r: Threshold for ``tracks``.
        negligible_r: Half-width of the negligible band for ``does_not_track``.

    Returns:
        ``<method>_r_within_group``; n is the number of clusters. Details: ``n_runs``, ``n_groups``,
        ``valid_resamples`` (resamples with a defined r), ``few_clusters`` (fewer than ``FEW_CLUSTERS``).

    Raises:
        ValueError: On unknown method, mismatched lengths or non-finite values.
    """
    if method not in METHODS:
        raise ValueError(f"method is one of {METHODS}, got {method!r}")
    x, y = finite_array(proxy, "proxy"), finite_array(energy_j, "energy_j")
    cross = cross_cluster if cross_cluster is not None else [0] * len(x)
    if not len(x) == len(y) == len(group) == len(cluster) == len(cross):
        raise ValueError("proxy, energy_j, group, cluster (and cross_cluster) need one entry per run")
    g, c, k = _codes(group), _codes(cluster), _codes(cross)
    rank = method == "spearman"
    n_clusters, n_cross = int(c.max()) + 1 if len(c) else 0, int(k.max()) + 1 if len(k) else 0
    quantity = f"{method}_r_within_group"
    how = (f"{method} r of values centred within each group ({'ranked, then ' if rank else ''}group as covariate); "
           f"percentile bootstrap resampling {n_clusters} clusters"
           + (f" crossed with {n_cross} levels" if cross_cluster is not None else "")
           + f", {resamples} resamples, seed {seed}")
    details = dict(n_runs=len(x), n_groups=int(g.max()) + 1 if len(g) else 0)
    estimate = _within_r(x, y, g, rank) if len(x) >= 3 else float("nan")
    if not math.isfinite(estimate):
        return make_result(quantity, n_clusters, None, (None, None), how, INCONCLUSIVE,
                           "not computable: fewer than 3 runs, or proxy or energy constant within every group",
                           **details)
    order: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, key in enumerate(zip(c, k)):
        order[(int(key[0]), int(key[1]))].append(i)
    cells = {key: np.asarray(v) for key, v in order.items()}
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples):
        cs = rng.integers(0, n_clusters, n_clusters)
        ks = rng.integers(0, n_cross, n_cross) if cross_cluster is not None else range(n_cross)
        idx = np.concatenate([cells[(a, b)] for a in cs for b in ks if (a, b) in cells])
        r = _within_r(x[idx], y[idx], g[idx], rank)
        if math.isfinite(r):
            draws.append(r)
    details["valid_resamples"] = len(draws)
    tail = (1 - INTERVAL_LEVEL) / 2 * 100
    if n_clusters < 2 or len(draws) < resamples // 2:
        return make_result(quantity, n_clusters, estimate, (None, None), how, INCONCLUSIVE,
                           f"r = {estimate:+.2f} with no interval: {n_clusters} cluster(s) cannot be resampled",
                           **details)
    lo, hi = (float(v) for v in np.percentile(draws, [tail, 100 - tail]))
    details["few_clusters"] = n_clusters < FEW_CLUSTERS
    shown = f"r = {estimate:+.2f} [{lo:+.2f}, {hi:+.2f}] within groups over {n_clusters} clusters"
    if n_clusters < FEW_CLUSTERS:
        # A bootstrap over so few clusters has a handful of distinct resamples and understates the spread:
        # with energy independent of the proxy it said "tracks" in 6% (3 seeds) to 16.5% (2 seeds) of sweeps.
        return make_result(quantity, n_clusters, estimate, (lo, hi), how, INCONCLUSIVE,
                           f"{shown}: {n_clusters} clusters are too few for a bootstrap verdict; needs "
                           f"{FEW_CLUSTERS} seeds or more", seeds_needed=FEW_CLUSTERS, **details)
    arr = np.asarray(draws)

    def share(beyond: np.ndarray) -> float:  # a bootstrap p-value: the resamples on the other side of a bound
        return float((beyond.sum() + 1) / (len(arr) + 1))
    if lo > tracks_r:
        return make_result(quantity, n_clusters, estimate, (lo, hi), how, TRACKS,
                           f"{shown}: the interval lies above {tracks_r}", **details, p_value=share(arr <= tracks_r))
    if -negligible_r < lo and hi < negligible_r:
        return make_result(quantity, n_clusters, estimate, (lo, hi), how, DOES_NOT_TRACK,
                           f"{shown}: the interval lies inside the negligible band +-{negligible_r}", **details,
                           p_value=max(share(arr >= negligible_r), share(arr <= -negligible_r)))
    if hi < -negligible_r:  # energy goes up as the proxy goes down: the opposite of tracking
        return make_result(quantity, n_clusters, estimate, (lo, hi), how, DOES_NOT_TRACK,
                           f"{shown}: the interval lies below -{negligible_r} (energy rises as the proxy falls)",
                           **details, p_value=share(arr >= -negligible_r))
    margin = max(estimate - tracks_r, negligible_r - abs(estimate))
    z = _sp.norm.ppf(0.5 + INTERVAL_LEVEL / 2)
    scale = (z + _sp.norm.ppf(TARGET_POWER)) / z * (hi - lo) / 2
    needed = max(n_clusters + 1, math.ceil(n_clusters * (scale / margin) ** 2)) if margin > 0 else None
    plan = (f"about {needed} clusters would resolve it" if needed else
            "no cluster count resolves an r between the bands")
    return make_result(quantity, n_clusters, estimate, (lo, hi), how, INCONCLUSIVE,
                       f"{shown}: neither above {tracks_r} nor inside +-{negligible_r}; {plan}",
                       seeds_needed=needed, **details)


def correlation_by_group(proxy: Sequence[float], energy_j: Sequence[float], group: Sequence[Hashable],
                         cluster: Sequence[Hashable], **options) -> dict[Hashable, StatResult]:
    """``within_group_correlation`` computed separately inside each group, keyed by the group label.

    Args:
        proxy, energy_j, group, cluster: As for ``within_group_correlation``.
        **options: Passed on (method, cross_cluster, resamples, seed, thresholds).

    Returns:
        One result per group, in order of first appearance.
    """
    cross = options.pop("cross_cluster", None)
    rows: dict[Hashable, list[int]] = defaultdict(list)
    for i, label in enumerate(group):
        rows[label].append(i)
    out = {}
    for label, idx in rows.items():
        pick = lambda seq: [seq[i] for i in idx]  # noqa: E731
        out[label] = within_group_correlation(pick(proxy), pick(energy_j), [label] * len(idx), pick(cluster),
                                              cross_cluster=None if cross is None else pick(cross), **options)
    return out
