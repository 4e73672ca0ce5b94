"""A sweep killed (SIGKILL) and interrupted (SIGINT) at random points keeps every finished run once and reports."""

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from energymeter.cli import main
from energymeter.validation.records import store
from test_validation import QUICK_ARGS, SIGINT_CHILD

#: The random points are drawn from this seed (set ENERGYMETER_FAULT_SEED to try others).
SEED = int(os.environ.get("ENERGYMETER_FAULT_SEED", "0"))


def _lines(out):
    path = out / store.RESULTS_FILE
    return path.read_bytes().count(b"\n") if path.exists() else 0


@pytest.mark.slow
def test_random_kills_and_interrupts_lose_no_finished_run_and_duplicate_none(tmp_path):
    rng = random.Random(SEED)
    out = tmp_path / "out"
    argv = [sys.executable, "-c", SIGINT_CHILD, "validate", *QUICK_ARGS, "--seeds", "3", "--out", str(out)]
    faults = []
    for sig in (signal.SIGKILL, signal.SIGINT, signal.SIGKILL):
        before = _lines(out)
        proc = subprocess.Popen(argv + (["--resume"] if out.exists() and (out / store.SWEEP_FILE).exists() else []),
                                stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 300
        while proc.poll() is None and _lines(out) <= before and time.monotonic() < deadline:
            time.sleep(0.02)  # at least one new run this time, so every round makes progress
        time.sleep(rng.uniform(0.0, 1.5))  # then a random point: inside a run, a window, a write, or the report
        if proc.poll() is None:
            proc.send_signal(sig)
        _, err = proc.communicate(timeout=300)
        faults.append((sig.name, proc.returncode))
        if sig == signal.SIGINT and proc.returncode not in (0, 2):
            assert proc.returncode == 130 and "every finished run is kept" in err, (SEED, err[-2000:])
    assert main(["validate", *QUICK_ARGS, "--seeds", "3", "--out", str(out), "--resume"]) == 0, faults
    records, problems = store.read_records(out)
    keys = [r.key for r in records]
    assert len(keys) == len(set(keys)) == 6, (SEED, faults, keys)
    assert all("partial" in str(p) or "line" in str(p) for p in problems)  # at most a half line a kill left
    assert (out / "report.md").exists() and (out / "report.json").exists()
