import threading

import pytest

from energymeter import BackendUnavailable, Meter, UnknownBackend, measure
from energymeter.testing import FakeGpu, FakeNVML


@pytest.fixture
def rig(powercap, clock):
    """A meter over a fake two-zone powercap tree and a fake GPU with an energy counter."""
    powercap.add_package(0, dram=True)
    gpu = FakeGpu()
    meter = Meter(["rapl", "nvml"], powercap_root=powercap.root, nvml_module=FakeNVML([gpu]), clock=clock)
    yield meter, powercap, gpu, clock
    meter.close()


def spend(powercap, gpu, package_j=0.0, gpu_j=0.0):
    powercap.set_energy("intel-rapl:0", powercap.energy("intel-rapl:0") + int(package_j * 1e6))
    gpu.energy_mj += int(gpu_j * 1000)


def test_window_reports_each_domain_with_its_provenance(rig):
    meter, powercap, gpu, _ = rig
    meter.begin_window("step")
    spend(powercap, gpu, package_j=3.0, gpu_j=7.0)
    m = meter.end_window("step")
    assert m.energy_j == {"cpu:0:package": pytest.approx(3.0), "cpu:0:dram": 0.0, "gpu:0": pytest.approx(7.0)}
    assert m.provenance == {"cpu:0:package": "measured", "cpu:0:dram": "measured", "gpu:0": "measured"}
    assert m.total_energy_j == pytest.approx(10.0)
    assert m.duration_s >= 0.0


def test_nested_windows_each_see_their_own_span(rig):
    meter, powercap, gpu, _ = rig
    meter.begin_window("epoch")
    spend(powercap, gpu, package_j=1.0)
    meter.begin_window("step")
    spend(powercap, gpu, package_j=2.0)
    inner = meter.end_window("step")
    spend(powercap, gpu, package_j=4.0)
    outer = meter.end_window("epoch")
    assert inner.energy_j["cpu:0:package"] == pytest.approx(2.0)
    assert outer.energy_j["cpu:0:package"] == pytest.approx(7.0)


def test_overlapping_windows_close_in_any_order(rig):
    meter, powercap, gpu, _ = rig
    meter.begin_window("a")
    spend(powercap, gpu, gpu_j=1.0)
    meter.begin_window("b")
    spend(powercap, gpu, gpu_j=2.0)
    a = meter.end_window("a")
    spend(powercap, gpu, gpu_j=4.0)
    b = meter.end_window("b")
    assert a.energy_j["gpu:0"] == pytest.approx(3.0)
    assert b.energy_j["gpu:0"] == pytest.approx(6.0)


