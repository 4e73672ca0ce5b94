"""The meter's one protocol per backend kind: window counters chosen by kind, fault reasons carried by readings,
and the trusted construction of a window's Measurement agreeing with the checked one."""

from __future__ import annotations

import pytest

from energymeter import Measurement, Meter
from energymeter import backends as registry
from energymeter.backends.base import Reading


@pytest.fixture
def fake_ops(monkeypatch):
    monkeypatch.setattr(registry, "REGISTRY", dict(registry.REGISTRY))
    registry.register("fake-ops", "fake_op_counter:FakeOpsBackend")
    yield
    registry._default_instances.pop("fake-ops", None)


def test_an_operation_counter_is_chosen_by_its_kind_and_counts_windows_that_name_a_model(fake_ops, powercap):
    powercap.add_package(0)
    meter = Meter(["rapl", "fake-ops"], powercap_root=powercap.root, sync=False, ops_per_window=11)
    with meter:
        with meter.window("named", model="partial") as named:
            pass
        with meter.window("anonymous") as anonymous:
            pass
        counter = meter._counter
    assert named.result.flops == 11 and dict(named.result.uncounted_ops) == {"op.unknown": 1}
    assert anonymous.result.flops is None
    assert "fake-ops: not counted without model=" in anonymous.result.warnings
    assert counter.begun == ["partial"] and counter.closed  # the anonymous window never reached it


def test_a_meter_of_only_an_operation_counter_counts_every_window(fake_ops):
    with Meter(["fake-ops"], sync=False) as meter:
        with meter.window("w") as w:
            pass
    assert w.result.flops == 7 and dict(w.result.energy_j) == {}


def test_a_window_spanning_a_recovered_fault_says_which_fault(powercap):
    zone = powercap.add_package(0)
    with Meter(["rapl"], powercap_root=powercap.root, sync=False) as meter:
        meter.begin_window("outer")
        (powercap.root / zone / "energy_uj").write_text("garbage\n")
        meter.begin_window("inner")  # this read fails; the counter recovers at the next one
        powercap.set_energy(zone, 1_000_000)
        inner = meter.end_window("inner")
        outer = meter.end_window("outer")
        meter.begin_window("after")
        powercap.set_energy(zone, 3_000_000)
        after = meter.end_window("after")
    reason = outer.failed["cpu:0:package"]
    assert reason.startswith("a read of this domain failed inside the window and recovered")
    assert reason.endswith("not an integer: b'garbage\\n'") and "energy_uj" in reason
    assert "not an integer" in inner.failed["cpu:0:package"]  # its opening read was the failed one
    assert after.energy_j["cpu:0:package"] == pytest.approx(2.0) and after.failed == {}


def test_a_reading_without_fault_reasons_still_fails_the_spanning_window_in_the_old_words():
    from energymeter.session_plans import difference

    class Plan:  # what _difference reads of a plan
        domains = ("x",)
        provenance = {"x": "measured"}
        provenance_proxy = provenance

    energy, _, failed = difference(Plan, Reading({"x": 1.0}), Reading({"x": 2.0}, {}, {"x": 1}))
    assert energy == {} and failed["x"].endswith("recovered; its figure would be incomplete")


def test_the_trusted_window_measurement_equals_the_checked_one(powercap):
    powercap.add_package(0, dram=True)
    with Meter(["rapl", "cpu-model"], powercap_root=powercap.root, sync=False) as meter:
        meter.begin_window("w")
        powercap.set_energy("intel-rapl:0", 2_500_000)
        m = meter.end_window("w")
    checked = Measurement(name=m.name, duration_s=m.duration_s, energy_j=dict(m.energy_j), flops=m.flops,
                          uncounted_ops=dict(m.uncounted_ops), failed=dict(m.failed), warnings=m.warnings,
                          start_time_s=m.start_time_s, domains=dict(m.domains))
    assert m == checked
    assert m.provenance == checked.provenance == {"cpu:0:package": "measured", "cpu:0:dram": "measured",
                                                  "cpu:model": "modeled"}
    assert m.total_domains == checked.total_domains == ("cpu:0:dram", "cpu:0:package")
    assert m.energy_j["cpu:0:package"] == pytest.approx(2.5)
    with pytest.raises(TypeError):
        m.energy_j["cpu:0:package"] = 0.0  # type: ignore[index]
