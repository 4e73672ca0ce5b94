"""No counter input may make a measurement lie: faults fail the domain they hit, for the windows they hit."""

import random

import pytest

from energymeter import Meter
from energymeter.backends.nvml import NvmlBackend
from energymeter.backends.rapl import RaplBackend
from energymeter.testing import FakeGpu, FakeNVML, fake_nvml

PACKAGE_CEILING_W = 1500.0
GPU_CEILING_W = 3000.0
ALLOWANCE_S = 1.0


def test_a_sweep_on_one_meter_loses_only_the_run_that_hit_a_gpu_fault(powercap, clock):
    powercap.add_package(0)
    gpu = FakeGpu()
    meter = Meter(["rapl", "nvml"], powercap_root=powercap.root, nvml_module=FakeNVML([gpu]), clock=clock)
    results = []
    for run in range(4):
        meter.begin_window(f"run {run}")
        if run == 1:
            gpu.errors = [fake_nvml.NVML_ERROR_UNKNOWN] * 4  # outlasts the retries
        gpu.energy_mj += 10_000
        powercap.set_energy("intel-rapl:0", powercap.energy("intel-rapl:0") + 2_000_000)
        clock.advance(1.0)
        results.append(meter.end_window(f"run {run}"))
    meter.close()
    assert [sorted(r.failed) for r in results] == [[], ["gpu:0"], [], []]
    assert [r.energy_j.get("gpu:0") for r in results] == [pytest.approx(10.0), None, pytest.approx(10.0),
                                                          pytest.approx(10.0)]
    assert all(r.energy_j["cpu:0:package"] == pytest.approx(2.0) for r in results)


def test_a_rapl_jump_fails_the_window_it_lands_in_and_the_next_window_measures(powercap, clock):
    powercap.add_package(0, max_range_uj=None)
    gpu = FakeGpu()
    meter = Meter(["rapl", "nvml"], powercap_root=powercap.root, nvml_module=FakeNVML([gpu]), clock=clock)
    meter.begin_window("glitch")
    powercap.set_energy("intel-rapl:0", 3 * 262_143_328_850)
    gpu.energy_mj += 1_000
    clock.advance(1e-6)
    glitch = meter.end_window("glitch")
    assert "jumped forward" in glitch.failed["cpu:0:package"] and glitch.energy_j == {"gpu:0": pytest.approx(1.0)}
    meter.begin_window("next")
    powercap.set_energy("intel-rapl:0", powercap.energy("intel-rapl:0") + 5_000_000)
    clock.advance(1.0)
    assert meter.end_window("next").energy_j["cpu:0:package"] == pytest.approx(5.0)
    meter.close()


def _garbage_counter(rng, value, range_uj):
    """The next counter text: mostly honest steps and wraps, sometimes any fault a user has seen."""
    roll = rng.random()
    if roll < 0.6:
        return (value + rng.randrange(500_000_000)) % range_uj, None
    choices = [
        lambda: (rng.randrange(range_uj), None),  # a reset or a random value
        lambda: (value + 3 * range_uj, None),  # above the range / a jump of several ranges
        lambda: (value, f"{-rng.randrange(1, 10**9)}"),  # a negative counter
        lambda: (value, "garbage"),
        lambda: (value, ""),
    ]
    return rng.choice(choices)()


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("range_text", ["1000000000", "0", "-5", "bogus"])
def test_random_counter_faults_never_give_an_impossible_rapl_window(powercap, clock, seed, range_text):
    rng = random.Random(seed)
    zone = powercap.add_zone("intel-rapl:0", "package-0", energy_uj=0, max_range_uj=None)
    (zone / "max_energy_range_uj").write_text(range_text + "\n")
    range_uj = 1_000_000_000
    session = RaplBackend(powercap_root=powercap.root, clock=clock).open()
    value = 0
    previous = session.read()
    windows = 0
    for _ in range(300):
        value, text = _garbage_counter(rng, value, range_uj)
        (zone / "energy_uj").write_text((text if text is not None else str(value)) + "\n")
        dt_s = rng.choice([1e-6, 0.01, 0.5, 2.0])
        clock.advance(dt_s)
        reading = session.read()
        ok = ("cpu:0:package" in previous.energy_j and "cpu:0:package" in reading.energy_j
              and previous.epochs.get("cpu:0:package", 0) == reading.epochs.get("cpu:0:package", 0))
        if ok:
            windows += 1
            step_j = reading.energy_j["cpu:0:package"] - previous.energy_j["cpu:0:package"]
            assert 0.0 <= step_j <= PACKAGE_CEILING_W * (dt_s + ALLOWANCE_S) + 1e-9
        previous = reading
    assert windows > 0  # the property was checked, not skipped


