"""Specifications of energymeter.validation.analysis.stats: verdicts, intervals and plans computed from numbers."""

import json
import math
from collections import Counter

import numpy as np
import pytest
from scipy.stats import spearmanr

from energymeter.validation.analysis.stats import (DOES_NOT_TRACK, DRIFTING, FAILS, HOLDS, INCONCLUSIVE, STABLE, TRACKS,
                                          accuracy_change, correlation_by_group, cost_to_target,
                                          efficiency_gain, elasticity, energy_change,
                                          make_result, paired_ratio, reference_drift, seeds_needed,
                                          within_group_correlation)


def exact_sample(mean, sd, n):
    """n values whose sample mean and SD are exactly ``mean`` and ``sd``."""
    z = np.linspace(-1.0, 1.0, n)
    return mean + sd * (z - z.mean()) / z.std(ddof=1)


# --- energy change, paired by seed, on the log scale -------------------------------------------------------

def test_pure_noise_over_three_seeds_is_inconclusive_with_a_finite_seed_count_above_three():
    rng = np.random.default_rng(0)
    base, at_lambda = 50 * np.exp(rng.normal(0, 0.3, 3)), 50 * np.exp(rng.normal(0, 0.3, 3))
    r = energy_change(at_lambda, base)
    assert r.verdict == INCONCLUSIVE
    assert isinstance(r.seeds_needed, int) and 3 < r.seeds_needed < 10**6
    assert f"about {r.seeds_needed} seeds" in r.reason


def test_pure_noise_is_mostly_inconclusive_over_many_draws():
    rng = np.random.default_rng(0)
    verdicts = Counter(energy_change(np.exp(rng.normal(0, 0.3, 3)), np.exp(rng.normal(0, 0.3, 3))).verdict
                       for _ in range(300))
    # Each wrong verdict is a one-sided test at alpha = 0.025; two can fire, so about 5% at most.
    assert verdicts[INCONCLUSIVE] / 300 > 0.93


def test_paired_ratio_is_the_geometric_mean_with_a_back_transformed_interval():
    r = paired_ratio([1.0, 0.5, 2.0], [1000.0, 1000.0, 1000.0], "activation_energy")
    assert r.quantity == "activation_energy_ratio" and r.verdict is None
    assert r.estimate == pytest.approx(1e-3) and r.detail("fold_fall") == pytest.approx(1000)
    assert 0 < r.low < 1e-3 < r.high < 1  # E fell reliably: the whole interval is below 1


def test_constant_energy_does_not_track():
    rng = np.random.default_rng(1)
    base = 100 * np.exp(rng.normal(0, 1e-3, 3))
    r = energy_change(100 * np.exp(rng.normal(0, 1e-3, 3)), base)
    assert r.verdict == DOES_NOT_TRACK
    assert abs(r.estimate) < 1 and r.low > -9.09 and r.high < 10
    assert r.seeds_needed is None


def test_energy_proportional_to_e_falling_twentyfold_tracks():
    rng = np.random.default_rng(2)
    e_base = 1000 * np.exp(rng.normal(0, 0.02, 3))
    e_lambda = e_base / 20 * np.exp(rng.normal(0, 0.02, 3))
    r = energy_change(0.3 * e_lambda, 0.3 * e_base)
    assert r.verdict == TRACKS
    assert r.detail("ratio") == pytest.approx(1 / 20, rel=0.05)
    assert r.estimate == pytest.approx(-95, abs=0.5)


def test_energy_that_rises_while_e_falls_does_not_track():
    r = energy_change([130.0, 131.0, 129.0], [100.0, 100.5, 99.5])
    assert r.verdict == DOES_NOT_TRACK and r.low > 0 and "rose" in r.reason


