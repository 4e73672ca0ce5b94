import inspect

import pytest

from energymeter import BackendUnavailable, Meter
from energymeter.backends.nvml import NvmlBackend, parse_visible_devices
from energymeter.testing import FakeGpu, FakeNVML
from energymeter.testing import fake_nvml


def test_fake_nvml_has_the_same_interface_as_nvidia_ml_py():
    pynvml = pytest.importorskip("pynvml")
    for name, member in inspect.getmembers(FakeNVML):
        if name.startswith("nvml"):
            real = getattr(pynvml, name)
            assert list(inspect.signature(real).parameters) == list(inspect.signature(member).parameters)[1:], name
        elif name.startswith("NVML_"):
            assert getattr(pynvml, name) == member, name
    assert fake_nvml.NVML_FI_DEV_POWER_INSTANT == pynvml.NVML_FI_DEV_POWER_INSTANT
    assert str(fake_nvml.NVMLError(15)) == str(pynvml.NVMLError(15))
    assert isinstance(fake_nvml.NVMLError(3), fake_nvml.NVMLError_NotSupported)


def test_gpu_with_energy_counter_is_measured_in_joules(clock):
    gpu = FakeGpu(energy_mj=1_000_000)
    session = NvmlBackend(nvml_module=FakeNVML([gpu]), clock=clock).open()
    assert session.provenance == {"gpu:0": "measured"}
    begin = session.read().energy_j["gpu:0"]
    gpu.energy_mj += 2500
    assert session.read().energy_j["gpu:0"] - begin == pytest.approx(2.5)


def test_sampling_only_gpu_integrates_instant_power(clock):
    gpu = FakeGpu(has_counter=False, power_mw=100_000)
    session = NvmlBackend(nvml_module=FakeNVML([gpu]), clock=clock).open()
    assert session.provenance == {"gpu:0": "integrated"}
    assert session.gpus[0].mode == "instant"
    begin = session.read().energy_j["gpu:0"]
    clock.advance(1.0)
    gpu.power_mw = 200_000
    session.sample()  # trapezoid: (100 + 200) / 2 W x 1 s = 150 J
    clock.advance(1.0)
    end = session.read().energy_j["gpu:0"]  # + (200 + 200) / 2 x 1 = 200 J
    assert end - begin == pytest.approx(350.0)


def test_sampling_falls_back_to_power_usage_without_the_instant_field(clock):
    gpu = FakeGpu(has_counter=False, has_instant_power=False, power_mw=50_000)
    session = NvmlBackend(nvml_module=FakeNVML([gpu]), clock=clock).open()
    assert session.gpus[0].mode == "average"
    begin = session.read().energy_j["gpu:0"]
    clock.advance(2.0)
    assert session.read().energy_j["gpu:0"] - begin == pytest.approx(100.0)


def test_gpu_lost_mid_window_fails_that_domain_and_the_rest_survive(clock):
    lost, healthy = FakeGpu(uuid="GPU-a"), FakeGpu(uuid="GPU-b")
    nvml = FakeNVML([lost, healthy])
    meter = Meter(["nvml"], nvml_module=nvml, clock=clock)
    meter.begin_window("step")
    lost.lost = True
    healthy.energy_mj += 4000
    result = meter.end_window("step")
    assert result.failed == {"gpu:0": "NVML: GPU is lost"}
    assert result.energy_j == {"gpu:1": pytest.approx(4.0)}
    meter.close()


def test_no_driver_makes_the_backend_unavailable_with_a_reason():
    status = NvmlBackend(nvml_module=FakeNVML(driver_present=False)).probe()
    assert not status.available and "no NVIDIA driver" in status.reason


def test_cuda_visible_devices_maps_cuda_numbers_to_nvml_indices(clock):
    gpus = [FakeGpu(uuid=f"GPU-{i}aaa") for i in range(4)]
    backend = NvmlBackend(nvml_module=FakeNVML(gpus), visible_devices="2,0")
    status = backend.probe()
    assert status.domains == ("gpu:0", "gpu:1")
    session = backend.open()
    gpus[2].energy_mj += 1000
    gpus[0].energy_mj += 3000
    reading = session.read()
    assert reading.energy_j == {"gpu:0": pytest.approx(1.0), "gpu:1": pytest.approx(3.0)}


