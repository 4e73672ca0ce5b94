import inspect
import os

import pytest

from energymeter import Meter
from energymeter.backends import REGISTRY, backend_class
from energymeter.backends.amdsmi import AmdsmiBackend
from energymeter.backends.amdsmi_devices import rocm_uuid, visible_indices
from energymeter.distributed import merge
from energymeter.testing import FakeAmdGpu, FakeAMDSMI, FakeGpu, FakeNVML
from energymeter.testing import fake_amdsmi


def amd_gpus(n, **kwargs):
    return [FakeAmdGpu(uuid=f"amd-uuid-{i}", asic_serial=f"0x{0xa0 + i:x}", **kwargs) for i in range(n)]


def test_fake_amdsmi_has_the_same_interface_as_amdsmi():
    amdsmi = pytest.importorskip("amdsmi")  # only where ROCm is installed
    for name, member in inspect.getmembers(FakeAMDSMI):
        if name.startswith("amdsmi_") and callable(member):
            real = getattr(amdsmi, name)
            assert list(inspect.signature(real).parameters) == list(inspect.signature(member).parameters)[1:], name
    assert fake_amdsmi.AMDSMI_STATUS_NOT_FOUND == amdsmi.amdsmi_wrapper.AMDSMI_STATUS_NOT_FOUND


def test_the_backend_is_registered_and_imports_no_amdsmi():
    assert REGISTRY["amdsmi"] == "energymeter.backends.amdsmi:AmdsmiBackend"
    assert backend_class("amdsmi") is AmdsmiBackend
    status = AmdsmiBackend(amdsmi_module=FakeAMDSMI(driver_present=False)).probe()
    assert not status.available and "no amdgpu driver" in status.reason


def test_energy_accumulator_counts_times_resolution_are_measured_joules(clock):
    gpu = FakeAmdGpu(energy_j=12_345.0, counter_resolution_uj=15.259)
    session = AmdsmiBackend(amdsmi_module=FakeAMDSMI([gpu]), clock=clock).open()
    assert session.provenance == {"gpu:amd:0": "measured"}
    begin = session.read().energy_j["gpu:amd:0"]
    gpu.energy_j += 250.0
    clock.advance(1.0)
    # Whole counts of 15.259 uJ: at most one count (15 uJ) off the truth at each end.
    assert session.read().energy_j["gpu:amd:0"] - begin == pytest.approx(250.0, abs=2 * 15.259e-6)


def test_a_32_bit_accumulator_that_wraps_inside_a_window_is_unwrapped(clock):
    resolution_uj = 15.259
    wrap_j = (1 << 32) * resolution_uj * 1e-6  # ~65.5 kJ
    gpu = FakeAmdGpu(energy_j=wrap_j - 100.0, counter_bits=32, counter_resolution_uj=resolution_uj)
    smi = FakeAMDSMI([gpu])
    session = AmdsmiBackend(amdsmi_module=smi, clock=clock).open()
    begin = session.read().energy_j["gpu:amd:0"]
    before = gpu.accumulator()
    clock.advance(1.0)
    gpu.energy_j += 300.0  # across the wrap
    assert gpu.accumulator() < before  # the raw counter went backwards
    reading = session.read()
    assert reading.failed == {} and reading.energy_j["gpu:amd:0"] - begin == pytest.approx(300.0, abs=1e-4)


def test_counters_that_may_wrap_are_polled_four_times_per_wrap_so_a_long_window_sees_every_wrap(clock):
    resolution_uj = 15.259
    wrap_j = (1 << 32) * resolution_uj * 1e-6
    gpu = FakeAmdGpu(counter_bits=32, counter_resolution_uj=resolution_uj, power_w=600.0)
    smi = FakeAMDSMI([gpu])
    session = AmdsmiBackend(amdsmi_module=smi, clock=clock).open()
    assert session._wrap_poller.period_s == pytest.approx(wrap_j / 3000.0 / 4.0)  # ~5.5 s at the 3000 W ceiling
    begin = session.read().energy_j["gpu:amd:0"]
    for _ in range(60):  # 5 minutes at 600 W: 180 kJ, nearly three wraps of the 32-bit accumulator
        clock.advance(5.0)
        smi.draw(5.0)
        session.poll_counters()  # what the poller does while a window is open
    reading = session.read()
    assert reading.failed == {}
    assert reading.energy_j["gpu:amd:0"] - begin == pytest.approx(600.0 * 300.0, abs=1e-3)


