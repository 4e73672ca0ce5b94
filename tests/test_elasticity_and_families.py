"""Does energy follow E: the elasticity verdict, and families of verdicts controlled for their size."""

import math

import numpy as np
import pytest

from energymeter.validation.analysis.claims import Claim
from energymeter.validation.analysis.multiplicity import ALPHA, control
from energymeter.validation.analysis.stats import (DOES_NOT_TRACK, INCONCLUSIVE, MIN_ELASTICITY, TRACKS, elasticity,
                                                   elasticity_verdict)


def sweep(energy_of, n_seeds, fall, rng, noise=0.002):
    """Per seed: a run at lambda = 0 (E = 100 x seed jitter) and one whose E is ``fall`` times smaller."""
    js, es, seeds = [], [], []
    for s in range(n_seeds):
        e0 = 100.0 * math.exp(0.1 * rng.standard_normal())
        for e in (e0, e0 / fall):
            es.append(e)
            js.append(energy_of(e) * math.exp(noise * rng.standard_normal()))
            seeds.append(s)
    return elasticity_verdict(elasticity(js, es, seeds))


def test_energy_proportional_to_e_tracks_even_when_e_falls_only_5_percent_and_the_counter_is_precise():
    # The energy-change test said does_not_track here (energy moved under 10%) in 65% of 10-seed sweeps.
    rng = np.random.default_rng(0)
    verdicts = [sweep(lambda e: 0.5 * e, 10, 1.05, rng).verdict for _ in range(50)]
    assert verdicts.count(TRACKS) == 50


def test_energy_independent_of_e_never_tracks_and_with_a_precise_counter_does_not_track():
    rng = np.random.default_rng(1)
    results = [sweep(lambda e: 40.0, 5, 1000.0, rng) for _ in range(100)]
    assert not [r for r in results if r.verdict == TRACKS]
    assert sum(r.verdict == DOES_NOT_TRACK for r in results) >= 90
    assert all(r.low <= 0 <= r.high or r.verdict == DOES_NOT_TRACK for r in results)


def test_false_tracks_from_noise_stay_under_the_one_sided_level():
    # Energy independent of E with noisy counters (lognormal SD 0.3), 5 seeds, a 1000x fall of E.
    rng = np.random.default_rng(2)
    verdicts = [sweep(lambda e: 40.0, 5, 1000.0, rng, noise=0.3).verdict for _ in range(400)]
    assert verdicts.count(TRACKS) / len(verdicts) <= 0.025 + 0.02


def test_two_seeds_decide_nothing_and_say_how_many_would():
    result = sweep(lambda e: 0.5 * e, 2, 1000.0, np.random.default_rng(3))
    assert result.verdict == INCONCLUSIVE and "needs 3 seeds" in result.reason and result.seeds_needed == 3


def test_a_decided_elasticity_carries_the_p_value_its_interval_implies():
    result = sweep(lambda e: 0.5 * e, 5, 10.0, np.random.default_rng(4), noise=0.05)
    assert result.verdict == TRACKS and result.low > MIN_ELASTICITY
    assert 0 <= result.detail("p_value") < ALPHA


def claim(kind, p, verdict=TRACKS):
    return Claim(kind, {}, "figure", "measured", 1.0, 0.5, 1.5, 0.95, 5, "t", verdict, "it tracks",
                 details={"p_value": p})


@pytest.mark.parametrize("method,reference", [("holm", "holm"), ("bh", "fdr_bh")])
def test_family_control_keeps_what_statsmodels_keeps_on_random_p_values(method, reference):
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(5)
    for trial in range(200):
        m = int(rng.integers(1, 30))
        p = np.where(rng.random(m) < 0.3, rng.random(m) * 0.002, rng.random(m))
        claims = [claim("energy_tracking", float(v)) for v in p]
        out, (family,) = control(claims, method)
        expected = multipletests(p, alpha=ALPHA, method=reference)[0]
        assert [c.verdict == TRACKS for c in out] == list(expected), (trial, p)
        assert family.size == m and family.kept == int(expected.sum())