def test_cuda_visible_devices_environment_is_honoured(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    backend = NvmlBackend(nvml_module=FakeNVML([FakeGpu(name="A"), FakeGpu(name="B", uuid="GPU-b")]))
    assert backend.probe().domains == ("gpu:0",)
    assert "B" in backend.probe().reason


@pytest.mark.parametrize("value, expected", [
    (None, [0, 1, 2]), ("", []), ("1,2", [1, 2]), ("0,7,1", [0]), ("2,-1,0", [2]),
    ("GPU-bb", [1]), ("1,1", [1]), ("abc", []),
    ("\u00b2", []), ("\u0661", []), ("0,\u0661", [0]), ("1,\u00b2,0", [1]), ("\uff11", []),
])
def test_parse_visible_devices_follows_cuda_rules(value, expected):
    assert parse_visible_devices(value, 3, ["GPU-aa01", "GPU-bb02", "GPU-cc03"]) == expected


def test_window_shorter_than_the_counter_update_period_warns(clock):
    session = NvmlBackend(nvml_module=FakeNVML([FakeGpu()]), clock=clock).open()
    assert "shorter than the energy counter's update period" in session.window_warnings(0.01)[0]
    assert session.window_warnings(1.0) == []


def test_sampler_runs_only_while_windows_are_open_and_nvml_is_shut_down_on_close():
    nvml = FakeNVML([FakeGpu(has_counter=False)])
    session = NvmlBackend(nvml_module=nvml, sample_period_s=0.001).open()
    session.activate()
    assert session._sampler.running
    session.deactivate()
    assert not session._sampler.running
    session.close()
    assert nvml.init_count == 0


def test_sampling_mode_integrates_power_even_where_the_counter_exists(clock):
    gpu = FakeGpu(power_mw=200_000)
    session = NvmlBackend(nvml_module=FakeNVML([gpu]), clock=clock, nvml_mode="sampling").open()
    assert session.provenance == {"gpu:0": "integrated"}
    begin = session.read().energy_j["gpu:0"]
    clock.advance(0.5)
    gpu.energy_mj += 999_000  # the counter is ignored in this mode
    assert session.read().energy_j["gpu:0"] - begin == pytest.approx(100.0)


# -- Plausibility and faults: degrade one GPU, never lie (issue 13) ----------------------------------

def test_an_energy_counter_going_backwards_fails_that_read_instead_of_negative_joules(clock):
    gpu = FakeGpu(energy_mj=5_000_000)
    session = NvmlBackend(nvml_module=FakeNVML([gpu]), clock=clock).open()
    begin = session.read()
    gpu.energy_mj = 1_000  # was reported as -4,999 J
    clock.advance(1.0)
    reading = session.read()
    assert "gpu:0" not in reading.energy_j
    assert "went backwards (5000000 -> 1000 mJ)" in reading.failed["gpu:0"]
    assert reading.epochs["gpu:0"] == begin.epochs.get("gpu:0", 0) + 1
    gpu.energy_mj += 2_000
    clock.advance(1.0)
    later = session.read()  # re-based at the faulty read: the counter measures again
    assert later.failed == {} and later.energy_j["gpu:0"] - begin.energy_j["gpu:0"] == pytest.approx(2.0)


def test_an_energy_counter_step_above_the_gpu_ceiling_fails_that_read(clock):
    gpu = FakeGpu()
    session = NvmlBackend(nvml_module=FakeNVML([gpu]), clock=clock).open()
    session.read()
    gpu.energy_mj += 10_000_000  # 10 kJ in a millisecond
    clock.advance(0.001)
    reading = session.read()
    assert "jumped forward by 10000.0 J" in reading.failed["gpu:0"] and "3000 W ceiling" in reading.failed["gpu:0"]


def test_the_first_counter_read_after_a_long_idle_gap_is_judged_against_the_gap(clock):
    gpu = FakeGpu()
    session = NvmlBackend(nvml_module=FakeNVML([gpu]), clock=clock).open()
    begin = session.read()
    clock.advance(3600.0)
    gpu.energy_mj += 2_520_000_000  # 700 W for an hour
    reading = session.read()
    assert reading.failed == {} and reading.energy_j["gpu:0"] - begin.energy_j["gpu:0"] == pytest.approx(2_520_000.0)


def test_one_transient_nvml_error_is_retried_and_no_read_fails(clock):
    gpu = FakeGpu()
    session = NvmlBackend(nvml_module=FakeNVML([gpu]), clock=clock).open()
    begin = session.read()
    gpu.errors = [fake_nvml.NVML_ERROR_TIMEOUT, fake_nvml.NVML_ERROR_UNKNOWN]
    gpu.energy_mj += 3_000
    reading = session.read()
    assert gpu.errors == []  # both were raised, and retried past
    assert reading.failed == {} and reading.epochs == begin.epochs
    assert reading.energy_j["gpu:0"] - begin.energy_j["gpu:0"] == pytest.approx(3.0)


def test_an_error_that_outlasts_the_retries_fails_one_window_and_later_windows_measure(clock):
    flaky, steady = FakeGpu(uuid="GPU-a"), FakeGpu(uuid="GPU-b")
    meter = Meter(["nvml"], nvml_module=FakeNVML([flaky, steady]), clock=clock)
    meter.begin_window("run 1")
    flaky.errors = [fake_nvml.NVML_ERROR_UNKNOWN] * 4  # the first try and all three retries
    flaky.energy_mj += 1_000
    steady.energy_mj += 1_000
    first = meter.end_window("run 1")
    assert first.failed == {"gpu:0": "NVML: Unknown Error (still failing after 3 retries)"}
    assert first.energy_j == {"gpu:1": pytest.approx(1.0)}
    meter.begin_window("run 2")  # the sweep goes on with the same meter
    flaky.energy_mj += 5_000
    clock.advance(1.0)
    second = meter.end_window("run 2")
    assert second.failed == {} and second.energy_j["gpu:0"] == pytest.approx(5.0)
    meter.close()


def test_a_window_spanning_a_recovered_fault_fails_that_gpu_only(clock):
    flaky, steady = FakeGpu(uuid="GPU-a"), FakeGpu(uuid="GPU-b")
    nvml = FakeNVML([flaky, steady])
    meter = Meter(["nvml"], nvml_module=nvml, clock=clock)
    meter.begin_window("outer")
    flaky.errors = [fake_nvml.NVML_ERROR_UNKNOWN] * 4
    with meter.window("inner") as inner:
        pass
    steady.energy_mj += 2_000
    outer = meter.end_window("outer")
    assert "gpu:0" in inner.result.failed
    assert "recovered" in outer.failed["gpu:0"] and outer.energy_j == {"gpu:1": pytest.approx(2.0)}
    meter.close()


def test_gpu_is_lost_is_not_retried_and_stays_failed(clock):
    gpu = FakeGpu()
    nvml = FakeNVML([gpu])
    session = NvmlBackend(nvml_module=nvml, clock=clock).open()
    gpu.lost = True
    calls = nvml.calls
    assert session.read().failed == {"gpu:0": "NVML: GPU is lost"}
    assert nvml.calls == calls + 1
    gpu.lost = False
    assert session.read().failed == {"gpu:0": "NVML: GPU is lost"}


def test_a_failed_power_sample_is_a_gap_that_fails_spanning_windows_and_restarts_the_trapezoid(clock):
    gpu = FakeGpu(has_counter=False, power_mw=100_000)
    session = NvmlBackend(nvml_module=FakeNVML([gpu]), clock=clock).open()
    begin = session.read()
    clock.advance(1.0)
    gpu.errors = [fake_nvml.NVML_ERROR_UNKNOWN] * 4
    session.sample()  # the poller's sample fails: a gap
    clock.advance(1.0)
    after_gap = session.read()  # the first sample after the gap starts a new trapezoid
    assert after_gap.failed == {}
    assert after_gap.epochs["gpu:0"] == begin.epochs.get("gpu:0", 0) + 1  # windows spanning the gap fail
    assert after_gap.energy_j["gpu:0"] == begin.energy_j["gpu:0"]  # nothing is integrated across the gap
    clock.advance(1.0)
    end = session.read()
    assert end.energy_j["gpu:0"] - after_gap.energy_j["gpu:0"] == pytest.approx(100.0)
    assert end.epochs == after_gap.epochs


def test_a_power_sample_above_the_ceiling_is_a_gap_with_the_reason(clock):
    gpu = FakeGpu(has_counter=False, power_mw=100_000)
    session = NvmlBackend(nvml_module=FakeNVML([gpu]), clock=clock).open()
    gpu.power_mw = 50_000_000  # 50 kW
    clock.advance(1.0)
    reading = session.read()
    assert "50000 W is outside 0..3000 W" in reading.failed["gpu:0"]


def test_a_gpu_hidden_by_cuda_visible_devices_is_never_touched(clock):
    hidden, used = FakeGpu(uuid="GPU-a", accessible=False), FakeGpu(uuid="GPU-b")
    backend = NvmlBackend(nvml_module=FakeNVML([hidden, used]), clock=clock, visible_devices="1")
    status = backend.probe()
    assert status.available and status.domains == ("gpu:0",)
    assert backend.open().devices == {"gpu:0": "GPU-b"}


def test_an_inaccessible_visible_gpu_is_left_out_with_its_reason_and_the_others_work(clock):
    blocked, used = FakeGpu(uuid="GPU-a", accessible=False), FakeGpu(uuid="GPU-b")
    meter = Meter(["nvml"], nvml_module=FakeNVML([blocked, used]), clock=clock)
    status = meter.opened_backends[0].probe()
    assert status.domains == ("gpu:1",)
    assert "gpu:0 (NVML index 0) left out: Insufficient Permissions" in status.reason
    meter.begin_window("w")
    used.energy_mj += 4_000
    assert meter.end_window("w").energy_j == {"gpu:1": pytest.approx(4.0)}
    meter.close()


def test_uuid_entries_skip_a_gpu_whose_uuid_cannot_be_read(clock):
    blocked, used = FakeGpu(uuid="GPU-a", accessible=False), FakeGpu(uuid="GPU-b")
    status = NvmlBackend(nvml_module=FakeNVML([blocked, used]), visible_devices="GPU-b").probe()
    assert status.domains == ("gpu:0",) and "NVML index 0: UUID unreadable" in status.reason


def test_a_gpu_lost_between_probe_and_open_is_a_failed_domain_not_a_raw_nvml_error(clock):
    lost, healthy = FakeGpu(uuid="GPU-a"), FakeGpu(uuid="GPU-b")
    backend = NvmlBackend(nvml_module=FakeNVML([lost, healthy]), clock=clock)
    assert backend.probe().domains == ("gpu:0", "gpu:1")
    lost.lost = True
    session = backend.open()
    reading = session.read()
    assert "GPU is lost" in reading.failed["gpu:0"] and "could not be opened" in reading.failed["gpu:0"]
    assert "gpu:1" in reading.energy_j


def test_nvml_failing_to_start_at_open_is_backend_unavailable(clock):
    nvml = FakeNVML([FakeGpu()])
    backend = NvmlBackend(nvml_module=nvml, clock=clock)
    assert backend.probe().available
    nvml.driver_present = False
    with pytest.raises(BackendUnavailable, match="NVML did not start"):
        backend.open()


@pytest.mark.parametrize("value", ["\u00b2", "\u0661", "0,\u00b2"])
def test_a_non_ascii_digit_in_cuda_visible_devices_ends_the_list_instead_of_crashing(monkeypatch, value):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", value)
    status = NvmlBackend(nvml_module=FakeNVML([FakeGpu(uuid="GPU-a"), FakeGpu(uuid="GPU-b")])).probe()
    assert status.domains == (("gpu:0",) if value.startswith("0") else ())


@pytest.mark.parametrize("value, expected", [
    ("9" * 5000, []),                       # past Python's 4,300-digit int() limit: invalid, no such device
    ("0," + "9" * 5000, [0]),               # the list ends at the first invalid entry, as CUDA's does
    ("0" * 200 + "1", [1]),                 # leading zeros are not significant digits
    ("0" * 5000 + "1", []),                 # but no entry is longer than MAX_ENTRY_CHARS
    ("-" + "9" * 5000, []),
    ("GPU-aa" + "0" * 5000, []),            # a UUID entry longer than any UUID matches nothing
    ("1," + "x" * 10**6, [1]),
])
def test_cuda_visible_devices_entries_of_any_length_are_parsed_without_error(value, expected):
    assert parse_visible_devices(value, 3, ["GPU-aa01", "GPU-bb02", "GPU-cc03"]) == expected


def test_devices_with_a_5000_digit_cuda_visible_devices_lists_every_backend(monkeypatch, capsys):
    from energymeter import backends
    from energymeter.backends import nvml
    from energymeter.cli import main

    monkeypatch.setattr(nvml, "_load_pynvml", lambda: FakeNVML([FakeGpu(uuid="GPU-a")]))
    monkeypatch.setattr(backends, "_default_instances", {})  # probes afresh, through the fake
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "9" * 5000)
    assert main(["devices"]) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "rapl" in captured.out
    assert "nvml" in captured.out and "probe failed" not in captured.out


