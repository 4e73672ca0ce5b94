"""The hwmon backend on fake trees of each known layout: energy, provenance, containment, faults, unknown sensors."""

import json
import math
import subprocess
import sys
import time

import pytest

from energymeter import Meter
from energymeter.backends import default_selection
from energymeter.backends.hwmon import HwmonBackend
from energymeter.testing import FakeHwmon

WINDOW_S = 5.0
STEP_S = 0.05


@pytest.fixture
def tree(tmp_path):
    return FakeHwmon(tmp_path / "hwmon")


def wave(mean_w, swing_w, period_s=1.3):
    """A power that changes all the time, so that the sampler has something to integrate."""
    return lambda t: mean_w + swing_w * math.sin(2 * math.pi * t / period_s)


def open_session(tree, **kw):
    kw.setdefault("sample_period_s", 3600.0)  # the test takes the samples: nothing on real time
    return HwmonBackend(hwmon_root=tree.root, clock=tree.clock, reader=tree.read, **kw).open()


def window(tree, session, keys, duration_s=WINDOW_S):
    """Measure ``duration_s`` of fake time, sampling every STEP_S; (measured J, true J) per domain key."""
    truth0 = {k: tree.true_energy_j(k) for k in keys.values()}
    start = session.read()
    for _ in range(round(duration_s / STEP_S)):
        tree.advance(STEP_S)
        session.sample()
    end = session.read()
    return {d: (end.energy_j[d] - start.energy_j[d], tree.true_energy_j(k) - truth0[k]) for d, k in keys.items()}


def assert_within_half_percent(results):
    for domain, (measured_j, true_j) in results.items():
        assert measured_j == pytest.approx(true_j, rel=0.005), domain


def test_ina3221_rails_integrate_voltage_times_current_to_the_energy_drawn(tree):
    keys = tree.add_ina3221({"VDD_IN": wave(7.0, 2.0), "VDD_CPU_GPU_CV": wave(3.0, 1.0), "VDD_SOC": 1.5})
    session = open_session(tree)
    assert {d: session.domains[d].provenance for d in session.domains} == dict.fromkeys(
        ["hwmon:ina3221:VDD_IN", "hwmon:ina3221:VDD_CPU_GPU_CV", "hwmon:ina3221:VDD_SOC"], "integrated")
    assert_within_half_percent(window(tree, session, {f"hwmon:ina3221:{label}": k for label, k in keys.items()}))


def test_grace_sensors_integrate_to_the_energy_drawn_in_both_sysfs_shapes(tree):
    keys = tree.add_grace(0, {"Module": wave(420.0, 80.0), "CPU": wave(180.0, 60.0), "SysIO": 45.0})
    acpi = tree.add_grace(1, {"Module": wave(300.0, 50.0), "Grace": 200.0, "CPU": 150.0}, acpi=True)
    session = open_session(tree)
    expected = {f"hwmon:grace:0:{w.lower()}": k for w, k in keys.items()}
    expected.update({f"hwmon:grace:1:{w.lower()}": k for w, k in acpi.items()})
    assert {d: session.domains[d].provenance for d in expected} == dict.fromkeys(expected, "integrated")
    assert_within_half_percent(window(tree, session, expected))


def test_amd_energy_counters_are_read_as_measured_energy(tree):
    keys = tree.add_amd_energy([wave(150.0, 40.0), 120.0], [[wave(5.0, 2.0), 6.0], [7.0, 8.0]])
    session = open_session(tree)
    expected = {"hwmon:amd_energy:socket0": keys["Esocket0"], "hwmon:amd_energy:socket1": keys["Esocket1"],
                "hwmon:amd_energy:core000": keys["Ecore000"], "hwmon:amd_energy:core003": keys["Ecore003"]}
    assert {session.domains[d].provenance for d in session.domains} == {"measured"}
    assert_within_half_percent(window(tree, session, expected))


def test_an_acpi_power_meter_integrates_the_whole_systems_power(tree):
    key = tree.add_power_meter(wave(350.0, 100.0, period_s=0.7))
    session = open_session(tree)
    assert session.domains["hwmon:power_meter"].device_class == "system"
    assert session.domains["hwmon:power_meter"].provenance == "integrated"  # power samples, no counter
    assert_within_half_percent(window(tree, session, {"hwmon:power_meter": key}))