def test_windows_from_many_threads_do_not_interfere(rig):
    meter, powercap, gpu, _ = rig
    barrier = threading.Barrier(8)
    results = {}

    def worker(i):
        barrier.wait()
        meter.begin_window(f"w{i}")
        barrier.wait()  # every window is open before any closes
        results[i] = meter.end_window(f"w{i}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == list(range(8))
    assert all(r.name == f"w{i}" and not r.failed for i, r in results.items())


def test_duplicate_and_unknown_window_names_are_errors(rig):
    meter = rig[0]
    meter.begin_window("x")
    with pytest.raises(ValueError, match="already open"):
        meter.begin_window("x")
    with pytest.raises(KeyError):
        meter.end_window("nope")


def test_exception_inside_measure_closes_the_window_and_propagates(powercap, clock):
    powercap.add_package(0)
    m = measure(["rapl"], powercap_root=powercap.root, clock=clock)
    with pytest.raises(RuntimeError, match="boom"):
        with m:
            powercap.set_energy("intel-rapl:0", 2_000_000)
            raise RuntimeError("boom")
    assert m.result.energy_j["cpu:0:package"] == pytest.approx(2.0)
    assert not m.meter._windows
    with m:  # the meter is still usable
        pass
    assert m.result.energy_j["cpu:0:package"] == 0.0


def test_meter_window_context_closes_on_exception(rig):
    meter, powercap, gpu, _ = rig
    with pytest.raises(ZeroDivisionError):
        with meter.window("w") as w:
            spend(powercap, gpu, gpu_j=1.0)
            1 / 0
    assert w.result.energy_j["gpu:0"] == pytest.approx(1.0)


def test_measure_as_decorator_records_every_call(powercap, clock):
    powercap.add_package(0)
    m = measure(["rapl"], powercap_root=powercap.root, clock=clock, keep=True, name="work")

    @m
    def work(joules):
        powercap.set_energy("intel-rapl:0", powercap.energy("intel-rapl:0") + joules * 1_000_000)
        return joules

    assert work(1) == 1 and work(5) == 5
    assert [r.energy_j["cpu:0:package"] for r in m.results] == [pytest.approx(1.0), pytest.approx(5.0)]
    assert m.result.name == "work"


def test_unknown_backend_and_unknown_option_are_clear_errors():
    with pytest.raises(UnknownBackend, match="known backends: rapl, nvml, amdsmi, hwmon, cpu-model, flops, loihi"):
        Meter(["rapll"])
    with pytest.raises(TypeError, match="unknown meter option"):
        Meter(["flops"], powercap_rooot="/x")
    with pytest.raises(TypeError, match="unknown meter option"):
        Meter(["flops"], model=object())  # a module is named per window, not per meter


def test_naming_an_unavailable_backend_says_why(tmp_path):
    with pytest.raises(BackendUnavailable, match="no powercap tree"):
        Meter(["rapl"], powercap_root=tmp_path / "none")


def test_default_meter_leaves_out_the_cpu_model_where_rapl_measures(powercap):
    powercap.add_package(0)
    meter = Meter(powercap_root=powercap.root)
    names = [b.name for b in meter.opened_backends]
    assert "rapl" in names and "cpu-model" not in names
    meter.close()


def test_default_meter_uses_the_cpu_model_where_no_counter_exists(tmp_path):
    meter = Meter(powercap_root=tmp_path / "none")
    assert "cpu-model" in [b.name for b in meter.opened_backends]
    meter.close()


def test_cpu_model_energy_is_cpu_seconds_times_power_per_thread():
    cpu = iter([10.0, 10.0, 12.5])
    meter = Meter(["cpu-model"], cpu_model_string="AMD EPYC 7763 64-Core Processor", cpu_time=lambda: next(cpu))
    meter.begin_window("w")
    m = meter.end_window("w")
    assert m.provenance == {"cpu:model": "modeled"}
    assert m.energy_j["cpu:model"] == pytest.approx(2.5 * 280.0 / 128)


def test_a_backend_that_raises_fails_its_domains_and_the_others_survive(rig):
    meter, powercap, gpu, _ = rig

    def broken():
        raise RuntimeError("driver crashed")

    meter._energy[1].read = broken  # the NVML session
    meter.begin_window("w")
    spend(powercap, gpu, package_j=1.0)
    m = meter.end_window("w")
    assert m.failed == {"gpu:0": "RuntimeError: driver crashed"}
    assert m.energy_j["cpu:0:package"] == pytest.approx(1.0)


def test_closed_meter_refuses_new_windows(rig):
    meter = rig[0]
    meter.close()
    with pytest.raises(RuntimeError, match="closed"):
        meter.begin_window("late")


def test_measure_checks_names_now_but_opens_hardware_on_first_use(powercap, clock):
    with pytest.raises(UnknownBackend):
        measure(["rapll"])
    with pytest.raises(TypeError, match="unknown meter option"):
        measure(["rapl"], powercap_rooot="/x")
    powercap.add_package(0)
    m = measure(["rapl"], powercap_root=powercap.root, clock=clock)
    assert m._meter is None
    with m:
        pass
    assert m._meter is not None and m.result.provenance == {"cpu:0:package": "measured"}