@pytest.mark.parametrize("seed", range(5))
def test_random_nvml_faults_never_give_an_impossible_gpu_window(clock, seed):
    rng = random.Random(seed)
    gpu = FakeGpu(energy_mj=rng.randrange(10**9))
    session = NvmlBackend(nvml_module=FakeNVML([gpu]), clock=clock).open()
    previous = session.read()
    windows = 0
    for _ in range(300):
        roll = rng.random()
        if roll < 0.6:
            gpu.energy_mj += rng.randrange(1_000_000)
        elif roll < 0.7:
            gpu.energy_mj = rng.randrange(10**9)  # backwards, or a jump
        elif roll < 0.8:
            gpu.energy_mj += 10**10
        else:
            gpu.errors = [rng.choice([fake_nvml.NVML_ERROR_UNKNOWN, fake_nvml.NVML_ERROR_TIMEOUT])] * rng.randrange(1, 6)
        dt_s = rng.choice([1e-6, 0.01, 0.5, 2.0])
        clock.advance(dt_s)
        reading = session.read()
        gpu.errors = []
        if ("gpu:0" in previous.energy_j and "gpu:0" in reading.energy_j
                and previous.epochs.get("gpu:0", 0) == reading.epochs.get("gpu:0", 0)):
            windows += 1
            step_j = reading.energy_j["gpu:0"] - previous.energy_j["gpu:0"]
            assert 0.0 <= step_j <= GPU_CEILING_W * (dt_s + ALLOWANCE_S) + 1e-9
        previous = reading
    assert windows > 0


def _wait_for(predicate, timeout_s=5.0):
    import time

    deadline = time.monotonic() + timeout_s
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.005)
    return predicate()


def test_a_dead_power_sampler_fails_its_gpus_instead_of_a_silent_wrong_integral(monkeypatch):
    from energymeter.testing import FakeGpu, FakeNVML

    monkeypatch.setattr("threading.excepthook", lambda args: None)  # the poller reports its error; keep it quiet
    session = NvmlBackend(nvml_module=FakeNVML([FakeGpu(has_counter=False)]), sample_period_s=0.001).open()

    def broken() -> None:
        raise RuntimeError("driver wedged")

    session._sampler._fn = broken
    session.activate()
    assert _wait_for(lambda: session._sampler.error is not None)
    reading = session.read()
    assert "gpu:0" not in reading.energy_j
    assert "power sampler stopped" in reading.failed["gpu:0"] and "driver wedged" in reading.failed["gpu:0"]
    session.close()


def test_a_dead_wrap_poller_fails_the_rapl_zones_instead_of_losing_wraps(powercap, monkeypatch):
    from energymeter.backends.rapl import RaplBackend

    monkeypatch.setattr("threading.excepthook", lambda args: None)
    powercap.add_package(0, dram=True, max_range_uj=1_000_000)  # a 1 J range: the poller runs often
    session = RaplBackend(powercap_root=powercap.root, max_power_w=10.0).open()

    def broken() -> None:
        raise RuntimeError("poll crashed")

    session._poller._fn = broken
    session.activate()
    assert _wait_for(lambda: session._poller.error is not None)
    reading = session.read()
    assert reading.energy_j == {}
    assert all("wrap poller stopped" in reason for reason in reading.failed.values())
    assert set(reading.failed) == {"cpu:0:package", "cpu:0:dram"}
    session.close()