def test_a_board_input_rail_that_contains_the_cpu_rail_is_counted_once_in_the_total(tree):
    tree.add_ina3221({"VDD_IN": 8.0, "VDD_CPU_GPU_CV": 3.0, "VDD_SOC": 2.0})
    with Meter(["hwmon"], hwmon_root=tree.root, clock=tree.clock, sample_period_s=3600.0) as meter:
        meter.begin_window("w")
        tree.advance(WINDOW_S)
        result = meter.end_window("w")
    assert set(result.domains["hwmon:ina3221:VDD_IN"].contains) == {"hwmon:ina3221:VDD_CPU_GPU_CV",
                                                                     "hwmon:ina3221:VDD_SOC"}
    assert result.total_domains == ("hwmon:ina3221:VDD_IN",)
    assert result.total_energy_j == pytest.approx(8.0 * WINDOW_S, rel=1e-6)
    assert result.total_provenance == "integrated"


def test_a_grace_module_stands_for_its_cpu_and_sysio_and_a_socket_for_its_cores(tree):
    tree.add_grace(0, {"Module": 400.0, "CPU": 150.0, "SysIO": 40.0})
    tree.add_amd_energy([100.0], [[5.0, 6.0]])
    with Meter(["hwmon"], hwmon_root=tree.root, clock=tree.clock, sample_period_s=3600.0) as meter:
        meter.begin_window("w")
        tree.advance(2.0)
        result = meter.end_window("w")
    assert result.total_domains == ("hwmon:amd_energy:socket0", "hwmon:grace:0:module")
    assert result.total_energy_j == pytest.approx((400.0 + 100.0) * 2.0, rel=1e-5)
    assert result.provenance["hwmon:amd_energy:socket0"] == "measured"
    assert result.provenance["hwmon:grace:0:cpu"] == "integrated"
    assert result.total_provenance == "integrated"  # the weakest of the two it adds


def test_a_whole_system_meter_contains_every_other_hwmon_domain(tree):
    tree.add_power_meter(500.0)
    tree.add_amd_energy([200.0], [[10.0]])
    domains = open_session(tree).domains
    assert set(domains["hwmon:power_meter"].contains) == {"hwmon:amd_energy:socket0", "hwmon:amd_energy:core000"}
    assert domains["hwmon:amd_energy:socket0"].contains == ("hwmon:amd_energy:core000",)


def test_a_whole_system_meter_beside_rapl_stands_for_the_packages_it_contains(tree, powercap):
    powercap.add_package(0, dram=True, energy_uj=1_000_000)
    tree.add_power_meter(300.0)
    with Meter(["rapl", "hwmon"], powercap_root=powercap.root, hwmon_root=tree.root, clock=tree.clock,
               sample_period_s=3600.0) as meter:
        meter.begin_window("w")
        tree.advance(2.0)
        powercap.set_energy("intel-rapl:0", 1_000_000 + 200_000_000)  # 200 J of the 600 J the system drew
        result = meter.end_window("w")
    assert set(result.domains["hwmon:power_meter"].contains) == {"cpu:0:package", "cpu:0:dram"}
    assert result.total_domains == ("hwmon:power_meter",)
    assert result.total_energy_j == pytest.approx(600.0, rel=1e-6)
    assert result.energy_j["cpu:0:package"] == pytest.approx(200.0)


def test_two_whole_system_meters_are_separate_supplies_and_both_count(tree):
    tree.add_power_meter(300.0)
    tree.add_power_meter(200.0)
    with Meter(["hwmon"], hwmon_root=tree.root, clock=tree.clock, sample_period_s=3600.0) as meter:
        meter.begin_window("w")
        tree.advance(1.0)
        result = meter.end_window("w")
    assert result.total_domains == ("hwmon:power_meter", "hwmon:power_meter@hwmon1")
    assert result.total_energy_j == pytest.approx(500.0, rel=1e-6)


