"""The report a scientist reads first: the summary per question, intervals kept to their bounds, the
"unresolved" rule, drift as a ratio, and log-axis tick labels that do not overlap."""

import dataclasses
import json
import math
import re

import numpy as np
import pytest

pytest.importorskip("scipy")

from energymeter.validation.analysis.analysis import analyse  # noqa: E402
from energymeter.validation.analysis.stats import accuracy_change, reference_drift  # noqa: E402
from energymeter.validation.analysis.stats_core import too_wide  # noqa: E402
from energymeter.validation.records import store  # noqa: E402
from energymeter.validation.report.report import write_reports  # noqa: E402
from test_analysis_and_report import fixture  # noqa: E402


def test_the_summary_has_one_line_per_question_with_counts_that_add_up_and_claims_grouped_under_it(tmp_path):
    for r in fixture(lambda e, rng: 2.0 * e):
        store.append_record(tmp_path, r)
    store.write_json_atomic(tmp_path / store.SWEEP_FILE, {"config": {"order_seed": 7}, "run_order": ["a"] * 12})
    write_reports(tmp_path, ("md", "json"))
    report = json.loads((tmp_path / "report.json").read_text())
    summary = {q["key"]: q for q in report["summary"]}
    assert list(summary)[:8] == ["tracking", "saving", "e_reduction", "joint", "accuracy", "efficiency", "anova",
                                 "correlation"]
    tracking = summary["tracking"]
    assert sum(tracking["counts"].values()) == tracking["total"] == len(tracking["claims"]) > 0
    assert tracking["verdicts"].startswith(f"tracks in {tracking['counts']['tracks']} of {tracking['total']} ")
    assert any("4 seeds paired with lambda = 0" in d for d in tracking["design"])
    assert any("order_seed 7 (12 runs in sweep.json)" in d for d in tracking["design"])
    assert any(d.startswith("Holm over the ") and "tracking claims" in d for d in tracking["design"])
    assert summary["anova"]["total"] == 0 and "one model and one dataset" in summary["anova"]["verdicts"]
    for q in report["summary"]:  # every claim is under the question that lists it, and under one only
        assert all(report["claims"][i]["question"] == q["key"] for i in q["claims"])
    assert sorted(i for q in report["summary"] for i in q["claims"]) == list(range(len(report["claims"])))
    assert {report["claims"][i]["kind"] for i in tracking["claims"]} == {"energy_tracking"}
    md = (tmp_path / "report.md").read_text()
    assert md.index("## Summary") < md.index("## Claims by question") < md.index("### Does energy follow E?")
    assert f"| Does energy follow E? | {tracking['verdicts']} |" in md
    section = md[md.index("### Does energy follow E?"):md.index("### Does lambda save energy?")]
    assert section.count("| **") == tracking["total"]  # one row per tracking claim, none of the others


def _near_100_with_wild_energy():
    """Two seeds whose accuracies sit near 100% and spread wide, and an energy spread over orders of magnitude."""
    records = fixture(lambda e, rng: 50.0 * math.exp(6.0 * rng.randn()), n_seeds=2, lambdas=(0.0, 1e-2), seed=3)
    accuracy = {(0.0, 0): 0.999, (0.0, 1): 0.99, (1e-2, 0): 0.30, (1e-2, 1): 0.995}
    return [dataclasses.replace(r, test_accuracy=accuracy[(r.lam, r.seed)]) for r in records]


def test_intervals_stay_within_their_possible_range_and_say_when_they_were_clipped(tmp_path):
    a = analyse(_near_100_with_wild_energy())
    for row in a.lambda_rows:
        assert 0.0 <= row.accuracy_pct.low and row.accuracy_pct.high <= 100.0
        for change in row.energy_change.values():
            assert change.low is None or change.low >= -100.0
    assert any(row.accuracy_pct.clipped and "clipped to the possible range 0-100" in row.accuracy_pct.method
               for row in a.lambda_rows)
    change = next(r.accuracy_change_pp for r in a.lambda_rows if r.lam)
    assert -100.0 <= change.low and change.high <= 100.0 and change.clipped
    for r in _near_100_with_wild_energy():
        store.append_record(tmp_path, r)
    write_reports(tmp_path, ("md",))
    md = (tmp_path / "report.md").read_text()
    assert "100.00] clipped" in md
    table = md[md.index("## Per lambda"):].split("\n\n")[1].splitlines()[2:]
    accuracy_cells = [row.split(" | ")[5] for row in table]
    assert accuracy_cells and all(float(v) <= 100.0 for cell in accuracy_cells
                                  for v in re.findall(r"-?\d+\.\d+", cell))
    assert "unresolved (2 seeds)" in md and "113,897" not in md


