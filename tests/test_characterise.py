"""Counters characterised where they run: update period, resolution and idle power timed on fake counters that
update like hardware, the published fallback, the short-window warning, a domain failing alone, the sweep."""

import json
import time

import pytest

from energymeter import Meter
from energymeter import backends as registry
from energymeter.backends.nvml import NvmlBackend
from energymeter.characterise import characterise_session
from energymeter.cli import main
from energymeter.counters import (MIN_WINDOW_UPDATES, PUBLISHED_FIGURES, CounterCharacter, min_window_s, published,
                                  register_published, short_window_warnings)
from energymeter.testing import FakeGpu, FakeNVML, FakePowercap


@pytest.fixture
def machine(monkeypatch, tmp_path):
    """Point the registry's default backends at a fake machine: ``machine(powercap=..., nvml=...)``."""
    monkeypatch.setattr(registry, "_default_instances", {})

    def build(powercap=None, nvml=None):
        monkeypatch.setenv("ENERGYMETER_POWERCAP_ROOT", str(powercap.root if powercap else tmp_path / "no-powercap"))
        monkeypatch.setitem(registry._default_instances, "nvml",
                            NvmlBackend(nvml_module=nvml or FakeNVML(driver_present=False)))

    return build


def devices_characterised(capsys, *extra):
    assert main(["devices", "--characterise", "--json", *extra]) == 0
    return {c["domain"]: c for c in json.loads(capsys.readouterr().out)["counters"]}


def window_of(meter, seconds):
    meter.begin_window("w")
    time.sleep(seconds)
    return meter.end_window("w")


def test_a_fake_rapl_counter_updating_every_50_ms_is_timed_within_20_percent_and_a_10_ms_window_is_warned(
        tmp_path, machine, capsys):
    tree = FakePowercap(tmp_path / "powercap", update_period_s=0.05)
    zone = tree.add_package(0)
    tree.draw(zone, 30.0)
    machine(powercap=tree)
    with tree.running():
        found = devices_characterised(capsys)["cpu:0:package"]
        with Meter(["rapl"], powercap_root=tree.root, characterise=True) as meter:
            result = window_of(meter, 0.01)
    assert found["update_period_provenance"] == "measured" and found["error"] is None
    assert found["update_period_s"] == pytest.approx(0.05, rel=0.2)
    assert found["min_window_s"] == pytest.approx(MIN_WINDOW_UPDATES * found["update_period_s"])
    period_s = meter.characterisation["cpu:0:package"].update_period_s
    [warning] = [w for w in result.warnings if w.startswith("cpu:0:package:")]
    assert f"window of {result.duration_s:.4f} s" in warning
    assert f"measured update period of {period_s:.4g} s" in warning


def test_fake_nvml_updating_every_100_ms_is_timed_within_20_percent_and_a_20_ms_window_is_warned(machine, capsys):
    fake = FakeNVML([FakeGpu(update_period_s=0.1, power_mw=70_000)])
    machine(nvml=fake)
    found = devices_characterised(capsys)["gpu:0"]
    assert found["update_period_provenance"] == "measured" and found["backend"] == "nvml"
    assert found["update_period_s"] == pytest.approx(0.1, rel=0.2)
    assert found["idle_power_w"] == pytest.approx(70.0, rel=0.1)
    with Meter(["nvml"], nvml_module=fake, characterise=True) as meter:
        result = window_of(meter, 0.02)
    period_s = meter.characterisation["gpu:0"].update_period_s
    assert [w for w in result.warnings if "update period" in w] == [
        f"gpu:0: window of {result.duration_s:.4f} s is shorter than {MIN_WINDOW_UPDATES} x the counter's measured "
        f"update period of {period_s:.4g} s ({MIN_WINDOW_UPDATES * period_s:.3g} s): its joules may be off by a "
        "whole update; measure a longer window"]  # NVML's own warning from the published 0.1 s gives way to it


def test_fake_nvml_updating_every_20_ms_is_timed_within_20_percent_and_a_10_ms_window_is_warned(machine, capsys):
    fake = FakeNVML([FakeGpu(update_period_s=0.02, power_mw=50_000)])
    machine(nvml=fake)
    found = devices_characterised(capsys)["gpu:0"]
    assert found["update_period_provenance"] == "measured" and found["error"] is None
    assert found["update_period_s"] == pytest.approx(0.02, rel=0.2)
    with Meter(["nvml"], nvml_module=fake, characterise=True) as meter:
        result = window_of(meter, 0.01)
    period_s = meter.characterisation["gpu:0"].update_period_s
    assert period_s == pytest.approx(0.02, rel=0.2)
    [warning] = [w for w in result.warnings if "update period" in w]
    assert warning.startswith(f"gpu:0: window of {result.duration_s:.4f} s is shorter than {MIN_WINDOW_UPDATES} x "
                              f"the counter's measured update period of {period_s:.4g} s")


