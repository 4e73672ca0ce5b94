import errno
import os

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


def test_without_the_option_the_poller_follows_the_smallest_wrap_time_of_the_profile_ceilings(powercap, clock):
    powercap.add_zone("intel-rapl:0", "package-0", max_range_uj=262_143_328_850)
    powercap.add_zone("intel-rapl:0:0", "dram", max_range_uj=65_712_999_613)
    session = backend(powercap, clock).open()
    # dram: 65713 J at its 1000 W ceiling wraps in 65.7 s, sooner than the package's 262143 J at 1500 W.
    assert session.poll_period_s == pytest.approx(65_712.999613 / 1000.0 / 4)


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
    assert reading.epochs["cpu:0:package"] == 1 and "cpu:0:dram" not in reading.epochs
    powercap.set_energy("intel-rapl:0", 200_000_000)  # a reset counter is re-based at the faulty read
    clock.advance(1.0)
    later = session.read()
    assert later.failed == {} and later.epochs["cpu:0:package"] == 1
    powercap.set_energy("intel-rapl:0", 205_000_000)
    assert session.read().energy_j["cpu:0:package"] - later.energy_j["cpu:0:package"] == pytest.approx(5.0)


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
    assert "no RAPL counter can be read" in status.reason
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
    [fd] = session._fds
    os.fstat(fd)  # open
    session.close()
    with pytest.raises(OSError):
        os.fstat(fd)


# -- Plausibility: no counter may make the backend lie (issue 13) ------------------------------------

def test_a_zero_range_is_unusable_so_a_backwards_counter_fails_instead_of_giving_negative_joules(powercap, clock):
    powercap.add_package(0, energy_uj=6_000_000, max_range_uj=0)
    status = backend(powercap, clock).probe()
    assert "max_energy_range_uj is 0, not a positive range" in status.reason
    session = backend(powercap, clock).open()
    powercap.set_energy("intel-rapl:0", 4_800_000)  # wrapped at an unknown point: 4.80 J or more, never -1.20 J
    clock.advance(1.0)
    reading = session.read()
    assert "cpu:0:package" not in reading.energy_j
    assert "cannot be corrected" in reading.failed["cpu:0:package"]


def test_a_negative_range_is_unusable_and_the_poller_period_stays_sane(powercap, clock):
    powercap.add_package(0, energy_uj=6_000_000, max_range_uj=-5)
    session = backend(powercap, clock).open()
    assert session.poll_period_s == 60.0  # no usable range: nothing to poll for (was -1.25e-9 s)
    powercap.set_energy("intel-rapl:0", 1_000_000)
    clock.advance(1.0)
    reading = session.read()
    assert "cpu:0:package" not in reading.energy_j and "cannot be corrected" in reading.failed["cpu:0:package"]


def test_a_range_too_small_to_poll_leaves_the_zone_out_and_never_makes_the_poller_spin(powercap, clock):
    powercap.add_package(0, max_range_uj=1_000)  # 1 mJ: would wrap in under a microsecond at 1500 W
    status = backend(powercap, clock).probe()
    assert not status.available and "faster than it can be polled" in status.reason
    powercap.add_package(1, dram=True)  # a second socket with an ordinary range
    status = backend(powercap, clock).probe()
    assert status.available and status.domains == ("cpu:1:package", "cpu:1:dram")
    assert "cpu:0:package" in status.reason and "zone left out" in status.reason
    session = backend(powercap, clock).open()
    assert session.poll_period_s >= 0.01
    assert set(session.read().energy_j) == {"cpu:1:package", "cpu:1:dram"}


def test_a_counter_above_its_range_fails_the_zone_because_the_range_file_is_wrong(powercap, clock):
    # The range file says 1000 J but the counter really wraps at 1006 J: a wrap would be under-counted by 6 J.
    powercap.add_package(0, dram=True, energy_uj=995_000_000, max_range_uj=1_000_000_000)
    session = backend(powercap, clock).open()
    powercap.set_energy("intel-rapl:0", 1_004_000_000)
    powercap.set_energy("intel-rapl:0:0", 2_000_000)
    clock.advance(1.0)
    reading = session.read()
    assert "above max_energy_range_uj 1000000000" in reading.failed["cpu:0:package"]
    assert reading.energy_j == {"cpu:0:dram": pytest.approx(2.0)}
    powercap.set_energy("intel-rapl:0", 400_000)  # the real wrap, 6 J later than the range file says
    clock.advance(1.0)
    reading = session.read()
    assert "cpu:0:package" not in reading.energy_j  # never 4.40 J for a true 10.40 J
    assert "range file is wrong" in reading.failed["cpu:0:package"]


