"""The window's fast path (issue 16 part 6): integer microjoules, one lock per edge, no needless poller toggle.

Every figure of the fast path is checked against the careful path (``RaplSession.read()``, floats per
read) run on the same counters, over random steps that include wraps, large jumps, backwards steps and
garbage, so the fast path can only be cheaper, never different.
"""

import random
import threading
import time

import pytest

from energymeter import Meter
from energymeter.backends import rapl_session
from energymeter.backends.base import Poller, Reading
from energymeter.backends.rapl import RaplBackend
from energymeter.session_plans import SessionPlan, difference
from test_meter_poller import wait_for

RANGE_UJ = 4_294_967_295
_REAL_LOCK = threading.Lock


def _open(powercap, clock):
    backend = RaplBackend(powercap_root=powercap.root, clock=clock)
    session = backend.open()
    return session, SessionPlan(session, backend)


def _careful_window(before: Reading, after: Reading) -> tuple[dict, set]:
    """The window's figures from two careful readings, as the meter worked them out before the fast path."""
    energy, failed = {}, set()
    for domain in set(before.energy_j) | set(after.energy_j) | set(before.failed) | set(after.failed):
        if (domain in before.failed or domain in after.failed or domain not in before.energy_j
                or domain not in after.energy_j or before.epochs.get(domain, 0) != after.epochs.get(domain, 0)):
            failed.add(domain)
        else:
            energy[domain] = after.energy_j[domain] - before.energy_j[domain]
    return energy, failed


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fast_windows_equal_careful_windows_over_random_wraps_jumps_and_garbage(powercap, clock, seed):
    rng = random.Random(seed)
    powercap.add_package(0, dram=True, energy_uj=rng.randrange(RANGE_UJ), max_range_uj=RANGE_UJ)
    powercap.add_package(1, energy_uj=rng.randrange(RANGE_UJ), max_range_uj=RANGE_UJ)
    zones = ["intel-rapl:0", "intel-rapl:0:0", "intel-rapl:1"]
    fast, plan = _open(powercap, clock)
    careful, _ = _open(powercap, clock)
    kinds_seen = set()
    counters = {zone: powercap.energy(zone) for zone in zones}  # the last integer written to each
    paths = set()  # which way difference() took: one state, careful reads between, a Reading
    open_fast, open_careful = [], []
    for _ in range(600):
        for zone in zones:
            if rng.random() < 0.6:
                continue
            kind = rng.choices(["small", "large", "wrap", "backwards", "garbage"], [70, 8, 12, 5, 5])[0]
            kinds_seen.add(kind)
            value = counters[zone]
            if kind == "small":
                value = (value + rng.randrange(50_000_000)) % RANGE_UJ
            elif kind == "large":
                value = (value + rng.randrange(2_000_000_000, 4_000_000_000)) % RANGE_UJ
            elif kind == "wrap":
                value = (value + RANGE_UJ - rng.randrange(1, 10_000_000)) % RANGE_UJ
            elif kind == "backwards":
                value = max(0, value - rng.randrange(1, 1_000_000))
            if kind == "garbage":
                (powercap.root / zone / "energy_uj").write_text(rng.choice(["", "12abc", "-7"]) + "\n")
            else:
                powercap.set_energy(zone, value)
                counters[zone] = value
        clock.advance(rng.choice([0.0, 1e-4, 0.05, 0.5, 2.0]))
        action = rng.random()
        if action < 0.35 or not open_fast:
            open_fast.append(fast.read_fast())
            open_careful.append(careful.read())
        elif action < 0.7:
            i = rng.randrange(len(open_fast))
            before_fast, before_careful = open_fast.pop(i), open_careful.pop(i)
            after_fast = fast.read_fast()
            paths.add("fast" if type(before_fast) is type(after_fast) is tuple and before_fast[0] is after_fast[0]
                      else "integer" if type(before_fast) is type(after_fast) is tuple else "reading")
            energy, _, failed = difference(plan, before_fast, after_fast)
            want_energy, want_failed = _careful_window(before_careful, careful.read())
            assert set(failed) == want_failed
            assert energy.keys() == want_energy.keys()
            for domain, joules in energy.items():
                assert joules == pytest.approx(want_energy[domain], abs=1e-6)
        else:
            fast.poll()
            careful.poll()
    assert kinds_seen == {"small", "large", "wrap", "backwards", "garbage"}
    assert paths == {"fast", "integer", "reading"}