def test_the_resolution_is_the_smallest_step_and_the_idle_power_what_the_zone_drew(tmp_path):
    tree = FakePowercap(tmp_path / "powercap", update_period_s=0.02, resolution_uj=1000)
    zone = tree.add_package(0, dram=True)
    tree.draw(zone, 20.0)
    tree.draw(f"{zone}:0", 0.075)  # 1500 uJ an update: the counter steps 1000 and 2000 uJ in turn
    with tree.running(), Meter(["rapl"], powercap_root=tree.root, characterise=True) as meter:
        pass
    dram, package = meter.characterisation["cpu:0:dram"], meter.characterisation["cpu:0:package"]
    assert dram.resolution_j == pytest.approx(0.001) and dram.resolution_provenance == "measured"
    assert dram.update_period_s == pytest.approx(0.02, rel=0.2)
    assert package.resolution_j == pytest.approx(0.4)  # a whole update's 20 W x 20 ms: an upper bound of its unit
    # Over five updates (0.1 s), a few ms of the fake writer's lateness under load moves it by several percent.
    assert package.idle_power_w == pytest.approx(20.0, rel=0.15)


def test_a_counter_that_never_changes_keeps_its_published_figures_labelled_with_why(tmp_path, machine, capsys):
    tree = FakePowercap(tmp_path / "powercap")
    tree.add_package(0)
    machine(powercap=tree)
    found = devices_characterised(capsys, "--characterise-s", "0.05")["cpu:0:package"]
    rapl = PUBLISHED_FIGURES["rapl"]
    assert (found["update_period_s"], found["update_period_provenance"]) == (rapl.update_period_s, "published")
    assert (found["resolution_j"], found["resolution_provenance"]) == (rapl.resolution_j, "published")
    assert found["idle_power_w"] is None and found["changes"] == 0
    assert "changed 0 time(s)" in found["error"] and "SDM" in found["source"]


def test_the_published_figures_warn_a_window_and_say_they_are_published():
    figures = published("gpu:0", "nvml")
    assert (figures.update_period_s, figures.update_period_provenance, figures.error) == (0.1, "published", None)
    [warning] = short_window_warnings([figures], 0.5)
    assert "published update period of 0.1 s" in warning and "window of 0.5000 s" in warning
    assert short_window_warnings([figures], 1.0) == ()  # exactly 10 updates: long enough
    assert published("x:0", "no-such-backend").update_period_s is None


def test_the_minimum_window_is_ten_of_the_slowest_counters_updates_and_never_below_the_floor():
    fast = CounterCharacter("cpu:0:package", "rapl", 0.001, "measured", 1e-6, "measured")
    slow = CounterCharacter("gpu:0", "nvml", 0.03, "measured", 0.001, "measured")
    assert min_window_s([fast, slow], 0.1) == pytest.approx(0.3)
    assert min_window_s([fast], 0.1) == 0.1
    assert min_window_s([], 0.2) == 0.2


class LosesItsSecondGpu(FakeNVML):
    """FakeNVML whose second GPU falls off the bus at its 20th energy reading (while it is characterised)."""

    readings = 0

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        if handle == 1:
            self.readings += 1
            self.gpus[1].lost = self.readings >= 20
        return super().nvmlDeviceGetTotalEnergyConsumption(handle)


def test_a_gpu_lost_while_characterised_fails_alone_with_its_reason():
    fake = LosesItsSecondGpu([FakeGpu(uuid=f"GPU-{i}", update_period_s=0.02) for i in range(2)])
    with Meter(["nvml"], nvml_module=fake, characterise=True) as meter:
        result = window_of(meter, 0.0)
    gone, measured = meter.characterisation["gpu:1"], meter.characterisation["gpu:0"]
    assert fake.readings >= 20  # it was lost while polled, not before
    assert "GPU is lost" in gone.error and gone.update_period_provenance == "published"
    assert measured.error is None and measured.update_period_s == pytest.approx(0.02, rel=0.2)
    assert any(w.startswith("gpu:1:") and "published update period of 0.1 s" in w for w in result.warnings)


def test_a_session_whose_read_raises_fails_each_of_its_counters_with_the_reason(tmp_path):
    tree = FakePowercap(tmp_path / "powercap")
    tree.add_package(0, dram=True)
    session = registry.create("rapl", {"powercap_root": tree.root}).open()
    declarations = dict(session.domains)
    session.close()

    class Broken:
        def read(self):
            raise OSError("the bus went away")

    found = characterise_session(Broken(), declarations, "rapl", max_duration_s=0.01)
    assert {d: c.error for d, c in found.items()} == dict.fromkeys(
        ("cpu:0:package", "cpu:0:dram"), "failed while characterised: reading the session failed: OSError: the bus "
        "went away")