@pytest.mark.parametrize("max_range_uj", [None, 2**62], ids=["unreadable-range", "wide-range"])
def test_a_forward_jump_of_three_ranges_in_microseconds_fails_and_the_zone_recovers(powercap, clock, max_range_uj):
    powercap.add_package(0, dram=True, energy_uj=1_000_000, max_range_uj=max_range_uj)
    session = backend(powercap, clock).open()
    begin = session.read()
    powercap.set_energy("intel-rapl:0", 1_000_000 + 3 * 262_143_328_850)  # +786 kJ
    powercap.set_energy("intel-rapl:0:0", 500_000)
    clock.advance(1e-6)
    jumped = session.read()
    assert "jumped forward by 786430.0 J" in jumped.failed["cpu:0:package"]
    assert "1500 W ceiling" in jumped.failed["cpu:0:package"]
    assert jumped.energy_j == {"cpu:0:dram": pytest.approx(0.5)}
    assert jumped.epochs.get("cpu:0:package", 0) != begin.epochs.get("cpu:0:package", 0)
    powercap.set_energy("intel-rapl:0", powercap.energy("intel-rapl:0") + 30_000_000)
    clock.advance(1.0)
    after = session.read()
    assert after.failed == {}
    powercap.set_energy("intel-rapl:0", powercap.energy("intel-rapl:0") + 7_000_000)
    clock.advance(1.0)
    assert session.read().energy_j["cpu:0:package"] - after.energy_j["cpu:0:package"] == pytest.approx(7.0)


def test_the_first_read_after_a_long_idle_gap_is_judged_against_the_whole_gap(powercap, clock):
    powercap.add_package(0, energy_uj=0)
    session = backend(powercap, clock).open()
    begin = session.read()
    clock.advance(1800.0)  # half an hour with no window open and no poll
    powercap.set_energy("intel-rapl:0", 180_000_000_000)  # 180 kJ: 100 W for the whole gap
    reading = session.read()
    assert reading.failed == {}
    assert reading.energy_j["cpu:0:package"] - begin.energy_j["cpu:0:package"] == pytest.approx(180_000.0)


def test_a_step_is_judged_against_the_time_since_the_previous_read_not_since_opening(powercap, clock):
    powercap.add_package(0, energy_uj=0)
    session = backend(powercap, clock).open()
    clock.advance(1800.0)
    session.read()
    powercap.set_energy("intel-rapl:0", 100_000_000_000)  # 100 kJ in the next millisecond
    clock.advance(0.001)
    assert "jumped forward" in session.read().failed["cpu:0:package"]


def test_each_domain_kind_has_its_own_ceiling_from_the_profile(powercap, clock):
    powercap.add_package(0, dram=True)
    session = backend(powercap, clock).open()
    powercap.set_energy("intel-rapl:0", 1_200_000_000)  # 1200 J in 0.5 s (+0.5 s allowance): under package 1500 W
    powercap.set_energy("intel-rapl:0:0", 1_200_000_000)  # but above dram's 1000 W x 1 s
    clock.advance(0.5)
    reading = session.read()
    assert reading.energy_j == {"cpu:0:package": pytest.approx(1200.0)}
    assert "1000 W ceiling" in reading.failed["cpu:0:dram"]


def test_a_short_step_is_allowed_a_burst_of_energy_not_a_second_of_it(powercap, clock):
    powercap.add_package(0)
    session = backend(powercap, clock).open()
    powercap.set_energy("intel-rapl:0", 1_400_000_000)  # 1400 J in 2 us: under 1500 W x 1 s, far above any burst
    clock.advance(2e-6)
    failed = session.read().failed["cpu:0:package"]
    assert "jumped forward by 1400.0 J" in failed and "(+0.01 s allowance)" in failed
    clock.advance(0.01)
    before = session.read().energy_j["cpu:0:package"]  # the fault re-based the zone here
    powercap.set_energy("intel-rapl:0", 1_400_000_000 + 10_000_000)  # 10 J in 10 ms: 1000 W, under the ceiling
    clock.advance(0.01)
    assert session.read().energy_j["cpu:0:package"] - before == pytest.approx(10.0)