def test_an_accumulator_going_backwards_by_no_plausible_wrap_fails_that_read(clock):
    gpu = FakeAmdGpu(energy_j=5_000.0)
    session = AmdsmiBackend(amdsmi_module=FakeAMDSMI([gpu]), clock=clock).open()
    session.read()
    gpu.energy_j = 1_000.0  # a reset, not a wrap: 2^32 counts would be 65 kJ in a second
    clock.advance(1.0)
    reading = session.read()
    assert "went backwards" in reading.failed["gpu:amd:0"] and "counts" in reading.failed["gpu:amd:0"]
    gpu.energy_j += 10.0
    clock.advance(1.0)
    later = session.read()  # re-based: it measures again
    assert later.failed == {} and "gpu:amd:0" in later.energy_j


@pytest.mark.parametrize("has_current_power, field", [(True, "current_socket_power"),
                                                     (False, "average_socket_power")])
def test_power_sampling_integrates_a_steady_power_within_one_percent(clock, has_current_power, field):
    # The library reports whole watts: 287.4 W is read as 287 W, 0.14% low.
    gpu = FakeAmdGpu(has_counter=False, has_current_power=has_current_power, power_w=287.4)
    smi = FakeAMDSMI([gpu])
    session = AmdsmiBackend(amdsmi_module=smi, clock=clock, sample_period_s=0.05).open()
    assert session.provenance == {"gpu:amd:0": "integrated"} and session.gpus[0].mode == field
    begin, truth_begin = session.read().energy_j["gpu:amd:0"], gpu.energy_j
    for _ in range(100):  # 5 s of 50 ms samples
        clock.advance(0.05)
        smi.draw(0.05)
        session.sample()
    measured = session.read().energy_j["gpu:amd:0"] - begin
    truth = gpu.energy_j - truth_begin
    assert truth == pytest.approx(287.4 * 5.0)
    assert abs(measured - truth) / truth < 0.01
    assert measured != truth  # whole watts: the figure is the library's, not the writer's


def test_sampling_mode_ignores_the_accumulator(clock):
    gpu = FakeAmdGpu(power_w=200.0)
    session = AmdsmiBackend(amdsmi_module=FakeAMDSMI([gpu]), clock=clock, amdsmi_mode="sampling").open()
    assert session.provenance == {"gpu:amd:0": "integrated"}
    begin = session.read().energy_j["gpu:amd:0"]
    gpu.energy_j += 99_000.0
    clock.advance(0.5)
    assert session.read().energy_j["gpu:amd:0"] - begin == pytest.approx(100.0)


def test_a_lost_amd_gpu_fails_only_itself_for_the_session(clock):
    lost, healthy = amd_gpus(2)
    smi = FakeAMDSMI([lost, healthy])
    meter = Meter(["amdsmi"], amdsmi_module=smi, clock=clock)
    meter.begin_window("step")
    lost.lost = True
    healthy.energy_j += 40.0
    calls = smi.calls
    result = meter.end_window("step")
    assert result.failed == {"gpu:amd:0": "amdsmi: Error code:\n\t31 | AMDSMI_STATUS_NOT_FOUND - Device Not found"}
    assert result.energy_j == {"gpu:amd:1": pytest.approx(40.0, abs=1e-4)}
    assert smi.calls - calls <= 3  # not retried: one call for the lost GPU, the healthy one's, its process list
    lost.lost = False
    with meter.window("later") as later:
        pass
    assert "gpu:amd:0" in later.result.failed  # gone for the session
    meter.close()
    assert smi.init_count == 0


