"""Issue 13: what the meter does (counting FLOPs, hooks, threads) stays outside the joules it reports."""

import os
import statistics
import sys
import threading
import time

import pytest

from energymeter import BackendUnavailable, measure
from energymeter.meter import Meter
from energymeter.shared import close_shared_meters

POWER_W = 100.0  # the fake package draws this many watts per CPU second of this process


@pytest.fixture
def cpu_powered_tree(powercap):
    """A fake powercap tree whose package counter follows this process's CPU time (100 J per CPU second).

    A background thread rewrites ``energy_uj`` every half millisecond, so any work the process does
    inside a window (the work measured, or the meter's own) shows up as joules.
    """
    powercap.add_package(0)
    path = powercap.root / "intel-rapl:0" / "energy_uj"
    stop = threading.Event()

    fd = os.open(path, os.O_WRONLY)

    def advance():
        while not stop.is_set():
            # One fixed-width pwrite in place: a reader never sees a truncated file.
            os.pwrite(fd, f"{int(time.process_time() * POWER_W * 1e6):020d}\n".encode(), 0)
            time.sleep(0.0005)

    switch = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)  # the writer gets the GIL back within half a millisecond
    thread = threading.Thread(target=advance, daemon=True)
    thread.start()
    torch = sys.modules.get("torch")
    threads = torch.get_num_threads() if torch else None
    yield powercap
    if threads:
        torch.set_num_threads(threads)
    stop.set()
    thread.join()
    os.close(fd)
    sys.setswitchinterval(switch)
    close_shared_meters()


def training_rig():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    torch.set_num_threads(1)  # CPU time = work: no spinning of idle intra-op threads
    net = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256),
                              torch.nn.ReLU(), torch.nn.Linear(256, 10))
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    x, y = torch.randn(256, 784), torch.randint(0, 10, (256,))

    def steps(n=15):
        for _ in range(n):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
    return net, steps


def joules(make_measure, steps):
    with make_measure() as m:
        steps()
    assert m.result.energy_j["cpu:0:package"] > 0
    return m.result.energy_j["cpu:0:package"]


def test_a_default_measure_around_training_reads_what_a_rapl_only_one_reads(cpu_powered_tree):
    root = cpu_powered_tree.root
    net, steps = training_rig()
    steps(3)  # warm up
    rapl_only, default = [], []
    for _ in range(5):  # interleaved, so drift on a shared machine hits both alike
        rapl_only.append(joules(lambda: measure(["rapl"], powercap_root=root), steps))
        default.append(joules(lambda: measure(powercap_root=root), steps))
    ratio = statistics.median(default) / statistics.median(rapl_only)
    assert 0.9 <= ratio <= 1.1, (rapl_only, default)


def test_the_first_flop_counted_window_with_model_reads_what_a_rapl_only_one_reads(cpu_powered_tree):
    root = cpu_powered_tree.root
    rapl_only, counted = [], []
    for _ in range(5):
        net, steps = training_rig()  # a fresh module each round: every window here is its first, uncached
        steps(3)
        rapl_only.append(joules(lambda: measure(["rapl"], powercap_root=root), steps))
        counted.append(joules(lambda: measure(["rapl", "flops"], powercap_root=root, model=net), steps))
    ratio = statistics.median(counted) / statistics.median(rapl_only)
    assert 0.9 <= ratio <= 1.1, (rapl_only, counted)


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
    assert len(net._forward_pre_hooks) == 1
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