def test_percent_interval_never_passes_minus_100_even_for_the_issue_seeds():
    # Per-seed ratios 0.5, 1.0, 4.8 gave "+110.4% [-449.3, +670.1]" on the linear scale.
    r = energy_change([50.0, 100.0, 480.0], [100.0, 100.0, 100.0])
    assert r.low > -100 and r.verdict == INCONCLUSIVE
    assert r.estimate == pytest.approx((math.exp(np.log([0.5, 1.0, 4.8]).mean()) - 1) * 100)
    rng = np.random.default_rng(3)
    for _ in range(200):
        r = energy_change(np.exp(rng.normal(0, 2.0, 2)), np.exp(rng.normal(0, 2.0, 2)))
        # >= only because exp(-45) - 1 rounds to -1.0 in float64; on paper the end is always above -100%.
        assert r.low >= -100 and r.low <= r.estimate <= r.high


def test_one_seed_gives_no_interval_and_no_verdict():
    r = energy_change([50.0], [100.0])
    assert r.verdict == INCONCLUSIVE and r.low is None and r.seeds_needed is None and r.n == 1
    assert r.estimate == pytest.approx(-50.0) and "no interval" in r.reason
    empty = energy_change([], [])
    assert empty.n == 0 and empty.estimate is None and json.dumps(empty.to_dict(), allow_nan=False)


def test_a_proxy_that_did_not_fall_leaves_tracking_untested():
    r = energy_change([50.0, 51.0, 49.0], [100.0, 100.0, 100.0], proxy_fell=False)
    assert r.verdict == INCONCLUSIVE and "not tested" in r.reason


