"""The verdicts' error rates on simulated sweeps with known truth hold their bounds for the default design."""

import pytest

from energymeter.validation.analysis.error_rates import Case, default_cases, rates


def test_the_default_design_gives_no_more_than_5_percent_false_tracks_whatever_the_seeds_drift_or_noise():
    cases = [c for c in default_cases() if c.order == "interleaved" and c.truth in ("independent", "effect5")]
    assert len(cases) == 4 * 6  # independent (normal, t3, outlier, linear and step drift) and the 5% effect
    for i, case in enumerate(cases):
        assert rates(case, 120, seed=i).tracking["tracks"] <= 5.0, case


def test_energy_proportional_to_e_is_never_called_untracked_at_any_fall_of_e():
    for i, case in enumerate(c for c in default_cases() if c.truth == "proportional"):
        r = rates(case, 120, seed=100 + i)
        assert r.tracking["does_not_track"] <= 5.0, case
        if case.fall >= 10 and case.seeds >= 3:
            assert r.tracking["tracks"] >= 95.0, case


@pytest.mark.parametrize("case", [Case("proportional", 10.0, 5), Case("independent", 1000.0, 3),
                                  Case("effect5", 1000.0, 10), Case("independent", 1000.0, 5, drift="linear")])
def test_the_intervals_cover_the_truth_95_percent_of_the_time(case):
    r = rates(case, 500, seed=7)
    assert 93.0 <= r.elasticity_coverage_pct <= 97.0 and 93.0 <= r.change_coverage_pct <= 97.0, r


def test_the_sequential_order_turns_drift_into_a_saving_which_the_interleaved_one_does_not():
    sequential = rates(Case("independent", 1000.0, 5, drift="step", order="sequential"), 100)
    interleaved = rates(Case("independent", 1000.0, 5, drift="step"), 100)
    assert sequential.saving["holds"] >= 50.0 and interleaved.saving["holds"] == 0.0