def test_inconclusive_claims_count_towards_the_family_size_and_other_kinds_are_left_alone():
    claims = [claim("energy_tracking", 0.01)] + [claim("energy_tracking", None, INCONCLUSIVE)] * 3
    claims.append(claim("e_reduction", 0.5))
    out, families = control(claims)
    assert out[0].verdict == INCONCLUSIVE and "controlled together" in out[0].sentence
    assert out[0].details["verdict_before_control"] == TRACKS and "it tracks" in out[0].sentence
    assert out[-1] is claims[-1]
    assert [(f.family, f.size, f.decided, f.kept) for f in families] == [("tracking", 4, 1, 0)]


def test_an_unknown_method_is_refused():
    with pytest.raises(ValueError, match="multiplicity method 'bonferoni'"):
        control([], "bonferoni")


def test_the_report_states_each_family_its_size_and_method_and_takes_the_method_as_a_flag(tmp_path, capsys):
    import json

    from energymeter.cli import main
    from energymeter.validation.records import store
    from test_analysis_and_report import fixture

    for r in fixture(lambda e, rng: 2.0 * e, n_seeds=5):
        store.append_record(tmp_path, r)
    assert main(["report", str(tmp_path), "--format", "json", "--format", "md", "--multiplicity", "bh"]) == 0
    families = json.loads((tmp_path / "report.json").read_text())["multiplicity"]
    assert {f["family"] for f in families} >= {"tracking", "saving", "correlation"}
    assert all(f["method"] == "bh" and f["size"] >= f["decided"] >= f["kept"] for f in families)
    tracking = next(f for f in families if f["family"] == "tracking")
    assert tracking["kept"] >= 1  # energy proportional to E: a precise elasticity of 1 survives the control
    assert "controlled together for the family's size" in (tmp_path / "report.md").read_text()
    capsys.readouterr()
    assert main(["report", str(tmp_path), "--multiplicity", "bonferoni"]) == 2
    assert "--multiplicity" in capsys.readouterr().err


def test_a_headline_without_hardware_figures_says_which_counters_were_there_but_unread():
    from energymeter.validation.analysis.analysis import analyse
    from energymeter.validation.records.manifest import SweepManifest
    from test_analysis_and_report import fixture

    records = fixture(lambda e, rng: 2.0 * e, provenance="modeled", n_seeds=3, lambdas=(0.0, 1e-2), full=False)
    sweep = SweepManifest(metadata={"backends": [
        {"name": "rapl", "available": False, "provenance": "measured", "domains": [],
         "reason": "permission denied on /sys/class/powercap/intel-rapl:0/energy_uj: run as root"},
        {"name": "cpu-model", "available": True, "provenance": "modeled", "domains": ["cpu:model"], "reason": "ok"}]})
    headline = analyse(records, sweep).headline
    assert headline.startswith("No energy was read from hardware in this sweep")
    assert "rapl: permission denied on /sys/class/powercap/intel-rapl:0/energy_uj" in headline
    assert "cpu-model" not in headline.split("why none was read")[1]
    assert "no RAPL counters" not in analyse(records).headline


def test_a_frozen_counter_in_a_sweep_fails_its_figures_and_the_report_names_it():
    from energymeter import Measurement
    from energymeter.validation.analysis.analysis import analyse
    from energymeter.validation.records.record import RunRecord, WindowRecord
    from test_analysis_and_report import fixture

    frozen = ("cpu:0:package: the counter did not advance over this 2.00 s window (a frozen counter, as some VMs "
              "expose?): its 0 J is not a measurement",)
    records = []
    for r in fixture(lambda e, rng: 2.0 * e, n_seeds=3, lambdas=(0.0, 1e-2), full=False):
        m = r.inference.measurement
        both = Measurement(name="inference", duration_s=2.0, energy_j={**m.energy_j, "cpu:0:package": 0.0},
                           provenance={**m.provenance, "cpu:0:package": "measured"}, warnings=frozen)
        records.append(RunRecord.from_dict({**r.to_dict(), "inference": WindowRecord(both, {}, 10, 32).to_dict()}))
    a = analyse(records)
    assert any(w.startswith("cpu:0:package: the counter did not advance over the windows of 6 run(s)")
               for w in a.warnings)
    assert not [c for c in a.claims if "cpu:0:package" in c.figure]  # no figure, so no verdict, on a frozen counter
    assert [c for c in a.claims if c.kind == "energy_tracking" and "gpu:0" in c.figure]  # the others stand