# -- MIG and shared GPUs (issue 21 part 4) -----------------------------------------------------------

def test_devices_names_the_mig_instances_and_the_domain_stays_the_whole_gpu(clock):
    gpu = FakeGpu(uuid="GPU-a100", mig_instances=["MIG-1111", "MIG-2222"])
    backend = NvmlBackend(nvml_module=FakeNVML([gpu, FakeGpu(uuid="GPU-plain")]), clock=clock)
    status = backend.probe()
    assert "gpu:0 NVIDIA H200 (energy counter; MIG on, 2 instances visible: MIG-1111, MIG-2222; the counter " \
           "is the whole GPU's)" in status.reason
    assert "gpu:1 NVIDIA H200 (energy counter)" in status.reason
    session = backend.open()
    declaration = session.domains["gpu:0"]
    assert (declaration.scope, declaration.device_id) == ("device", "GPU-a100")  # the GPU, not an instance
    (note,) = [w for w in session.window_warnings(1.0) if "MIG" in w]
    assert note.startswith("gpu:0: MIG is on (2 instances): its energy counter is the whole GPU's")


def test_a_mig_uuid_in_cuda_visible_devices_measures_the_gpu_that_holds_it(clock):
    gpus = [FakeGpu(uuid="GPU-aaaa"), FakeGpu(uuid="GPU-bbbb", mig_instances=["MIG-x1", "MIG-y2"])]
    backend = NvmlBackend(nvml_module=FakeNVML(gpus), clock=clock, visible_devices="MIG-y2")
    assert backend.probe().domains == ("gpu:0",)
    session = backend.open()
    assert session.devices == {"gpu:0": "GPU-bbbb"}
    gpus[1].energy_mj += 7_000
    assert session.read().energy_j["gpu:0"] == pytest.approx(7.0)


