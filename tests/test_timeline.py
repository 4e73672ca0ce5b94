"""A window's power timeline (``timeline_period_s=``): power from the counters' differences, in its JSON and plots."""

import json
import math
import statistics
import time

import pytest

from energymeter import Measurement, Meter, measure
from energymeter.measurement import SchemaError
from steady_power import WATTS, SteadyPower

PACKAGE, DRAM = "cpu:0:package", "cpu:0:dram"


@pytest.fixture()
def power(tmp_path):
    steady = SteadyPower(tmp_path / "powercap")
    with steady:
        yield steady
    steady.close()


def integral_j(timeline, domain):
    joules, previous = 0.0, 0.0
    for t_s, watts in timeline:
        joules += watts[domain] * (t_s - previous)
        previous = t_s
    return joules


def test_a_windows_timeline_integrates_to_its_joules_and_shows_the_writers_power(power):
    with Meter(["rapl"], powercap_root=power.tree.root, timeline_period_s=0.05) as meter:
        with meter.window("w") as w:
            time.sleep(0.6)
    m = w.result
    assert 8 <= len(m.timeline) <= 16
    for domain, zone in ((PACKAGE, "intel-rapl:0"), (DRAM, "intel-rapl:0:0")):
        assert integral_j(m.timeline, domain) == pytest.approx(m.energy_j[domain], rel=0.01)
        assert statistics.median(p[domain] for _, p in m.timeline) == pytest.approx(WATTS[zone], rel=0.1)
    times = [t for t, _ in m.timeline]
    assert times == sorted(times) and times[-1] == pytest.approx(m.duration_s, abs=0.01)


def test_a_measure_block_keeps_a_timeline_only_when_asked(power):
    with measure(["rapl"], powercap_root=power.tree.root, timeline_period_s=0.02) as kept:
        time.sleep(0.2)
    with measure(["rapl"], powercap_root=power.tree.root) as plain:
        time.sleep(0.05)
    assert len(kept.result.timeline) >= 5
    assert integral_j(kept.result.timeline, PACKAGE) == pytest.approx(kept.result.energy_j[PACKAGE], rel=0.01)
    assert plain.result.timeline == ()
    assert "timeline" not in plain.result.to_dict()


def test_nested_windows_each_cut_their_own_span_and_nothing_is_kept_after(power):
    with Meter(["rapl"], powercap_root=power.tree.root, timeline_period_s=0.02) as meter:
        meter.begin_window("outer")
        time.sleep(0.1)
        with meter.window("inner") as inner:
            time.sleep(0.1)
        time.sleep(0.1)
        outer = meter.end_window("outer")
        rec = meter.timeline_recorder
        assert rec._times_s == [] and rec._open == {}
        assert not rec._poller.running
    assert outer.timeline[-1][0] == pytest.approx(outer.duration_s, abs=0.01)
    assert inner.result.timeline[-1][0] == pytest.approx(inner.result.duration_s, abs=0.01)
    assert len(outer.timeline) > len(inner.result.timeline) >= 3
    assert integral_j(outer.timeline, PACKAGE) == pytest.approx(outer.energy_j[PACKAGE], rel=0.01)


def test_a_domain_that_cannot_be_read_leaves_a_gap_not_a_number(tmp_path):
    steady = SteadyPower(tmp_path / "powercap", period_s=0.002)
    with Meter(["rapl"], powercap_root=steady.tree.root, timeline_period_s=0.05) as meter:
        meter.begin_window("w")
        with steady:
            time.sleep(0.15)
        (steady.tree.root / "intel-rapl:0:0" / "energy_uj").write_text("garbage\n")  # the writer has stopped
        time.sleep(0.15)
        m = meter.end_window("w")
    steady.close()
    assert DRAM in m.failed
    with_dram = [p for _, p in m.timeline if DRAM in p]
    assert with_dram and len(with_dram) < len(m.timeline)
    assert all(PACKAGE in p for _, p in m.timeline)
    assert all(math.isfinite(w) and w >= 0 for _, p in m.timeline for w in p.values())


def test_the_timeline_round_trips_through_json_and_old_json_without_it_still_reads(power):
    with measure(["rapl"], powercap_root=power.tree.root, timeline_period_s=0.02) as m:
        time.sleep(0.1)
    data = json.loads(json.dumps(m.result.to_dict()))
    back = Measurement.from_dict(data)
    assert back.timeline == m.result.timeline
    assert back == m.result
    del data["timeline"]
    assert Measurement.from_dict(data).timeline == ()


@pytest.mark.parametrize("timeline", ["x", [{"t_s": 1.0}], [{"t_s": "nan", "power_w": {}}],
                                      [{"t_s": 2, "power_w": {}}, {"t_s": 1, "power_w": {}}],
                                      [{"t_s": 1, "power_w": {"a": "inf"}}]])
def test_a_malformed_timeline_in_json_is_a_schema_error(timeline):
    data = Measurement("w", 1.0, {"cpu:model": 1.0}, {"cpu:model": "modeled"}).to_dict()
    data["timeline"] = timeline
    with pytest.raises(SchemaError):
        Measurement.from_dict(data)


@pytest.mark.parametrize("period", [0, -1, float("nan"), float("inf"), "soon"])
def test_a_period_that_is_no_positive_number_of_seconds_is_refused(period, tmp_path):
    with pytest.raises(ValueError, match="timeline_period_s"):
        Meter(["cpu-model"], timeline_period_s=period)
    with pytest.raises(ValueError, match="timeline_period_s"):
        measure(["cpu-model"], timeline_period_s=period)


def test_a_measure_on_a_given_meter_refuses_a_period_of_its_own():
    with Meter(["cpu-model"]) as meter, pytest.raises(TypeError, match="give timeline_period_s to the Meter"):
        measure(meter=meter, timeline_period_s=0.1)


def test_a_meter_without_an_energy_session_keeps_no_timeline():
    pytest.importorskip("torch")
    with Meter(["flops"], timeline_period_s=0.01) as meter:
        with meter.window("w") as w:
            sum(range(1000))
    assert meter.timeline_recorder is None and w.result.timeline == ()
