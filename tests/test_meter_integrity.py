"""Issue 13: what the meter does (counting FLOPs, hooks, threads) stays outside the joules it reports."""

import os
import sys
import threading

import pytest

from energymeter import BackendUnavailable, measure
from energymeter.meter import Meter
from energymeter.shared import close_shared_meters

ZONE = "intel-rapl:0"
WORK_UJ = 1_000_000  # the fake package's counter advances 1 J per real forward call: the work, exactly
SHADOW_UJ = 5_000_000  # and 5 J per forward the FLOP counter's shadow pass runs (on the meta device): small
# enough that a step read right after it stays under the RAPL plausibility ceiling (1500 W x 0.01 s = 15 J)


def counting_rig(powercap):
    """A module whose forward advances the fake package counter: 1 J on real tensors, 5 J on a shadow pass.

    The joules a window reads are then exact integers of work, and any shadow pass inside the window
    shows as 5 J: no timing, no noise.
    """
    torch = pytest.importorskip("torch")
    powercap.add_package(0)

    class Bumping(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(16, 4)

        def forward(self, x):
            bump = SHADOW_UJ if x.device.type == "meta" else WORK_UJ
            powercap.set_energy(ZONE, powercap.energy(ZONE) + bump)
            return self.fc(x)

    torch.manual_seed(0)
    net = Bumping()
    x, y = torch.randn(8, 16), torch.randint(0, 4, (8,))

    def steps(n=3):
        for _ in range(n):
            net.zero_grad()
            torch.nn.functional.cross_entropy(net(x), y).backward()
    return net, steps


class PythonCalls:
    """The modules of every Python function called in this thread (and threads started) while active."""

    def __init__(self):
        self.functions = set()

    def _profile(self, frame, event, arg):
        if event == "call":
            self.functions.add((frame.f_globals.get("__name__", "?"), frame.f_code.co_name))

    def __enter__(self):
        self._before = sys.getprofile(), threading.getprofile()
        threading.setprofile(self._profile)
        sys.setprofile(self._profile)
        return self

    def __exit__(self, *exc):
        sys.setprofile(self._before[0])
        threading.setprofile(self._before[1])

    def of(self, prefix):
        return {f"{m}.{name}" for m, name in self.functions
                if (m == prefix or m.startswith(prefix + ".")) and not m.startswith("energymeter.testing")}


def test_the_first_flop_counted_window_reads_its_work_and_not_the_shadow_pass_that_counts_it(powercap):
    net, steps = counting_rig(powercap)
    with measure(["rapl", "flops"], powercap_root=powercap.root, model=net) as first:  # uncached: a shadow pass
        steps(3)
    assert first.result.flops == 3 * 2 * (2 * 8 * 16 * 4)  # forward and backward of three calls
    assert first.result.energy_j["cpu:0:package"] == pytest.approx(3.0)  # the work; the 5 J came after
    assert powercap.energy(ZONE) >= 3 * WORK_UJ + SHADOW_UJ  # the shadow pass did run (and bumped)
    with measure(["rapl", "flops"], powercap_root=powercap.root, model=net) as cached:
        steps(2)
    assert cached.result.flops == 2 * 2 * (2 * 8 * 16 * 4)
    assert cached.result.energy_j["cpu:0:package"] == pytest.approx(2.0)
    close_shared_meters()


def test_a_model_window_runs_only_its_two_hooks_inside_the_work_and_no_flop_counter_code(powercap):
    net, steps = counting_rig(powercap)
    meter = Meter(["rapl", "flops"], powercap_root=powercap.root)
    meter.begin_window("step", model=net)
    with PythonCalls() as calls:
        steps(3)
    step = meter.end_window("step")
    meter.close()
    assert step.flops == 3 * 2 * (2 * 8 * 16 * 4)
    assert calls.of("torch.utils.flop_counter") == set()
    assert calls.of("torch.utils._python_dispatch") == set()
    # The stated in-window cost of a model window: a recording forward and a per-parameter backward mark, whose
    # marks the next recorded call parks once every open window is marked.
    assert calls.of("energymeter") == {"energymeter.backends.flop_recording.forward",
                                        "energymeter.backends.flop_recording.record",
                                        "energymeter.backends.flop_recording.mark_backward",
                                        "energymeter.backends.flop_recording.park_marks"}


def test_a_default_measure_runs_no_meter_code_inside_the_work(powercap):
    net, steps = counting_rig(powercap)
    with measure(powercap_root=powercap.root) as m:
        with PythonCalls() as calls:
            steps(3)
    assert m.result.energy_j["cpu:0:package"] == pytest.approx(3.0)
    assert m.result.flops is None  # counting would have run inside: the window says how to count instead
    assert calls.of("energymeter") == set()
    assert calls.of("torch.utils.flop_counter") == set()
    close_shared_meters()


def test_an_enclosing_window_says_how_much_flop_counting_its_joules_contain(powercap):
    torch = pytest.importorskip("torch")
    powercap.add_package(0)
    net = torch.nn.Linear(32, 32)
    meter = Meter(["rapl", "flops"], powercap_root=powercap.root)
    meter.begin_window("epoch")
    meter.begin_window("step", model=net)
    net(torch.randn(4, 32))
    step = meter.end_window("step")
    epoch = meter.end_window("epoch")
    meter.close()
    assert step.flops == 2 * 4 * 32 * 32 and not any("FLOP counting" in w for w in step.warnings)
    assert any("FLOP counting" in w for w in epoch.warnings)


def test_an_epoch_window_of_another_meter_says_how_much_flop_counting_its_joules_contain(powercap):
    torch = pytest.importorskip("torch")
    powercap.add_package(0)
    net = torch.nn.Linear(16, 16)
    epoch_meter = Meter(["rapl"], powercap_root=powercap.root)  # a lean meter of its own, no FLOP counter
    epoch_meter.begin_window("epoch")
    for _ in range(3):  # the first step's count runs a shadow pass after its window, inside the epoch's
        with measure(["rapl", "flops"], powercap_root=powercap.root, model=net):
            net(torch.randn(4, 16))
    epoch = epoch_meter.end_window("epoch")
    epoch_meter.begin_window("quiet")  # no counting inside: no warning
    quiet = epoch_meter.end_window("quiet")
    epoch_meter.close()
    close_shared_meters()
    assert any("FLOP counting" in w and "of any meter" in w for w in epoch.warnings), epoch.warnings
    assert not any("FLOP counting" in w for w in quiet.warnings)


def energymeter_threads():
    return [t for t in threading.enumerate() if t.name.startswith("energymeter")]


def open_fds():
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors through /proc")
def test_measure_objects_hold_no_thread_or_descriptor_of_their_own(powercap):
    for socket in (0, 1):
        powercap.add_package(socket, dram=True)
    close_shared_meters()
    with measure(["rapl"], powercap_root=powercap.root):
        pass
    fds = open_fds()
    kept = []
    for _ in range(30):
        m = measure(["rapl"], powercap_root=powercap.root)
        with m:
            pass
        kept.append(m)  # alive: garbage collection cannot be what releases them
    assert len(energymeter_threads()) <= 1  # at most the one shared poller scheduler
    assert open_fds() == fds
    close_shared_meters()


def test_per_step_measure_with_model_installs_hooks_on_the_model_once(powercap):
    torch = pytest.importorskip("torch")
    powercap.add_package(0)
    net = torch.nn.Linear(8, 2)
    kept = []
    for _ in range(300):
        with measure(["rapl", "flops"], powercap_root=powercap.root, model=net) as m:
            net(torch.randn(4, 8))
        kept.append(m)  # alive, as a per-step measure() kept in a list or a decorator would be
    assert m.result.flops == 2 * 4 * 8 * 2
    assert len(net._forward_pre_hooks) == 0 and "forward" in vars(net)  # one recorder, set once
    close_shared_meters()


def test_naming_a_missing_backend_with_missing_skip_measures_the_others_and_says_why(powercap, tmp_path):
    powercap.add_package(0)
    no_gpus = _NoGpus()
    with pytest.raises(BackendUnavailable, match="nvml: NVML did not start"):
        with measure(["rapl", "nvml"], powercap_root=powercap.root, nvml_module=no_gpus):
            pass
    with measure(["rapl", "nvml"], missing="skip", powercap_root=powercap.root, nvml_module=no_gpus) as m:
        powercap.set_energy("intel-rapl:0", powercap.energy("intel-rapl:0") + 1_000_000)
    assert m.result.energy_j == {"cpu:0:package": pytest.approx(1.0)}
    assert [w for w in m.result.warnings if w.startswith("nvml: skipped: NVML did not start")]
    meter = Meter(["rapl", "nvml"], missing="skip", powercap_root=tmp_path / "none", nvml_module=no_gpus)
    assert set(meter.skipped) == {"rapl", "nvml"} and "no powercap tree" in meter.skipped["rapl"]
    meter.begin_window("w")
    assert meter.end_window("w").energy_j == {}
    with pytest.raises(ValueError, match="missing must be"):
        Meter(["rapl"], missing="ignore")
    close_shared_meters()


class _NoGpus:
    """An NVML module whose initialisation fails, as on a machine without an NVIDIA driver."""

    class NVMLError(Exception):
        pass

    def nvmlInit(self):
        raise self.NVMLError("NVML Shared Library Not Found")

    def __getattr__(self, name):
        raise self.NVMLError(f"{name}: NVML not initialised")


def test_a_measure_whose_shared_meter_the_pool_closed_reopens_it(powercap, monkeypatch):
    import energymeter.shared as meter_module

    powercap.add_package(0)
    monkeypatch.setattr(meter_module, "POOL_SIZE", 1)
    close_shared_meters()
    first = measure(["rapl"], powercap_root=powercap.root)
    with first:
        pass
    with measure(["rapl"], powercap_root=powercap.root, max_power_w=500.0):  # another key: evicts the first
        pass
    assert first.meter._closed
    with first:
        powercap.set_energy("intel-rapl:0", powercap.energy("intel-rapl:0") + 2_000_000)
    assert first.result.energy_j["cpu:0:package"] == pytest.approx(2.0)
    close_shared_meters()


def test_a_measure_whose_meter_is_evicted_just_before_its_window_opens_takes_a_fresh_one(powercap, monkeypatch):
    import energymeter.shared as shared

    powercap.add_package(0)
    close_shared_meters()
    m = measure(["rapl"], powercap_root=powercap.root)
    with m:
        pass
    meter = m._meter
    real_begin = meter._begin

    def evicted(*args, **kwargs):  # the pool closes this meter between the check and the window
        meter.close()
        return real_begin(*args, **kwargs)

    monkeypatch.setattr(meter, "_begin", evicted)
    with m:
        pass
    assert m._meter is not meter and m.result is not None
    close_shared_meters()
    del shared