def test_an_interval_too_wide_to_say_anything_is_unresolved_by_the_rule_of_its_scale():
    assert too_wide(1.0, 101.0, "ratio") and not too_wide(1.0, 99.0, "ratio") and too_wide(0.0, 2.0, "ratio")
    assert too_wide(-100.0, 901.0, "percent_change") and not too_wide(-100.0, 899.0, "percent_change")
    assert too_wide(-60.0, 41.0, "points") and not too_wide(-60.0, 39.0, "points")
    assert not too_wide(None, None, "ratio")
    with pytest.raises(ValueError):
        too_wide(1.0, 2.0, "kelvin")
    wide = accuracy_change([10.0, 95.0], [90.0, 20.0])  # undecided, 700 pp wide before the clip
    assert wide.verdict == "inconclusive" and wide.unresolved and wide.fmt("+.2f") == "unresolved (2 seeds)"
    lost = accuracy_change([10.0, 12.0, 30.0], [90.0, 95.0, 80.0])  # fails: its interval is printed
    assert lost.verdict == "fails" and not lost.unresolved and "[" in lost.fmt("+.2f")


def test_reference_drift_is_a_ratio_that_cannot_go_negative_and_says_when_its_interval_is_too_wide():
    falling = reference_drift([100.0, 70.0, 40.0, 10.0])  # a straight line would reach below zero
    assert falling.quantity == "reference_drift_ratio_per_run"
    assert 0 < falling.low <= falling.estimate <= falling.high
    for name in ("fitted_last_over_first", "fitted_last_over_first_low", "fitted_last_over_first_high"):
        assert falling.detail(name) > 0
    assert falling.detail("fitted_last_over_first") == pytest.approx(0.1, rel=0.5)
    noisy = reference_drift([1.0, 1.6, 0.7, 1.3, 0.9])
    assert noisy.verdict == "inconclusive"
    assert "too wide to exclude a drift of 5%" in noisy.reason and "not excluded" not in noisy.reason
    low, high = noisy.detail("fitted_last_over_first_low"), noisy.detail("fitted_last_over_first_high")
    assert f"[{low:.3g}, {high:.3g}]" in noisy.reason and "%" not in noisy.reason.split(":")[0]


def _label_boxes(fig, axis):
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    low, high = sorted(axis.get_view_interval())
    ticks = list(zip(axis.get_majorticklocs(), axis.get_major_ticks()))
    ticks += list(zip(axis.get_minorticklocs(), axis.get_minor_ticks()))
    return [(t.label1.get_text(), t.label1.get_window_extent(renderer)) for loc, t in ticks
            if low * (1 - 1e-9) <= loc <= high * (1 + 1e-9) and t.label1.get_visible() and t.label1.get_text()]


@pytest.mark.parametrize("lambdas", [(0.0, 1e-5), (0.0, 1e-3, 1e-2), (0.0, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)])
def test_log_axis_tick_labels_never_overlap(lambdas):
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    from energymeter.validation.report.plots import lambda_figure, scatter_figure

    a = analyse(fixture(lambda e, rng: 2.0 * e, n_seeds=3, lambdas=lambdas, full=False))
    checked = 0
    for build in (scatter_figure, lambda_figure):
        fig = build(a)
        for ax in fig.axes:
            for axis in (ax.xaxis, ax.yaxis):
                if axis.get_scale() != "log":
                    continue
                boxes = _label_boxes(fig, axis)
                assert len(boxes) >= 2, [text for text, _ in boxes]  # still readable: at least two labels
                for i, (text_a, box_a) in enumerate(boxes):
                    for text_b, box_b in boxes[i + 1:]:
                        assert not box_a.overlaps(box_b), (text_a, text_b)
                checked += 1
        plt.close(fig)
    assert checked >= 3