def test_a_transient_amdsmi_error_is_retried_and_one_that_persists_fails_one_window(clock):
    flaky, steady = amd_gpus(2)
    meter = Meter(["amdsmi"], amdsmi_module=FakeAMDSMI([flaky, steady]), clock=clock)
    meter.begin_window("retried")
    flaky.errors = [fake_amdsmi.AMDSMI_STATUS_BUSY]
    flaky.energy_j += 5.0
    assert meter.end_window("retried").failed == {}
    meter.begin_window("failed")
    flaky.errors = [fake_amdsmi.AMDSMI_STATUS_RETRY] * 4  # the first try and all three retries
    first = meter.end_window("failed")
    assert "still failing after 3 retries" in first.failed["gpu:amd:0"] and "gpu:amd:1" in first.energy_j
    meter.begin_window("after")
    flaky.energy_j += 7.0
    clock.advance(1.0)
    second = meter.end_window("after")
    assert second.failed == {} and second.energy_j["gpu:amd:0"] == pytest.approx(7.0, abs=1e-4)
    meter.close()


@pytest.mark.parametrize("env, expected", [
    ({}, [0, 1, 2, 3]),
    ({"HIP_VISIBLE_DEVICES": "2,0"}, [2, 0]),
    ({"ROCR_VISIBLE_DEVICES": "1,2,3"}, [1, 2, 3]),
    ({"ROCR_VISIBLE_DEVICES": "1,2,3", "HIP_VISIBLE_DEVICES": "0"}, [1]),  # HIP numbers what ROCr left
    ({"ROCR_VISIBLE_DEVICES": "3,1", "HIP_VISIBLE_DEVICES": "1"}, [1]),
    ({"CUDA_VISIBLE_DEVICES": "3"}, [3]),  # HIP honours it when HIP_VISIBLE_DEVICES is unset
    ({"CUDA_VISIBLE_DEVICES": "3", "HIP_VISIBLE_DEVICES": "1"}, [1]),
    ({"HIP_VISIBLE_DEVICES": ""}, []),
    ({"ROCR_VISIBLE_DEVICES": "GPU-00000000000000a2"}, [2]),
    ({"HIP_VISIBLE_DEVICES": "1,9,0"}, [1]),  # an invalid entry ends the list
])
def test_visible_devices_follow_rocr_then_hip(env, expected):
    uuids = [rocm_uuid(f"0x{0xa0 + i:X}") for i in range(4)]
    assert visible_indices(env, 4, uuids) == expected


def test_hip_visible_devices_environment_is_honoured_and_hidden_gpus_are_never_touched(monkeypatch, clock):
    monkeypatch.setenv("HIP_VISIBLE_DEVICES", "1")
    monkeypatch.delenv("ROCR_VISIBLE_DEVICES", raising=False)
    hidden, used = amd_gpus(2)
    hidden.accessible = False
    backend = AmdsmiBackend(amdsmi_module=FakeAMDSMI([hidden, used]), clock=clock)
    status = backend.probe()
    assert status.available and status.domains == ("gpu:amd:0",)
    assert backend.open().devices == {"gpu:amd:0": "amd-uuid-1"}