def test_a_window_of_two_fast_reads_is_the_exact_integer_difference(powercap, clock):
    # Near the top of a 2**40 range, floats of whole totals lose the last microjoule; integers do not.
    top = 2**40 - 1
    powercap.add_package(0, energy_uj=top - 20, max_range_uj=top)
    with Meter(["rapl"], powercap_root=powercap.root, clock=clock, sync=False) as meter:
        for step_uj in (1, 3, 7):
            meter.begin_window("w")
            powercap.set_energy("intel-rapl:0", powercap.energy("intel-rapl:0") + step_uj)
            clock.advance(0.001)
            assert meter.end_window("w").energy_j["cpu:0:package"] == step_uj / 1e6


def test_a_window_across_a_careful_read_without_a_fault_stays_exact(powercap, clock):
    powercap.add_package(0, energy_uj=RANGE_UJ - 5, max_range_uj=RANGE_UJ)
    with Meter(["rapl"], powercap_root=powercap.root, clock=clock, sync=False) as meter:
        meter.begin_window("w")
        # A wrap: the fast path cannot accept it, the careful path folds it in without a fault.
        powercap.set_energy("intel-rapl:0", 3)
        clock.advance(1.0)
        meter._energy[0].poll()
        powercap.set_energy("intel-rapl:0", 4)
        m = meter.end_window("w")
    assert m.failed == {} and m.energy_j["cpu:0:package"] == (5 + 3 + 1) / 1e6


class CountingLock:
    """A lock that counts its acquisitions."""

    count = 0

    def __init__(self):
        self._lock = _REAL_LOCK()

    def acquire(self, *args):
        CountingLock.count += 1
        return self._lock.acquire(*args)

    def release(self):
        self._lock.release()

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def test_a_one_session_window_takes_one_lock_per_edge(powercap, clock, monkeypatch):
    powercap.add_package(0, dram=True)
    monkeypatch.setattr(rapl_session.threading, "Lock", CountingLock)
    with Meter(["rapl"], powercap_root=powercap.root, clock=clock, sync=False) as meter:
        assert meter._lock is meter._energy[0].lock
        before = CountingLock.count
        meter.begin_window("w")
        meter.end_window("w")
        assert CountingLock.count - before == 2
        before = CountingLock.count
        with meter.window("x"):
            pass
        assert CountingLock.count - before == 2


def test_restarting_a_poller_before_its_poll_falls_due_takes_no_lock_and_it_still_polls(monkeypatch):
    calls = []
    poller = Poller(lambda: calls.append(1), 0.01, "toggled")
    try:
        poller.start()
        poller.stop()

        class Refuse:
            def __enter__(self):
                raise AssertionError("start() took the scheduler's lock while still scheduled")

            def __exit__(self, *exc):
                return False

        real = Poller._cond
        monkeypatch.setattr(Poller, "_cond", Refuse())
        poller.start()  # still scheduled: a flag, no lock
        monkeypatch.setattr(Poller, "_cond", real)
        assert wait_for(lambda: len(calls) >= 3)
    finally:
        poller.close()


def test_a_poller_toggled_from_many_windows_ends_polling_exactly_when_left_started():
    calls = []
    poller = Poller(lambda: calls.append(1), 0.001, "stress")
    rng = random.Random(5)
    try:
        for _ in range(20_000):
            if rng.random() < 0.5:
                poller.start()
            else:
                poller.stop()
            if rng.random() < 0.01:
                time.sleep(0.001)  # let polls fall due, so the scheduler drops and re-checks it
        poller.start()
        seen = len(calls)
        assert wait_for(lambda: len(calls) >= seen + 5)  # left started: it polls
        poller.stop()
        assert wait_for(lambda: poller not in Poller._due)  # left stopped: dropped at its next due time
        settled = len(calls)
        time.sleep(0.02)
        assert len(calls) <= settled + 1
    finally:
        poller.close()