def test_amd_energy_cores_belong_to_the_socket_whose_block_numbers_them(tree):
    tree.add_amd_energy([100.0, 90.0], [[1.0, 2.0], [3.0, 4.0]])
    domains = open_session(tree).domains
    assert domains["hwmon:amd_energy:socket0"].contains == ("hwmon:amd_energy:core000", "hwmon:amd_energy:core001")
    assert domains["hwmon:amd_energy:socket1"].contains == ("hwmon:amd_energy:core002", "hwmon:amd_energy:core003")


def test_a_counter_denied_to_this_user_is_left_out_with_the_fix_and_the_rest_are_used(tree):
    keys = tree.add_amd_energy([100.0], [[1.0]])
    denied = str(tree.root / keys["Esocket0"]) + "_input"

    def reader(path):
        if path == denied:
            raise PermissionError(13, "Permission denied", path)
        return tree.read(path)

    status = HwmonBackend(hwmon_root=tree.root, reader=reader).probe()
    assert status.available and status.domains == ("hwmon:amd_energy:core000",)
    assert "hwmon:amd_energy:socket0: permission denied" in status.reason and "run as root" in status.reason


def test_a_wrap_of_an_energy_counter_is_counted_once_and_correctly(tree):
    keys = tree.add_amd_energy([300.0], [[10.0]], energy_uj=2**63 - 100_000_000)  # 100 J below the wrap
    session = open_session(tree)
    truth0 = tree.true_energy_j(keys["Esocket0"])
    start = session.read().energy_j["hwmon:amd_energy:socket0"]
    tree.advance(1.0)  # 300 J: the counter wraps past 2^63 to about 200 J
    reading = session.read()
    assert int((tree.root / "hwmon0" / "energy2_input").read_text()) < 300_000_000
    assert reading.failed == {}
    assert reading.energy_j["hwmon:amd_energy:socket0"] - start == pytest.approx(
        tree.true_energy_j(keys["Esocket0"]) - truth0, abs=1e-5)


def test_a_counter_reset_fails_only_the_window_that_spans_it(tree):
    keys = tree.add_amd_energy([300.0], [[10.0]], energy_uj=5_000_000_000)
    session = open_session(tree)
    tree.advance(1.0)
    tree.set_energy(keys["Esocket0"], 0)  # backwards, and far from any plausible wrap
    reading = session.read()
    assert "hwmon:amd_energy:socket0" in reading.failed
    assert "without a plausible wraparound" in reading.failed["hwmon:amd_energy:socket0"]
    assert "hwmon:amd_energy:core000" in reading.energy_j


def test_a_sensor_that_becomes_unreadable_fails_only_its_own_domain(tree):
    rails = tree.add_ina3221({"VDD_IN": 8.0, "VDD_CPU_GPU_CV": 3.0})
    cores = tree.add_amd_energy([100.0], [[5.0]])
    with Meter(["hwmon"], hwmon_root=tree.root, clock=tree.clock, reader=tree.read, sample_period_s=3600.0) as meter:
        meter.begin_window("broken")
        tree.advance(1.0)
        tree.fail(rails["VDD_IN"])
        tree.fail(cores["Ecore000"])
        broken = meter.end_window("broken")
        tree.fail(rails["VDD_IN"], failed=False)
        tree.fail(cores["Ecore000"], failed=False)
        meter.begin_window("healed")
        tree.advance(1.0)
        healed = meter.end_window("healed")
    assert set(broken.failed) == {"hwmon:ina3221:VDD_IN", "hwmon:amd_energy:core000"}
    assert "Input/output error" in broken.failed["hwmon:ina3221:VDD_IN"]
    assert broken.energy_j["hwmon:ina3221:VDD_CPU_GPU_CV"] == pytest.approx(3.0, rel=1e-6)
    assert broken.energy_j["hwmon:amd_energy:socket0"] == pytest.approx(100.0, rel=1e-6)
    # The next window, after the sensor answers again, measures: only the window spanning the fault failed.
    assert healed.failed == {}
    assert healed.energy_j["hwmon:ina3221:VDD_IN"] == pytest.approx(8.0, rel=1e-6)