def test_rocr_visible_devices_by_uuid_picks_that_gpu(monkeypatch, clock):
    monkeypatch.setenv("ROCR_VISIBLE_DEVICES", "GPU-00000000000000a1")
    monkeypatch.delenv("HIP_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    backend = AmdsmiBackend(amdsmi_module=FakeAMDSMI(amd_gpus(3)), clock=clock)
    assert backend.probe().domains == ("gpu:amd:0",)
    assert backend.open().devices == {"gpu:amd:0": "amd-uuid-1"}


def test_an_inaccessible_visible_amd_gpu_is_left_out_with_its_reason(clock):
    blocked, used = amd_gpus(2)
    blocked.accessible = False
    status = AmdsmiBackend(amdsmi_module=FakeAMDSMI([blocked, used]), amd_visible_devices="0,1").probe()
    assert status.domains == ("gpu:amd:1",)
    assert "gpu:amd:0 (amdsmi index 0) left out" in status.reason and "NO_PERM" in status.reason


def test_amd_and_nvidia_gpus_sit_in_one_meter_without_a_clash(clock):
    amd, nvidia = amd_gpus(1)[0], FakeGpu(uuid="GPU-nv0")
    meter = Meter(["nvml", "amdsmi"], nvml_module=FakeNVML([nvidia]), amdsmi_module=FakeAMDSMI([amd]), clock=clock,
                  process_check=False)
    assert set(meter.domains) == {"gpu:0", "gpu:amd:0"}
    assert {d.device_id for d in meter.domains.values()} == {"GPU-nv0", "amd-uuid-0"}
    smi = meter.opened_backends[1]._smi
    meter.begin_window("both")
    truth_begin_j = amd.energy_j
    nvidia.energy_mj += 3_000
    clock.advance(1.0)
    smi.draw(1.0)  # the writer: 300 W for 1 s
    result = meter.end_window("both")
    truth_j = amd.energy_j - truth_begin_j
    assert truth_j == pytest.approx(300.0)
    assert result.failed == {}
    assert result.energy_j == {"gpu:0": pytest.approx(3.0), "gpu:amd:0": pytest.approx(truth_j, abs=1e-4)}
    assert result.total_energy_j == pytest.approx(3.0 + truth_j, abs=1e-4)
    meter.close()


def test_merge_counts_each_gpu_once_by_its_id_across_ranks_that_see_the_same_gpus(clock):
    amd, nvidia = amd_gpus(1)[0], FakeGpu(uuid="GPU-nv0")
    nvml, smi = FakeNVML([nvidia]), FakeAMDSMI([amd])
    # Two ranks on one host, each with its own meter over the same two GPUs (one numbers them the other way).
    ranks = [Meter(["nvml", "amdsmi"], nvml_module=nvml, amdsmi_module=smi, clock=clock, process_check=False)
             for _ in range(2)]
    for meter in ranks:
        meter.begin_window("step")
    nvidia.energy_mj += 20_000
    amd.energy_j += 30.0
    clock.advance(1.0)
    windows = [("h1", meter.end_window("step")) for meter in ranks]
    total = merge(windows)
    assert total.energy_j == {"h1/gpu:GPU-nv0": pytest.approx(20.0), "h1/gpu:amd-uuid-0": pytest.approx(30.0, abs=1e-4)}
    assert total.total_energy_j == pytest.approx(50.0, abs=1e-4)  # not 100: each GPU once
    for meter in ranks:
        meter.close()


def test_another_process_on_a_measured_amd_gpu_gives_a_warning_naming_how_many(clock):
    gpu = FakeAmdGpu(processes=[os.getpid(), 7001, 7002, 7003])
    meter = Meter(["amdsmi"], amdsmi_module=FakeAMDSMI([gpu]), clock=clock)
    with meter.window("w") as w:
        clock.advance(1.0)
    (warning,) = [x for x in w.result.warnings if "other process" in x]
    assert warning.startswith("gpu:amd:0: 3 other processes (pid 7001, 7002, 7003)")
    gpu.processes = [os.getpid()]
    clock.advance(2.0)  # past the check's period
    with meter.window("alone") as alone:
        clock.advance(1.0)
    assert not [x for x in alone.result.warnings if "other process" in x]
    meter.close()


def test_the_amd_extra_names_amdsmi_and_dev_leaves_it_out():
    import tomllib
    from pathlib import Path

    extras = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    assert extras["amd"] == ["amdsmi>=6"]
    assert not any("amdsmi" in r or "amd]" in r or ",amd" in r for r in extras["dev"])


def test_an_amdsmi_that_cannot_load_its_library_makes_the_backend_unavailable_with_the_reason(monkeypatch):
    from energymeter.backends import amdsmi as amdsmi_backend

    def broken():
        raise OSError("libamd_smi.so: cannot open shared object file")

    monkeypatch.setattr(amdsmi_backend, "_load_amdsmi", broken)
    status = AmdsmiBackend().probe()
    assert not status.available
    assert "libamd_smi.so" in status.reason and "energymeter[amd]" in status.reason
