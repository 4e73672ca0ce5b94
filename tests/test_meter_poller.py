"""The shared poller scheduler: one thread for every poller, calls only while started."""

import threading
import time

from energymeter.backends.base import Poller


def wait_for(condition, timeout_s=5.0):
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def test_pollers_share_one_thread_and_poll_only_while_started():
    calls = {"fast": 0, "slow": 0}
    fast = Poller(lambda: calls.__setitem__("fast", calls["fast"] + 1), 0.01, "fast")
    slow = Poller(lambda: calls.__setitem__("slow", calls["slow"] + 1), 0.02, "slow")
    try:
        fast.start()
        slow.start()
        assert wait_for(lambda: calls["fast"] >= 5 and calls["slow"] >= 3)
        assert len([t for t in threading.enumerate() if t.name == "energymeter-poller"]) == 1
        fast.stop()
        slow_at_stop = calls["slow"]
        # Calls run one at a time on the one thread: once "slow" has been called after stop(), no call
        # of "fast" that began before stop() can still be running. No fixed sleeps: load cannot fail it.
        assert wait_for(lambda: calls["slow"] > slow_at_stop)
        stopped_at = calls["fast"]
        assert wait_for(lambda: calls["slow"] >= slow_at_stop + 5)  # "fast" fell due at least 5 times since
        assert calls["fast"] == stopped_at
        assert not fast.running and slow.running
    finally:
        fast.close()
        slow.close()


def test_a_poller_whose_call_raises_stops_alone_and_keeps_the_error(monkeypatch):
    reported = []
    monkeypatch.setattr(threading, "excepthook", lambda args: reported.append(args.exc_value))
    calls = []

    def broken():
        raise OSError("counter vanished")

    bad = Poller(broken, 0.005, "bad")
    good = Poller(lambda: calls.append(1), 0.005, "good")
    try:
        bad.start()
        good.start()
        assert wait_for(lambda: bad.error is not None and len(calls) >= 3)
        assert isinstance(bad.error, OSError) and reported and reported[0] is bad.error
        assert not bad.running
        bad.start()  # a failed poller stays closed
        assert not bad.running
    finally:
        bad.close()
        good.close()


def test_close_waits_for_a_call_in_progress():
    entered, release, finished = threading.Event(), threading.Event(), []

    def slow_call():
        entered.set()
        release.wait(5)
        finished.append(True)

    poller = Poller(slow_call, 0.001, "slow-call")
    poller.start()
    assert entered.wait(5)
    closer = threading.Thread(target=poller.close)
    closer.start()
    time.sleep(0.05)
    assert closer.is_alive() and not finished  # close() is waiting for the call
    release.set()
    closer.join(5)
    assert finished == [True] and not closer.is_alive()
