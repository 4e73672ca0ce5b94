import inspect

import pytest

from energymeter import Meter
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


def test_prepared_gpu_check_runs_against_the_fake_nvml(capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "docs" / "hardware-checks" / "gpu_check.py"
    spec = importlib.util.spec_from_file_location("gpu_check", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--fake", "--seconds", "0.05", "--size", "64", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "window 1:" in out and "measured" in out and "integrated" in out
