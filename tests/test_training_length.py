"""E's ratio against training length, and the part of each E ratio a pure rescaling explains."""

import dataclasses

import pytest

pytest.importorskip("scipy")

from energymeter.validation.analysis.analysis import analyse  # noqa: E402
from energymeter.validation.analysis.training_length import levelled_off, lookback_epochs, still_rising  # noqa: E402
from energymeter.validation.records.record import EpochRecord, RunRecord  # noqa: E402
from test_analysis_and_report import fixture  # noqa: E402


def with_epochs(records, ratios, scale_free_ratio=None):
    """Records whose test E after epoch k is E(0)-like at lambda 0 and E(0) / ratios[k] at lambda 1e-2."""
    out = []
    for r in records:
        history = []
        for k, h in enumerate(r.history[:len(ratios)]):
            e = 100.0 if r.lam == 0 else 100.0 / ratios[k]
            history.append(dataclasses.replace(h, test_activation_energy_by_kind={"l2": e, "l0": 50.0}))
        final_e = 100.0 if r.lam == 0 else 100.0 / ratios[-1]
        by_kind = {"l2": final_e, "l0": 50.0}
        if scale_free_ratio is not None:
            by_kind["l2-scale-free"] = 10.0 if r.lam == 0 else 10.0 / scale_free_ratio
        out.append(dataclasses.replace(r, history=tuple(history), activation_energy=final_e,
                                       activation_energy_by_kind=by_kind))
    return out


def claim_at(analysis, kind="e_reduction", **subject):
    return next(c for c in analysis.claims if c.kind == kind and c.subject.get("lambda") == 1e-2
                and not c.subject.get("joint") and all(c.subject.get(k) == v for k, v in subject.items()))


def test_a_ratio_short_of_1000x_that_is_still_rising_reads_not_reached_instead_of_fails():
    a = analyse(with_epochs(fixture(lambda e, rng: e, lambdas=(0.0, 1e-2)), [2.0, 4.0, 8.0, 11.0]))
    row = next(r for r in a.lambda_rows if r.lam == 1e-2)
    assert row.e_ratio_by_epoch == pytest.approx((2.0, 4.0, 8.0, 11.0))
    assert row.levelled_off is False and row.still_rising
    claim = claim_at(a)
    assert claim.verdict == "inconclusive"
    assert "not reached at this training length (still rising)" in claim.sentence and "fails" not in claim.sentence


def test_a_ratio_short_of_1000x_that_levelled_off_fails():
    a = analyse(with_epochs(fixture(lambda e, rng: e, lambdas=(0.0, 1e-2)), [2.0, 9.0, 10.8, 11.0]))
    row = next(r for r in a.lambda_rows if r.lam == 1e-2)
    assert row.levelled_off is True and not row.still_rising
    claim = claim_at(a)
    assert claim.verdict == "fails" and "still rising" not in claim.sentence


def test_a_one_epoch_ratio_short_of_1000x_cannot_refute_the_claim_and_reads_not_reached():
    a = analyse(with_epochs(fixture(lambda e, rng: e, lambdas=(0.0, 1e-2)), [11.0]))
    row = next(r for r in a.lambda_rows if r.lam == 1e-2)
    assert row.e_ratio_by_epoch == pytest.approx((11.0,)) and row.levelled_off is None
    for kind, subject in (("e_reduction", {}), ("e_reduction", {"measured_as": "l0/sum"})):
        claim = claim_at(a, kind, **subject) if subject else claim_at(a)
        assert claim.verdict == "inconclusive", claim.sentence
        assert "too few epochs to tell whether it had levelled off" in claim.sentence and "fails" not in claim.sentence


def test_every_e_ratio_says_what_a_pure_rescaling_explains_and_the_scale_free_part():
    a = analyse(with_epochs(fixture(lambda e, rng: e, lambdas=(0.0, 1e-2)), [11.0] * 4, scale_free_ratio=2.0))
    l2 = claim_at(a)  # E fell about 11x, the scale-free E 2x: a rescaling explains 5.5x
    assert "explains 5.5x of it" in l2.sentence and "scale-free part (l2-scale-free E) is 2.0x" in l2.sentence
    l0 = claim_at(a, "e_reduction", measured_as="l0/sum")
    assert "no rescaling moves l0 E" in l0.sentence
    sf = claim_at(a, "e_reduction", measured_as="l2-scale-free/sum")
    assert "scale-free by construction" in sf.sentence
    assert any(row.e_ratio_by_kind.get("l2-scale-free") for row in a.lambda_rows)


def test_the_levelling_rule_compares_the_last_epoch_with_a_quarter_of_the_run_earlier():
    assert lookback_epochs(4) == 1 and lookback_epochs(40) == 10 and lookback_epochs(1) == 1
    rising = [10.0] * 30 + [10.0 + k for k in range(10)]  # epoch 30 -> 40: 10x -> 19x
    assert levelled_off(rising) is False and still_rising(rising)
    assert levelled_off([10.0] * 29 + [20.0] + [20.5] * 10) is True
    assert levelled_off([5.0]) is None and levelled_off([None, 3.0]) is None


def test_per_epoch_test_energy_round_trips_and_old_lines_without_it_still_read():
    epoch = EpochRecord(3, 1.0, 0.9, 5.0, 0.8, 0.7, test_activation_energy_by_kind={"l2": 4.0, "l2-scale-free": 0.1})
    assert EpochRecord.from_dict(epoch.to_dict()) == epoch
    old = {k: v for k, v in epoch.to_dict().items() if k != "test_activation_energy_by_kind"}
    assert EpochRecord.from_dict(old).test_activation_energy_by_kind == {}
    record = fixture(lambda e, rng: e, n_seeds=1, lambdas=(0.0,))[0]
    line = record.to_dict()
    assert RunRecord.from_dict(line) == record and line["schema_version"] == 2


def test_the_report_shows_the_ratio_per_epoch_the_rule_and_the_scale_free_ratio(tmp_path):
    import json

    from energymeter.validation.records import store
    from energymeter.validation.report.report import write_reports

    for r in with_epochs(fixture(lambda e, rng: e, lambdas=(0.0, 1e-2)), [2.0, 4.0, 8.0, 11.0], scale_free_ratio=2.0):
        store.append_record(tmp_path, r)
    write_reports(tmp_path, ("md", "json"))
    text = (tmp_path / "report.md").read_text()
    assert "E(0)/E against training length" in text and "no: still rising" in text and "3: 8.0x, 4: 11.0x" in text
    assert "E(0)/E as l2-scale-free" in text
    summary = json.loads((tmp_path / "report.json").read_text())
    row = next(r for r in summary["lambda_table"] if r["lam"] == 1e-2)
    assert row["e_ratio_by_kind"]["l2-scale-free"]["estimate"] == pytest.approx(2.0)
    assert row["still_rising"] is True and "within 10%" in summary["thresholds"]["e_ratio_level_rule"]
    e_claim = next(c for c in summary["claims"] if c["kind"] == "e_reduction" and not c["subject"].get("joint")
                   and "measured_as" not in c["subject"])
    assert "a pure per-layer rescaling" in e_claim["sentence"] and e_claim["details"]["not_reached"] is True