def test_a_power_sample_above_the_ceiling_fails_that_domain_for_the_read(tree):
    key = tree.add_power_meter(300.0)
    session = open_session(tree)
    tree.set_power(key, 1e6)  # a megawatt: no machine draws it
    reading = session.read()
    assert "outside 0..5000 W" in reading.failed["hwmon:power_meter"]


def test_unknown_sensors_are_listed_with_why_they_are_not_used(tree):
    tree.add_chip("coretemp", {"temp1_input": "45000", "temp1_label": "Package id 0"})
    tree.add_chip("mystery_pmic", {"power1_input": "5000000"})
    rails = tree.add_chip("ina3221")
    tree.add_rail(rails, 1, "VDD_IN", 5.0)
    tree.add_rail(rails, 2, "VDD_FANCY", 1.0)
    tree.add_rail(rails, 3, "NC", 0.0)
    status = HwmonBackend(hwmon_root=tree.root).probe()
    assert status.available and status.domains == ("hwmon:ina3221:VDD_IN",)
    assert "'coretemp'): no energy or power sensor (temp)" in status.reason
    assert "'mystery_pmic'): not a known layout" in status.reason
    assert "'VDD_FANCY': not a known Jetson rail" in status.reason
    assert "'NC': not connected" in status.reason


def test_energymeter_devices_lists_unknown_sensors_with_a_reason(tree):
    tree.add_chip("coretemp", {"temp1_input": "45000"})
    proc = subprocess.run([sys.executable, "-m", "energymeter", "devices", "--json"], capture_output=True, text=True,
                          env={"ENERGYMETER_HWMON_ROOT": str(tree.root), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    hwmon = next(s for s in json.loads(proc.stdout) if s["name"] == "hwmon")
    assert not hwmon["available"]
    assert "coretemp" in hwmon["reason"] and "no energy or power sensor" in hwmon["reason"]


def test_a_tree_that_does_not_exist_is_unavailable_with_the_path(tmp_path):
    status = HwmonBackend(hwmon_root=tmp_path / "absent").probe()
    assert not status.available and str(tmp_path / "absent") in status.reason


def test_the_default_selection_leaves_hwmon_out_beside_rapl_and_takes_it_alone():
    assert default_selection(["rapl", "hwmon", "cpu-model"]) == ["rapl"]
    assert default_selection(["nvml", "hwmon"]) == ["nvml"]
    assert default_selection(["hwmon", "cpu-model", "flops"]) == ["hwmon", "flops"]


def test_a_short_window_warns_that_it_spans_fewer_than_two_power_samples(tree):
    tree.add_power_meter(100.0)
    session = open_session(tree, sample_period_s=0.05)
    assert session.window_warnings(0.06) and "shorter than two power samples" in session.window_warnings(0.06)[0]
    assert session.window_warnings(0.2) == []


def test_the_sampler_integrates_on_its_own_while_a_window_is_open(tree):
    tree.add_power_meter(200.0)
    reads = []

    def counting_reader(path):
        reads.append(time.monotonic())
        return tree.read(path)

    # Real time here: the tree's power is constant, the clock is the real one.
    with Meter(["hwmon"], hwmon_root=tree.root, reader=counting_reader, sample_period_s=0.01) as meter:
        meter.begin_window("w")
        opened = len(reads)
        time.sleep(0.3)
        result = meter.end_window("w")
        during = len(reads) - opened - 1  # less the closing edge's own read
        time.sleep(0.1)
        after = len(reads) - opened - during - 1
    assert during >= 5  # about 30 at 10 ms; a loaded machine polls late, never not at all
    assert after <= 1  # the sampler stops with the last window (one poll may already be due)
    assert result.energy_j["hwmon:power_meter"] == pytest.approx(200.0 * result.duration_s, rel=0.05)


@pytest.mark.parametrize("period", [0, -1.0, float("nan"), float("inf"), True])
def test_a_sampling_period_that_is_no_positive_number_of_seconds_is_refused(period):
    with pytest.raises(ValueError, match="sample_period_s"):
        HwmonBackend(sample_period_s=period)
