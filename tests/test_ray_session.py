"""A dead driver's local Ray instance, recorded in --out, is ended by its session only, under the record's rules.

Plain ``sleep`` processes in sessions of their own stand in for an instance: no Ray is started here.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import replace

import pytest

from energymeter.validation.run import ray_session
from energymeter.validation.run.ray_session import (MARKER_ENV, RECORD_FILE, LocalInstance, end_leftovers,
                                                    read_record, session_members, start_ticks, write_record)

SLEEPER = [sys.executable, "-c", "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', "
           "'import os, time; os.setpgrp(); time.sleep(120)']); time.sleep(120)"]  # a child in a group of its own


@pytest.fixture
def sessions():
    """Starts processes in sessions of their own (as ``ray start`` is); ends whatever is left afterwards."""
    started = []

    def start(**env):
        proc = subprocess.Popen(SLEEPER, start_new_session=True, env={**os.environ, **env})
        started.append(proc)
        deadline = time.monotonic() + 30
        while len(session_members(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)  # the leader and its child in another process group
        return proc

    yield start
    for proc in started:
        for pid, ticks in session_members(proc.pid).items():
            ray_session._signal(pid, ticks, 9)
        proc.kill()
        proc.wait()


def _dead_driver() -> tuple[int, int]:
    driver = subprocess.Popen([sys.executable, "-c", "pass"])
    ticks = start_ticks(driver.pid)
    driver.wait()
    return driver.pid, ticks or 1


def _record(tmp_path, head, marker="m" * 32, **changes) -> LocalInstance:
    pid, ticks = _dead_driver()
    instance = LocalInstance(head.pid, marker, pid, ticks, socket.gethostname(), ray_session.boot_id(),
                             "127.0.0.1:6390", str(tmp_path / "ray-temp"),
                             ((head.pid, start_ticks(head.pid)),))
    instance = replace(instance, **changes)
    write_record(tmp_path, instance)
    return instance


def test_a_dead_drivers_instance_is_ended_whole_and_nothing_outside_its_session(tmp_path, sessions):
    head = sessions()
    outsider = sessions(**{MARKER_ENV: "m" * 32})  # even carrying the marker, another session is not ended
    members = session_members(head.pid)
    instance = _record(tmp_path, head)
    assert read_record(tmp_path) == instance
    line = end_leftovers(tmp_path, grace_s=2.0)
    assert line == (f"ended {len(members)} process(es) of the Ray instance (session {head.pid}) left by driver pid "
                    f"{instance.driver_pid}, which no longer runs")
    assert session_members(head.pid) == {} and len(session_members(outsider.pid)) == 2
    assert not (tmp_path / RECORD_FILE).exists()


def test_a_session_holding_no_listed_process_and_no_marker_is_left_alone(tmp_path, sessions):
    head = sessions()  # stands in for a session id reused after the instance ended
    _record(tmp_path, head, processes=((head.pid, 1),))
    assert end_leftovers(tmp_path, grace_s=1.0).endswith("had no process left")
    assert len(session_members(head.pid)) == 2


def test_a_marker_proves_the_session_when_no_listed_process_is_left(tmp_path, sessions):
    head = sessions(**{MARKER_ENV: "k" * 32})
    _record(tmp_path, head, marker="k" * 32, processes=())
    assert end_leftovers(tmp_path, grace_s=2.0).startswith("ended 2 process(es)")
    assert session_members(head.pid) == {}


def test_a_live_driver_another_host_or_an_unreadable_record_end_nothing(tmp_path, sessions):
    head = sessions()
    _record(tmp_path, head, driver_pid=os.getpid(), driver_start_ticks=start_ticks(os.getpid()))
    assert "still runs" in end_leftovers(tmp_path) and len(session_members(head.pid)) == 2
    _record(tmp_path, head, host="elsewhere.example")
    assert "ran on host elsewhere.example" in end_leftovers(tmp_path) and (tmp_path / RECORD_FILE).exists()
    (tmp_path / RECORD_FILE).write_text('{"session_id": 1e400}')
    assert "is unreadable" in end_leftovers(tmp_path) and len(session_members(head.pid)) == 2


def test_a_record_from_another_boot_is_dropped_without_signalling(tmp_path, sessions):
    head = sessions()
    _record(tmp_path, head, boot_id="another-boot")
    assert "before this machine restarted" in end_leftovers(tmp_path)
    assert len(session_members(head.pid)) == 2 and not (tmp_path / RECORD_FILE).exists()


def test_no_record_is_nothing_to_do_and_a_link_is_not_followed(tmp_path):
    assert end_leftovers(tmp_path) is None and end_leftovers(tmp_path / "absent") is None
    (tmp_path / "elsewhere.json").write_text("{}")
    (tmp_path / RECORD_FILE).symlink_to(tmp_path / "elsewhere.json")
    assert "is unreadable" in end_leftovers(tmp_path)