def test_a_range_file_overstating_the_wrap_fails_the_domain_instead_of_adding_the_difference(powercap, clock):
    # The counter wraps at 10 J; the range file says 13 J: every wrap would add 3 J that were never drawn.
    powercap.add_package(0, energy_uj=9_000_000, max_range_uj=13_000_000)
    session = backend(powercap, clock, max_power_w=20.0).open()
    powercap.set_energy("intel-rapl:0", 500_000)  # wrapped at 10 J: 1.5 J drawn in 0.1 s (15 W)
    clock.advance(0.1)
    failed = session.read().failed["cpu:0:package"]
    assert "without a plausible wraparound" in failed and "overstating" in failed


def test_max_power_w_overrides_every_ceiling_of_the_profile(powercap, clock):
    powercap.add_package(0, dram=True)
    session = backend(powercap, clock, max_power_w=100.0).open()
    powercap.set_energy("intel-rapl:0", 200_000_000)  # 200 J in 0.5 s: 400 W
    clock.advance(0.5)
    reading = session.read()
    assert "100 W ceiling" in reading.failed["cpu:0:package"]
    with pytest.raises(ValueError, match="positive finite"):
        RaplBackend(max_power_w=float("inf"))


def test_a_user_power_limits_profile_sets_the_ceilings(powercap, clock, tmp_path):
    import json

    from energymeter.profiles import load_profile

    data = load_profile("power-limits", "power-limits")
    data["domains"]["package"]["max_power_w"] = 10.0
    path = tmp_path / "limits.json"
    path.write_text(json.dumps(data))
    powercap.add_package(0)
    session = backend(powercap, clock, power_limits=str(path)).open()
    powercap.set_energy("intel-rapl:0", 50_000_000)  # 50 J in 1 s: above 10 W x (1 s + 1 s)
    clock.advance(1.0)
    assert "10 W ceiling" in session.read().failed["cpu:0:package"]


def test_a_broken_power_limits_profile_makes_the_backend_unavailable_with_the_reason(powercap, tmp_path):
    path = tmp_path / "limits.json"
    path.write_text('{"schema_version": 1, "kind": "power-limits"}')
    powercap.add_package(0)
    status = RaplBackend(powercap_root=powercap.root, power_limits=str(path)).probe()
    assert not status.available and "needs a 'default' entry" in status.reason


@pytest.mark.parametrize("text", ["-5", "12abc", ""])
def test_a_counter_that_reads_garbage_fails_that_read_and_the_zone_recovers(powercap, clock, text):
    powercap.add_package(0, dram=True, energy_uj=1_000_000)
    session = backend(powercap, clock).open()
    (powercap.root / "intel-rapl:0" / "energy_uj").write_text(text + "\n")
    powercap.set_energy("intel-rapl:0:0", 1_000_000)
    clock.advance(1.0)
    bad = session.read()
    assert "cpu:0:package" in bad.failed and bad.energy_j == {"cpu:0:dram": pytest.approx(1.0)}
    powercap.set_energy("intel-rapl:0", 9_000_000)
    clock.advance(1.0)
    rebased = session.read()  # the first good read is the new baseline
    powercap.set_energy("intel-rapl:0", 12_000_000)
    clock.advance(1.0)
    good = session.read()
    assert good.failed == {} and good.epochs == rebased.epochs == {"cpu:0:package": 1}
    assert good.energy_j["cpu:0:package"] - rebased.energy_j["cpu:0:package"] == pytest.approx(3.0)


def test_a_transient_read_error_fails_that_read_only_and_bumps_the_epoch(powercap, clock):
    powercap.add_package(0)
    broken = []

    def reader(path):
        if broken:
            broken.pop()
            raise OSError(errno.EIO, "Input/output error", path)
        with open(path) as handle:
            return handle.read()

    session = backend(powercap, clock, reader=reader).open()
    before = session.read()
    broken.append(True)
    assert "Input/output error" in session.read().failed["cpu:0:package"]
    after = session.read()
    assert after.failed == {} and after.epochs["cpu:0:package"] == before.epochs.get("cpu:0:package", 0) + 1


