"""The task the Ray kill test runs in its workers: ``measure_run``, with a log of every attempt.

It lives in its own module (not the test file) so Ray's workers import it by name; the test puts this
folder on their PYTHONPATH. One run, the victim, publishes its worker's pid when its first attempt starts
and then measures as usual, so the test's SIGKILL lands mid-run; should the run finish before the kill,
it waits for the kill rather than return, so the killed attempt never delivers a record.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from energymeter.validation.run.config import SweepConfig
from energymeter.validation.run.ray_executor import measure_run

ATTEMPTS_FILE = "attempts.jsonl"
VICTIM_FILE = "victim.pid"
#: How long a victim that was not killed waits before failing its run (s).
KILL_WAIT_S = 60.0


def environment(**extra: Any) -> dict[str, Any]:
    """Where the attempt ran: pid, the node's address, the Ray resources it held."""
    import ray

    context = ray.get_runtime_context()
    return {"pid": os.getpid(), "node_ip": ray.util.get_node_ip_address(),
            "resources": context.get_assigned_resources(), **extra}


class RecordingTask:
    """Logs each attempt (one JSON line, appended) and makes the first attempt of ``victim_key`` killable.

    Args:
        directory: Where the attempt log and the victim's pid file go.
        victim_key: The run whose first attempt the test kills.
    """

    def __init__(self, directory: str, victim_key: str) -> None:
        self.directory = Path(directory)
        self.victim_key = victim_key

    def __call__(self, config: SweepConfig, run: Any, reference_reps: int, run_index: int) -> dict[str, Any]:
        key = run.key
        victim = key == self.victim_key and self._claim_victim()
        line = json.dumps(environment(key=key, victim=victim)) + "\n"
        fd = os.open(self.directory / ATTEMPTS_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())  # one short O_APPEND write: lines from concurrent workers never mix
        finally:
            os.close(fd)
        if victim:
            self._publish_pid()
        record = measure_run(config, run, reference_reps, run_index)
        if victim:
            time.sleep(KILL_WAIT_S)
            raise RuntimeError(f"the victim {key} was not killed within {KILL_WAIT_S} s")
        return record

    def _claim_victim(self) -> bool:
        """True for exactly one attempt: the first to create the claim file."""
        try:
            os.close(os.open(self.directory / "victim.claimed", os.O_WRONLY | os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            return False
        return True

    def _publish_pid(self) -> None:
        tmp = self.directory / (VICTIM_FILE + ".tmp")
        tmp.write_text(str(os.getpid()))
        tmp.replace(self.directory / VICTIM_FILE)  # the test never reads a half-written pid
