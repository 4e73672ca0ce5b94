import errno

import pytest

from energymeter.backends.rapl import RaplBackend, discover


def backend(powercap, clock, **kw):
    return RaplBackend(powercap_root=powercap.root, clock=clock, **kw)


def test_one_socket_package_and_dram_are_discovered(powercap):
    powercap.add_package(0, dram=True, core=True)
    zones, notes = discover(str(powercap.root))
    assert [z.domain for z in zones] == ["cpu:0:package", "cpu:0:dram", "cpu:0:core"]
    assert notes == []


def test_two_sockets_and_psys_are_discovered_and_mmio_duplicate_is_ignored(powercap):
    powercap.add_package(0, dram=True)
    powercap.add_package(1, dram=True)
    powercap.add_zone("intel-rapl:2", "psys")
    powercap.add_package(0, interface="intel-rapl-mmio")
    status = RaplBackend(powercap_root=powercap.root).probe()
    assert status.available
    assert status.domains == ("cpu:0:package", "cpu:0:dram", "cpu:1:package", "cpu:1:dram", "cpu:0:psys")


def test_mmio_package_is_used_when_no_msr_zone_exists(powercap):
    powercap.add_package(0, interface="intel-rapl-mmio")
    assert RaplBackend(powercap_root=powercap.root).probe().domains == ("cpu:0:package",)


def test_window_energy_is_the_counter_delta_in_joules(powercap, clock):
    powercap.add_package(0, dram=True, energy_uj=5_000_000)
    session = backend(powercap, clock).open()
    start = session.read()
    powercap.set_energy("intel-rapl:0", 7_500_000)
    powercap.set_energy("intel-rapl:0:0", 1_000_000)
    clock.advance(1.0)
    end = session.read()
    assert end.energy_j["cpu:0:package"] - start.energy_j["cpu:0:package"] == pytest.approx(2.5)
    assert end.energy_j["cpu:0:dram"] - start.energy_j["cpu:0:dram"] == pytest.approx(1.0)


def test_one_wrap_is_corrected_with_max_energy_range(powercap, clock):
    powercap.add_package(0, energy_uj=990_000_000, max_range_uj=1_000_000_000)
    session = backend(powercap, clock).open()
    powercap.set_energy("intel-rapl:0", 10_000_000)  # wrapped: 10 J to the top, 10 J after
    clock.advance(1.0)
    assert session.read().energy_j["cpu:0:package"] == pytest.approx(20.0)


def test_several_wraps_in_one_window_are_counted_by_polling(powercap, clock):
    powercap.add_package(0, energy_uj=0, max_range_uj=1_000_000_000)  # wraps every 1000 J
    session = backend(powercap, clock).open()
    begin = session.read().energy_j["cpu:0:package"]
    value = 0
    for _ in range(5):  # 5 polls x 600 J = 3000 J: three wraps
        value = (value + 600_000_000) % 1_000_000_000
        powercap.set_energy("intel-rapl:0", value)
        clock.advance(2.0)
        session.poll()
    end = session.read().energy_j["cpu:0:package"]
    assert end - begin == pytest.approx(3000.0)


def test_poller_period_follows_from_range_and_max_power(powercap, clock):
    powercap.add_package(0, max_range_uj=262_143_328_850)
    session = backend(powercap, clock, max_power_w=500.0).open()
    # 262143 J at 500 W lasts 524 s; polled four times per wrap.
    assert session.poll_period_s == pytest.approx(262_143.32885 / 500.0 / 4)


def test_poller_thread_runs_only_while_a_window_is_open(powercap):
    powercap.add_package(0)
    session = RaplBackend(powercap_root=powercap.root).open()
    assert not session._poller.running
    session.activate()
    assert session._poller.running
    session.deactivate()
    assert not session._poller.running


def test_unreadable_max_range_keeps_the_zone_but_a_backwards_counter_fails_it(powercap, clock):
    powercap.add_package(0, energy_uj=1_000_000, max_range_uj=None)
    status = backend(powercap, clock).probe()
    assert status.available and "max_energy_range_uj unreadable" in status.reason
    session = backend(powercap, clock).open()
    assert session.window_warnings(1.0)
    powercap.set_energy("intel-rapl:0", 500_000)
    clock.advance(1.0)
    reading = session.read()
    assert "cpu:0:package" not in reading.energy_j
    assert "cannot be corrected" in reading.failed["cpu:0:package"]


def test_counter_going_backwards_without_a_plausible_wrap_fails_only_that_domain(powercap, clock):
    powercap.add_package(0, dram=True, energy_uj=900_000_000, max_range_uj=262_143_328_850)
    session = backend(powercap, clock).open()
    powercap.set_energy("intel-rapl:0", 100_000_000)  # would be ~262 kJ in 1 s if it were a wrap
    powercap.set_energy("intel-rapl:0:0", 3_000_000)
    clock.advance(1.0)
    reading = session.read()
    assert "without a plausible wraparound" in reading.failed["cpu:0:package"]
    assert reading.energy_j["cpu:0:dram"] == pytest.approx(3.0)
    powercap.set_energy("intel-rapl:0", 200_000_000)
    assert "cpu:0:package" in session.read().failed  # a failed domain stays failed


def test_permission_denied_makes_the_backend_unavailable_with_the_fix(powercap):
    powercap.add_package(0)

    def reader(path):
        if path.endswith("energy_uj"):
            raise PermissionError(errno.EACCES, "Permission denied", path)
        with open(path) as handle:
            return handle.read()

    status = RaplBackend(powercap_root=powercap.root, reader=reader).probe()
    assert not status.available
    assert "permission denied on" in status.reason and "energy_uj" in status.reason
    assert "udev" in status.reason and "root" in status.reason


def test_missing_powercap_tree_is_unavailable_with_a_reason(tmp_path):
    status = RaplBackend(powercap_root=tmp_path / "nowhere").probe()
    assert not status.available and "no powercap tree" in status.reason


def test_root_comes_from_the_environment(powercap, monkeypatch):
    powercap.add_package(0)
    monkeypatch.setenv("ENERGYMETER_POWERCAP_ROOT", str(powercap.root))
    assert RaplBackend().probe().domains == ("cpu:0:package",)


def test_read_error_mid_window_fails_the_domain(powercap, clock):
    powercap.add_package(0, dram=True)
    broken = []

    def reader(path):
        if broken and path.startswith(str(powercap.root / "intel-rapl:0" / "energy_uj")):
            raise OSError(errno.EIO, "Input/output error", path)
        with open(path) as handle:
            return handle.read()

    session = backend(powercap, clock, reader=reader).open()
    broken.append(True)
    reading = session.read()
    assert "Input/output error" in reading.failed["cpu:0:package"]
    assert "cpu:0:dram" in reading.energy_j


def test_counters_are_reread_through_kept_open_descriptors(powercap, clock):
    powercap.add_package(0)
    session = backend(powercap, clock).open()
    first = session.read().energy_j["cpu:0:package"]
    powercap.set_energy("intel-rapl:0", 4_000_000)  # rewritten in place, as sysfs regenerates it
    assert session.read().energy_j["cpu:0:package"] - first == pytest.approx(4.0)
    assert len(session._fds) == 1
    session.close()
    assert session._fds == {}