def test_energy_change_refuses_unpaired_and_non_positive_energies():
    with pytest.raises(ValueError, match="pair them by seed"):
        energy_change([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="positive"):
        energy_change([1.0, 0.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="non-finite"):
        energy_change([1.0, float("nan")], [1.0, 1.0])


@pytest.mark.parametrize("mean_log, sd_log, expect", [(-0.20, 0.06, TRACKS), (0.02, 0.05, DOES_NOT_TRACK),
                                                      (-0.35, 0.40, TRACKS)])
def test_seeds_needed_resolves_the_question_when_that_many_seeds_are_simulated(mean_log, sd_log, expect):
    r = energy_change(np.exp(exact_sample(mean_log, sd_log, 3)), np.ones(3))
    assert r.verdict == INCONCLUSIVE
    n = r.seeds_needed

    def resolved(seeds):
        rng = np.random.default_rng(11)
        return np.mean([energy_change(np.exp(rng.normal(mean_log, sd_log, seeds)), np.ones(seeds)).verdict == expect
                        for _ in range(600)])

    assert resolved(n) >= 0.75  # planned for 80% power
    assert resolved(max(2, n // 2)) < resolved(n)
    # With a sample whose mean and SD are exactly the observed ones, that many seeds decide it.
    assert energy_change(np.exp(exact_sample(mean_log, sd_log, n)), np.ones(n)).verdict == expect
    assert energy_change(np.exp(exact_sample(mean_log, sd_log, n - 1)), np.ones(n - 1)).verdict in (expect,
                                                                                                     INCONCLUSIVE)


def test_seeds_needed_handles_zero_sd_missing_sd_and_a_mean_on_the_boundary():
    assert seeds_needed(0.0, 0.05) == 2
    assert seeds_needed(float("nan"), 0.05) is None
    assert seeds_needed(0.1, 0.0) is None
    # The normal-theory bound is a lower bound; the t answer is the first n that clears the margin.
    n = seeds_needed(0.1, 0.05)
    assert n == 34  # (t.975 + t.80) * 0.1 / sqrt(n) <= 0.05 first holds at 34 (33 gives 0.0503)
    assert seeds_needed(0.1, 0.05, sides=2) > n


# --- accuracy against the paper's bound -------------------------------------------------------------------

def test_the_issue_accuracy_rise_is_reported_as_a_rise_beyond_the_bound_not_within_it():
    base = np.array([95.0, 95.0, 95.0])
    r = accuracy_change(base + exact_sample(1.95, 0.5555, 3), base)
    assert r.low == pytest.approx(0.57, abs=0.01) and r.high == pytest.approx(3.33, abs=0.01)
    assert r.verdict == HOLDS and r.detail("rose_beyond_bound") is True and r.detail("estimate_above_bound") is True
    assert r.reason == "+1.95 pp [+0.57, +3.33]: no loss (accuracy rose by more than the 0.5 pp bound)"
    assert "within" not in r.reason


@pytest.mark.parametrize("diffs, verdict, fragment", [
    ([-0.1, 0.0, -0.2], HOLDS, "any loss is under the 0.5 pp bound"),
    ([-2.0, -2.1, -1.9], FAILS, "more than 0.5 pp lost"),
    ([-1.5, 0.5, -0.6], INCONCLUSIVE, "reaches both sides"),
])
def test_accuracy_verdict_reads_the_interval_against_the_bound(diffs, verdict, fragment):
    r = accuracy_change(np.array([90.0] * 3) + diffs, [90.0] * 3)
    assert r.verdict == verdict and fragment in r.reason
    assert (r.seeds_needed is not None) == (verdict == INCONCLUSIVE)


# --- elasticity --------------------------------------------------------------------------------------------

def test_elasticity_recovers_a_known_log_log_slope_within_seeds():
    rng = np.random.default_rng(4)
    e = np.tile([1000.0, 300.0, 100.0, 10.0, 1.0], 4)
    seed = np.repeat(np.arange(4), 5)
    offset = np.exp(rng.normal(0, 1.0, 4))[seed]  # seeds differ a lot in level, which must not matter
    joules = offset * 5 * e ** 0.3 * np.exp(rng.normal(0, 0.01, 20))
    r = elasticity(joules, e, seed)
    assert r.n == 4 and r.low < 0.3 < r.high and r.high - r.low < 0.05
    exact = elasticity(offset * e ** 0.3, e, seed)
    assert exact.estimate == pytest.approx(0.3)
    assert "10-fold fall in E goes with a -49.9%" in exact.reason  # 10 ** -0.3 - 1 = -0.4988


# --- correlations within groups, clusters resampled ------------------------------------------------------

def two_by_two(rng, seeds=4, lambdas=5):
    rows = []
    for arch_flops in (1.0, 10.0):
        for data_scale in (1.0, 3.0):
            for s in range(seeds):
                for lam in range(lambdas):
                    level = arch_flops * data_scale
                    rows.append((level * (1 + 0.05 * rng.normal()), 7 * level * (1 + 0.05 * rng.normal()),
                                 (arch_flops, data_scale), s, lam))
    return [list(col) for col in zip(*rows)]


def test_a_pooled_correlation_that_exists_only_between_groups_vanishes_within_them():
    flops, joules, group, seed, _ = two_by_two(np.random.default_rng(5))
    assert np.corrcoef(flops, joules)[0, 1] > 0.9  # the misleading pooled figure
    for method in ("pearson", "spearman"):
        r = within_group_correlation(flops, joules, group, seed, method=method)
        assert abs(r.estimate) < 0.2 and r.verdict != TRACKS
        assert r.n == 4 and r.detail("n_groups") == 4


def test_within_group_correlation_tracks_when_energy_follows_the_proxy_inside_groups():
    flops, joules, group, seed, lam = two_by_two(np.random.default_rng(6), seeds=6)
    e = np.array([10.0 ** -l for l in lam]) * np.exp(np.random.default_rng(6).normal(0, 0.05, len(lam)))
    tied = np.array(joules) * (1 + e)  # energy rises with E inside every group
    r = within_group_correlation(e, tied, group, seed)
    assert r.verdict == TRACKS and r.low > 0.5
    again = within_group_correlation(e, tied, group, seed)
    assert (again.low, again.high) == (r.low, r.high)  # fixed resampling seed


def test_cluster_bootstrap_is_wider_than_the_naive_one_on_clustered_data():
    rng = np.random.default_rng(8)
    seeds, per_seed = 6, 10
    u, v = rng.normal(0, 1, seeds), rng.normal(0, 1, seeds)  # seed-level shifts, unrelated between x and y
    seed = np.repeat(np.arange(seeds), per_seed)
    x, y = u[seed] + 0.1 * rng.normal(size=seed.size), v[seed] + 0.1 * rng.normal(size=seed.size)
    group = [0] * seed.size
    clustered = within_group_correlation(x, y, group, seed, method="pearson")
    naive = within_group_correlation(x, y, group, np.arange(seed.size), method="pearson")
    assert clustered.estimate == naive.estimate
    assert clustered.high - clustered.low > 2 * (naive.high - naive.low)
    assert clustered.verdict != TRACKS and clustered.n == seeds and naive.n == seeds * per_seed
    assert clustered.detail("few_clusters") is False


@pytest.mark.parametrize("seeds", [2, 3, 4])
def test_a_bootstrap_over_fewer_than_five_seeds_decides_nothing_even_when_energy_follows_the_proxy(seeds):
    flops, joules, group, seed, lam = two_by_two(np.random.default_rng(5), seeds=seeds)
    e = np.array([10.0 ** -l for l in lam])
    tied = np.array(joules) * (1 + e)  # energy rises with E inside every group: an r near +1
    r = within_group_correlation(e, tied, group, seed, resamples=200)
    assert r.estimate > 0.5 and r.verdict == INCONCLUSIVE and r.detail("few_clusters") is True
    assert f"{seeds} clusters are too few for a bootstrap verdict; needs 5 seeds or more" in r.reason
    assert r.seeds_needed == 5


def test_resampling_lambdas_as_well_widens_the_interval():
    flops, joules, group, seed, lam = two_by_two(np.random.default_rng(9))
    e = np.array(lam, dtype=float) + np.random.default_rng(9).normal(0, 1.0, len(lam))
    y = np.array(joules) * (1 + 0.05 * e)
    one = within_group_correlation(e, y, group, seed, method="pearson")
    both = within_group_correlation(e, y, group, seed, method="pearson", cross_cluster=lam)
    assert both.high - both.low > one.high - one.low


def test_within_group_coefficients_equal_the_textbook_ones_on_random_inputs_with_ties():
    rng = np.random.default_rng(14)
    for _ in range(20):
        n = int(rng.integers(8, 40))
        x, y = rng.integers(0, 6, n).astype(float), rng.normal(size=n)
        g = rng.integers(0, 3, n)
        one = within_group_correlation(x, y + x, [0] * n, range(n), resamples=10)
        assert one.estimate == pytest.approx(spearmanr(x, y + x)[0], abs=1e-12)
        # Pearson within groups is the partial correlation given group dummies: correlate OLS residuals.
        dummies = np.eye(3)[g]
        resid = [v - dummies @ np.linalg.lstsq(dummies, v, rcond=None)[0] for v in (x, y + x)]
        pooled = within_group_correlation(x, y + x, g, range(n), method="pearson", resamples=10)
        assert pooled.estimate == pytest.approx(np.corrcoef(*resid)[0, 1], abs=1e-12)


def test_correlation_by_group_gives_one_result_per_group():
    flops, joules, group, seed, _ = two_by_two(np.random.default_rng(10))
    per = correlation_by_group(flops, joules, group, seed, resamples=200)
    assert set(per) == set(group) and all(r.detail("n_groups") == 1 and r.n == 4 for r in per.values())


def test_correlation_of_a_constant_proxy_is_not_computed():
    r = within_group_correlation([1.0] * 6, [1.0, 2, 3, 4, 5, 6], [0] * 6, [0, 0, 1, 1, 2, 2])
    assert r.estimate is None and r.verdict == INCONCLUSIVE and "constant" in r.reason


# --- cost to a target accuracy and its gain -----------------------------------------------------------------

def test_cost_to_target_interpolates_within_the_epoch_it_is_reached():
    joules, acc = [10.0, 30.0, 60.0, 100.0], [0.50, 0.70, 0.80, 0.90]
    hit = cost_to_target(joules, acc, 0.76)
    assert hit.epoch == 3 and hit.cost == pytest.approx(30 + 0.6 * 30)  # 0.76 is 60% of the way from 0.70 to 0.80
    assert cost_to_target(joules, acc, 0.76, interpolate=False).cost == 60.0
    assert cost_to_target(joules, acc, 0.80).cost == pytest.approx(60.0)  # reached exactly at the epoch's end


def test_cost_to_target_in_the_first_epoch_uses_the_initial_accuracy_when_given():
    assert cost_to_target([10.0, 20.0], [0.6, 0.7], 0.5).cost == 10.0
    assert cost_to_target([10.0, 20.0], [0.6, 0.7], 0.5, initial_accuracy=0.1).cost == pytest.approx(8.0)
    before = cost_to_target([10.0, 20.0], [0.6, 0.7], 0.5, initial_accuracy=0.55)
    assert (before.cost, before.epoch) == (0.0, 0)


def test_a_target_never_reached_has_no_cost_and_says_why():
    r = cost_to_target([10.0, 20.0, 30.0], [0.5, 0.6, 0.55], 0.9)
    assert r.cost is None and r.epoch is None and "never reached" in r.reason and "best 0.6 at epoch 2" in r.reason


def test_cost_to_target_refuses_a_decreasing_cumulative_series():
    with pytest.raises(ValueError, match="non-decreasing"):
        cost_to_target([10.0, 5.0], [0.5, 0.6], 0.55)


@pytest.mark.parametrize("ratios, verdict", [([0.80, 0.81, 0.79], HOLDS), ([0.99, 1.00, 1.01], FAILS),
                                             ([0.70, 1.10, 0.90], INCONCLUSIVE)])
def test_efficiency_gain_is_judged_against_the_claimed_band(ratios, verdict):
    r = efficiency_gain(100 * np.array(ratios), [100.0] * 3)
    assert r.verdict == verdict
    assert r.high < 100  # a gain can never reach 100%
    assert r.estimate == pytest.approx((1 - math.exp(np.log(ratios).mean())) * 100)


def test_a_gain_above_the_claimed_band_is_flagged():
    r = efficiency_gain([50.0, 51.0, 49.0], [100.0] * 3)
    assert r.verdict == HOLDS and r.detail("above_band") is True and "more than the claimed" in r.reason


# --- drift of a reference workload ---------------------------------------------------------------------------

def test_drift_ratio_recovers_a_known_drift_per_run_and_over_the_series():
    rng = np.random.default_rng(12)
    ref = 200.0 * 1.002 ** np.arange(40) * np.exp(rng.normal(0, 0.002, 40))  # +0.2% per run
    r = reference_drift(ref)
    assert r.quantity == "reference_drift_ratio_per_run"
    assert r.low < 1.002 < r.high and r.low > 1.0
    assert r.verdict == DRIFTING
    assert r.detail("fitted_last_over_first") == pytest.approx(1.002 ** 39, rel=0.01)
    assert r.detail("fitted_last_over_first_low") < 1.002 ** 39 < r.detail("fitted_last_over_first_high")


def test_a_flat_reference_is_stable_and_its_factors_centre_on_one():
    rng = np.random.default_rng(13)
    ref = 200.0 * np.exp(rng.normal(0, 0.002, 30))
    assert reference_drift(ref).verdict == STABLE
    assert reference_drift(ref[:4] * [1.0, 1.05, 0.95, 1.02]).verdict == INCONCLUSIVE  # noisy and short


# --- the record -----------------------------------------------------------------------------------------------

def test_results_serialise_to_strict_json_with_non_finite_values_as_null():
    r = make_result("x_pct", 1, float("nan"), (None, float("inf")), "m", INCONCLUSIVE, "why", sd=np.float64("nan"),
                    count=np.int64(3))
    text = json.dumps(r.to_dict(), allow_nan=False)
    back = json.loads(text)
    assert back["estimate"] is None and back["high"] is None and back["details"] == {"count": 3, "sd": None}
    assert json.loads(json.dumps(energy_change([1.0, 2.0], [1.0, 1.0]).to_dict()))["level"] == 0.95


def test_a_strongly_negative_correlation_is_does_not_track_not_inconclusive():
    # Energy that rises as the proxy falls is the opposite of tracking, as energy_change also says.
    rng = np.random.RandomState(3)
    proxy, energy, group, cluster = [], [], [], []
    for seed in range(8):
        for lam in range(5):
            e = 100.0 / (1 + lam)
            proxy.append(e)
            energy.append(50.0 + 2.0 * lam + 0.01 * rng.randn())
            group.append("g")
            cluster.append(seed)
    result = within_group_correlation(proxy, energy, group, cluster)
    assert result.estimate < -0.9 and result.high < -0.3
    assert result.verdict == "does_not_track"
