"""A Ray sweep's driver killed (SIGKILL) or interrupted (SIGINT) at a seeded random point (issue 20 parts 2, 9).

The driver runs ``energymeter validate --executor ray`` in a child process with a local instance, which
``ray start --head`` runs in a session of its own, recorded in ``--out``. A SIGKILLed driver leaves that
instance running, every process of it in the recorded session; ``--resume`` ends exactly those processes
and finishes the sweep. An interrupted driver stops its instance itself. Each time every finished run is
kept once and the report renders. Each test starts Ray twice (about 30 s each on 2 cores).
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from energymeter.validation.records import store
from energymeter.validation.run.ray_session import (MARKER_ENV, RECORD_FILE, instance_processes, read_record,
                                                    session_members)
from test_fault_injection import SEED
from test_ray_sweep import ray_workers  # noqa: F401 - the fixture: Ray importable here and in its workers
from test_validation import QUICK_ARGS, SIGINT_CHILD

# --quick: one model and dataset, two lambdas; six seeds, so that a kill drawn after the first or second record
# still falls mid-sweep on a loaded machine (with three seeds, a CI run once saw all six finish before the kill).
RUNS = 12
ARGV = [sys.executable, "-c", SIGINT_CHILD, "validate", *QUICK_ARGS, "--seeds", "6", "--executor", "ray"]


def _lines(out: Path) -> int:
    path = out / store.RESULTS_FILE
    return path.read_bytes().count(b"\n") if path.exists() else 0


def _start(out: Path, log: Path) -> subprocess.Popen:
    with log.open("w") as err:
        return subprocess.Popen([*ARGV, "--out", str(out)], stdout=subprocess.DEVNULL, stderr=err)


def _wait_for(condition, proc: subprocess.Popen, timeout_s: float = 300.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert proc.poll() is None, f"the driver exited ({proc.returncode}) before the point to stop it"
        assert time.monotonic() < deadline, "the point to stop the driver never came"
        time.sleep(0.02)


def _marked_anywhere(marker: str) -> dict[int, int]:
    """Every live process on the host that carries the marker, whatever its session: pid -> session id."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                marked = f"{MARKER_ENV}={marker}".encode() in (entry / "environ").read_bytes().split(b"\0")
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            if marked and fields[0] not in "ZX":
                found[int(entry.name)] = int(fields[3])
    return found


def _resume(out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*ARGV, "--out", str(out), "--resume"], capture_output=True, text=True, timeout=600)


def _assert_each_run_once_and_reported(out: Path, note) -> None:
    records, problems = store.read_records(out)
    keys = [r.key for r in records]
    assert len(keys) == len(set(keys)) == RUNS, (note, keys)
    assert problems == [], (note, problems)  # the driver writes each line in one write: nothing half-written
    assert (out / "report.md").exists() and (out / "report.json").exists()
    assert not (out / RECORD_FILE).exists()  # the instance of the last run ended with it


@pytest.mark.slow
def test_a_sigkilled_drivers_instance_stays_in_its_recorded_session_and_resume_ends_exactly_it(tmp_path, ray_workers):
    rng = random.Random(SEED)
    wait_records, delay_s = rng.choice([1, 2]), rng.uniform(0.0, 0.5)
    note = dict(seed=SEED, after_records=wait_records, delay_s=round(delay_s, 3))
    out = tmp_path / "out"
    driver = _start(out, tmp_path / "first.err")
    _wait_for(lambda: _lines(out) >= wait_records, driver)
    time.sleep(delay_s)
    driver.send_signal(signal.SIGKILL)
    driver.wait(timeout=30)
    assert _lines(out) < RUNS, note  # killed mid-sweep, as the draw meant

    instance = read_record(out)
    assert instance is not None and instance.driver_pid == driver.pid, note
    left = instance_processes(instance)
    names = {(Path("/proc") / str(pid) / "comm").read_text().strip() for pid in left}
    # The instance outlived its driver, the agents of the report among it, all in the session.
    assert {"raylet", "gcs_server", "ray::DashboardA", "ray::RuntimeEnv"} <= names, (note, names)
    assert set(instance.processes) <= set(left.items())  # all listed once it ran, and all still there
    assert set(_marked_anywhere(instance.marker).values()) == {instance.session_id}
    # A process outside the session that even carries the marker is not the instance's, and stays.
    outsider = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True,
                                env={**os.environ, MARKER_ENV: instance.marker})
    try:
        resumed = _resume(out)
        assert resumed.returncode == 0, (note, resumed.stderr[-3000:])
        ended = re.search(rf"ended (\d+) process\(es\) of the Ray instance \(session {instance.session_id}\) left "
                          rf"by driver pid {driver.pid}, which no longer runs", resumed.stderr)
        assert ended and int(ended.group(1)) >= 4, (note, resumed.stderr[-3000:])  # at least those named above
        assert session_members(instance.session_id) == {}
        assert outsider.poll() is None
        assert set(_marked_anywhere(instance.marker)) == {outsider.pid}
    finally:
        outsider.kill()
        outsider.wait()
    _assert_each_run_once_and_reported(out, note)


@pytest.mark.slow
def test_a_driver_interrupted_at_a_random_point_stops_its_instance_and_resume_keeps_each_run_once(tmp_path,
                                                                                                  ray_workers):
    rng = random.Random(SEED + 1)
    wait_records, delay_s = rng.choice([0, 1, 2]), rng.uniform(0.0, 3.0)  # 0: while Ray starts or the first run
    note = dict(seed=SEED, after_records=wait_records, delay_s=round(delay_s, 3))
    out = tmp_path / "out"
    driver = _start(out, tmp_path / "first.err")
    _wait_for(lambda: (out / RECORD_FILE).exists() and _lines(out) >= wait_records, driver)
    instance = read_record(out)
    time.sleep(delay_s)
    assert driver.poll() is None, note
    driver.send_signal(signal.SIGINT)
    assert driver.wait(timeout=120) in (0, 130), (note, (tmp_path / "first.err").read_text()[-3000:])

    assert not (out / RECORD_FILE).exists(), note
    assert instance_processes(instance) == {} and session_members(instance.session_id) == {}, note  # nothing left running
    resumed = _resume(out)
    assert resumed.returncode == 0, (note, resumed.stderr[-3000:])
    assert "ended" not in resumed.stderr, note
    _assert_each_run_once_and_reported(out, note)