def test_not_polling_at_all_gives_the_published_figures_without_an_error(tmp_path):
    tree = FakePowercap(tmp_path / "powercap")
    tree.add_package(0)
    session = registry.create("rapl", {"powercap_root": tree.root}).open()
    try:
        found = characterise_session(session, session.domains, "rapl", max_duration_s=0)
    finally:
        session.close()
    assert found["cpu:0:package"] == published("cpu:0:package", "rapl")


def test_a_characterisation_reads_back_from_its_json():
    figures = CounterCharacter("gpu:0", "nvml", 0.0213, "measured", 0.002, "measured", 71.5, 6, 0.21, 0.0005)
    assert CounterCharacter.from_dict(json.loads(json.dumps(figures.to_dict()))) == figures
    with pytest.raises(ValueError, match="provenance"):
        CounterCharacter("gpu:0", "nvml", 0.1, "guessed", None, "")


def test_published_figures_for_a_backend_are_registered_once():
    with pytest.raises(ValueError, match="exist already"):
        register_published("rapl", PUBLISHED_FIGURES["nvml"])


def test_the_fakes_hold_their_counters_between_updates(tmp_path):
    fake = FakeNVML([FakeGpu(update_period_s=0.05, power_mw=100_000, resolution_mj=7)], clock=lambda: now[0])
    now = [0.0]
    fake.nvmlInit()
    assert fake.nvmlDeviceGetTotalEnergyConsumption(0) == 0
    now[0] = 0.049
    assert fake.nvmlDeviceGetTotalEnergyConsumption(0) == 0  # held until the update
    now[0] = 0.1
    assert fake.nvmlDeviceGetTotalEnergyConsumption(0) == 9996  # 10 J in steps of 7 mJ
    tree = FakePowercap(tmp_path / "powercap", update_period_s=0.05)
    zone = tree.add_package(0)
    tree.set_energy(zone, 5000)
    assert tree.energy(zone) == 0  # shown at the next update, not at once
    start_s = time.monotonic()
    with tree.running():
        while tree.energy(zone) == 0 and time.monotonic() < start_s + 5.0:
            time.sleep(0.002)
        shown_s = time.monotonic()
    assert tree.energy(zone) == 5000
    assert shown_s - start_s >= 0.05  # not before the first update, 50 ms after the writer started


class InstantExecutor:
    """Runs nothing: yields a record per pending run at once, and keeps the settings the sweep handed it."""

    def run(self, config, pending, reference_reps):
        from energymeter import Measurement
        from energymeter.validation.records.record import RunRecord, WindowRecord

        self.config = config
        for index, spec in pending:
            window = WindowRecord(Measurement("inference", config.min_window_s, {"cpu:0:package": 1.0},
                                              {"cpu:0:package": "measured"}))
            yield RunRecord(spec.model, spec.dataset, spec.lam, spec.seed, 0.5, 1.0, window,
                            spec.activation_energy_kind, run_index=index)


def test_a_sweep_characterises_its_counters_at_each_start_records_them_and_takes_its_minimum_window_from_them(
        tmp_path, machine):
    pytest.importorskip("torch")
    from energymeter.validation.records import store
    from energymeter.validation.records.manifest import read_manifest
    from energymeter.validation.run.config import SweepConfig
    from energymeter.validation.run.sweep import run_sweep

    tree = FakePowercap(tmp_path / "powercap", update_period_s=0.012)
    tree.draw(tree.add_package(0), 10.0)
    machine(powercap=tree)
    config = SweepConfig(lambdas=(0.0, 1e-2), seeds=2, min_window_s=0.05, reference_s=0.0)
    out, executor = tmp_path / "out", InstantExecutor()

    def stop_after_two(record):
        if record.run_index == 1:
            raise KeyboardInterrupt

    with tree.running():
        run_sweep(config, out, quiet=True, executor=executor, on_record=stop_after_two)
        run_sweep(config, out, resume=True, quiet=True, executor=executor)
    first, resumed = read_manifest(out).characterisations
    assert (first.after_runs, resumed.after_runs) == (0, 2)
    [package] = first.counters
    assert package.domain == "cpu:0:package" and package.update_period_provenance == "measured"
    assert package.update_period_s == pytest.approx(0.012, rel=0.2)
    assert first.asked_min_window_s == 0.05
    assert first.min_window_s == pytest.approx(MIN_WINDOW_UPDATES * package.update_period_s)  # not the sweep's 0.05 s
    assert executor.config.min_window_s == resumed.min_window_s  # what the runs were told to measure at least
    records, _ = store.read_records(out)
    assert [r.characterisation for r in records] == [first, first, resumed, resumed]
    assert read_manifest(out).fingerprint == config.fingerprint()  # still the sweep that was asked for


def test_manifests_and_records_written_before_characterisation_still_read(tmp_path):
    from energymeter.validation.records.manifest import SweepManifest

    old = SweepManifest("abc", {"min_window_s": 1.0}).to_dict()
    del old["characterisations"]
    assert SweepManifest.from_dict(old).characterisations == ()