def test_wraps_counted_by_the_poller_stay_exact_over_many_random_steps(powercap, clock):
    import random

    rng = random.Random(13)
    range_uj = 4_294_967_295
    powercap.add_package(0, energy_uj=rng.randrange(range_uj), max_range_uj=range_uj)
    session = backend(powercap, clock).open()
    begin = session.read().energy_j["cpu:0:package"]
    true_uj = 0
    for _ in range(500):
        dt_s = rng.uniform(0.0, 0.7)  # at most 0.7 s between polls
        step_uj = rng.randrange(int(dt_s * 1400 * 1e6) + 1)  # up to 1400 W, under the 1500 W package ceiling
        true_uj += step_uj
        powercap.set_energy("intel-rapl:0", (powercap.energy("intel-rapl:0") + step_uj) % range_uj)
        clock.advance(dt_s)
        session.poll()
    reading = session.read()
    assert reading.failed == {}
    assert reading.energy_j["cpu:0:package"] - begin == pytest.approx(true_uj / 1e6, abs=1e-6)


@pytest.mark.parametrize("planted", ["fifo", "device"])
def test_a_fifo_or_device_planted_as_a_counter_is_refused_instead_of_hanging(powercap, planted):
    import threading

    from energymeter import Meter

    powercap.add_package(0, dram=True)
    counter = powercap.root / "intel-rapl:0:0" / "energy_uj"
    counter.unlink()
    if planted == "fifo":
        os.mkfifo(counter)  # open() of a FIFO without a writer blocks for ever
    else:
        counter.symlink_to("/dev/zero")  # a device: reading it never ends
    outcome = {}

    def open_meter():
        with Meter(["rapl"], powercap_root=powercap.root, sync=False) as meter:
            outcome["domains"] = dict(meter.domains)

    thread = threading.Thread(target=open_meter, daemon=True)
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive(), "Meter() hung on the planted file"
    assert outcome["domains"].keys() == {"cpu:0:package"}  # the readable zone measures
    status = RaplBackend(powercap_root=powercap.root).probe()
    assert status.available and status.domains == ("cpu:0:package",)
    assert "cpu:0:dram: cannot read" in status.reason and "not a sysfs attribute" in status.reason
    assert status.reason.endswith("zone left out")
    assert ("FIFO" if planted == "fifo" else "device") in status.reason


def test_one_unreadable_zone_is_left_out_with_its_reason_and_the_others_measure(powercap, clock):
    powercap.add_package(0, dram=True)

    def reader(path):
        if path.endswith("intel-rapl:0:0/energy_uj"):
            raise PermissionError(errno.EACCES, "Permission denied", path)
        with open(path) as handle:
            return handle.read()

    status = RaplBackend(powercap_root=powercap.root, reader=reader, clock=clock).probe()
    assert status.available and status.domains == ("cpu:0:package",)
    assert "cpu:0:dram: permission denied on" in status.reason and "zone left out" in status.reason


def test_a_zone_whose_name_is_not_text_or_whose_range_is_absurd_fails_alone(powercap):
    # Both found by tests/test_fuzz_inputs.py: each once crashed the probe (UnicodeDecodeError, OverflowError).
    powercap.add_package(0)
    powercap.add_package(1)
    (powercap.root / "intel-rapl:1" / "name").write_bytes(b"\x80package-1\n")
    powercap.add_package(2)
    (powercap.root / "intel-rapl:2" / "max_energy_range_uj").write_text("9" * 400 + "\n")
    status = RaplBackend(powercap_root=powercap.root).probe()
    assert status.available and status.domains[0] == "cpu:0:package"
    assert "intel-rapl:1: its name is not ASCII text" in status.reason
    assert "cpu:2:package: max_energy_range_uj of 400 digits is beyond any 64-bit counter" in status.reason



@pytest.mark.parametrize("text", [b"1_000_000_500\n", "١٢٣٤\n", b"0x10\n", b"+5\n", b"12 34\n", b""])
def test_a_counter_that_is_not_plain_ascii_digits_fails_its_zone(powercap, clock, text):
    powercap.add_package(0, energy_uj=1_000)
    session = backend(powercap, clock).open()
    path = powercap.root / "intel-rapl:0" / "energy_uj"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    clock.advance(0.1)
    assert "not an integer" in session.read().failed["cpu:0:package"]