@pytest.mark.parametrize("value, expected", [("MIG-x1", [0]), ("MIG-GPU-bb02/1/0", [1]), ("MIG-zz", []),
                                             ("MIG-", [])])
def test_parse_visible_devices_maps_mig_entries_onto_their_gpu(value, expected):
    assert parse_visible_devices(value, 2, ["GPU-aa01", "GPU-bb02"], [("MIG-x1",), ("MIG-x2",)]) == expected


def test_other_processes_on_a_measured_gpu_give_a_warning_naming_how_many(clock):
    import os

    shared, alone = FakeGpu(uuid="GPU-a", processes=[os.getpid(), 501, 502]), FakeGpu(uuid="GPU-b")
    meter = Meter(["nvml"], nvml_module=FakeNVML([shared, alone]), clock=clock)
    with meter.window("w") as w:
        clock.advance(1.0)
    sharing = [x for x in w.result.warnings if "other process" in x]
    assert sharing == ["gpu:0: 2 other processes (pid 501, 502) used this GPU at the window's end: its energy "
                       "counter is the whole GPU's, so their work is in these joules"]
    meter.close()


def test_the_process_check_is_taken_at_most_once_a_second_and_can_be_turned_off(clock):
    gpu = FakeGpu(processes=[4242])
    nvml = FakeNVML([gpu])
    session = NvmlBackend(nvml_module=nvml, clock=clock).open()
    first = session.window_warnings(1.0)
    assert any("1 other process (pid 4242)" in w and "not among them" in w for w in first)  # our pid is absent
    gpu.processes = []
    assert session.window_warnings(1.0) == first  # within the period: the last answer
    clock.advance(1.0)
    assert session.window_warnings(1.0) == []
    quiet = NvmlBackend(nvml_module=FakeNVML([FakeGpu(processes=[4242])]), clock=clock, process_check=False).open()
    assert quiet.window_warnings(1.0) == []