def test_a_counter_that_does_not_advance_over_a_long_window_is_a_warning_not_a_measurement(powercap, clock):
    powercap.add_package(0, dram=True)
    with Meter(["rapl"], powercap_root=powercap.root, clock=clock, sync=False) as meter:
        meter.begin_window("short")
        short = meter.end_window("short")  # microseconds: a counter need not have moved
        meter.begin_window("long")
        powercap.set_energy("intel-rapl:0", 5_000_000)  # the package moves; its DRAM counter does not
        time.sleep(1.05)
        long = meter.end_window("long")
    assert not any("did not advance" in w for w in short.warnings)
    frozen = [w for w in long.warnings if "did not advance" in w]
    assert len(frozen) == 1 and frozen[0].startswith("cpu:0:dram: the counter did not advance over this")
    assert long.energy_j["cpu:0:package"] == 5.0


class _FakeCuda:
    """``torch.cuda`` of a fake torch: counts the calls the meter makes."""

    def __init__(self, initialized: bool, devices: int) -> None:
        self.initialized, self.devices = initialized, devices
        self.checks, self.synced = 0, []

    def is_initialized(self) -> bool:
        self.checks += 1
        return self.initialized

    def device_count(self) -> int:
        return self.devices

    def synchronize(self, index: int) -> None:
        self.synced.append(index)


def _fake_torch(cuda_version, hip_version, cuda: _FakeCuda):
    import types
    torch = types.ModuleType("torch")
    torch.version = types.SimpleNamespace(cuda=cuda_version, hip=hip_version)
    torch.cuda = cuda
    return torch


@pytest.mark.parametrize("lean", [True, False], ids=["lean window", "named window of a general meter"])
def test_windows_synchronise_every_cuda_device_at_both_edges_once_cuda_is_initialised(powercap, monkeypatch, lean):
    import sys
    powercap.add_package(0, dram=True)
    cuda = _FakeCuda(initialized=False, devices=2)
    monkeypatch.setitem(sys.modules, "torch", _fake_torch("12.4", None, cuda))
    backends = ["rapl"] if lean else ["rapl", "cpu-model"]
    with Meter(backends, powercap_root=powercap.root, missing="skip") as meter:
        assert meter._lean is lean  # the two paths that read CUDA's state on their own
        with meter.window("before"):
            pass
        assert cuda.synced == [] and cuda.checks >= 2  # asked at each edge; nothing queued before initialisation
        cuda.initialized = True
        meter.begin_window("w")
        assert cuda.synced == [0, 1]
        meter.end_window("w")
        assert cuda.synced == [0, 1, 0, 1]
        rocm = _FakeCuda(initialized=True, devices=1)  # a ROCm build answers through torch.cuda too
        monkeypatch.setitem(sys.modules, "torch", _fake_torch(None, "6.1", rocm))
        with meter.window("rocm"):
            pass
        assert rocm.synced == [0, 0]
        with Meter(backends, powercap_root=powercap.root, missing="skip", sync=False) as unsynced:
            with unsynced.window("off"):
                pass
        assert rocm.synced == [0, 0]


def test_a_torch_built_for_no_gpu_is_never_asked_about_cuda_again(powercap, monkeypatch):
    import sys
    powercap.add_package(0)
    cuda = _FakeCuda(initialized=True, devices=1)  # would sync, were it asked
    monkeypatch.setitem(sys.modules, "torch", _fake_torch(None, None, cuda))
    with Meter(["rapl"], powercap_root=powercap.root) as meter:
        for _ in range(3):
            with meter.window("w"):
                pass
    assert cuda.checks == 0 and cuda.synced == []
    gpu = _FakeCuda(initialized=True, devices=1)  # another torch (a test's fake, a reload) is looked at afresh
    monkeypatch.setitem(sys.modules, "torch", _fake_torch("12.4", None, gpu))
    with Meter(["rapl"], powercap_root=powercap.root) as meter:
        with meter.window("w"):
            pass
    assert gpu.synced == [0, 0]


def test_sync_switched_off_after_the_meter_opened_stops_synchronising(powercap, monkeypatch):
    import sys
    powercap.add_package(0)
    cuda = _FakeCuda(initialized=True, devices=1)
    monkeypatch.setitem(sys.modules, "torch", _fake_torch("12.4", None, cuda))
    with Meter(["rapl"], powercap_root=powercap.root) as meter:
        with meter.window("on"):
            pass
        meter.sync = False
        with meter.window("off"):
            pass
        meter.sync = True
        with meter.window("on again"):
            pass
    assert cuda.synced == [0, 0, 0, 0]
