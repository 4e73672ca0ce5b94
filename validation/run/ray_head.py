"""A sweep's local Ray instance: ``ray start --head --block`` in a session of its own, recorded in ``--out``.

``ray.init(address="local")`` would start Ray's processes in the driver's own process group, where a
SIGKILLed driver leaves some of them running with nothing to name them by. Started here instead as a
session leader (``start_new_session``), every process of the instance keeps the head's session id and
inherits a random marker (``ray_session``); the record in ``--out`` is written before the instance is
waited for, so a driver killed at any point leaves a record a later ``--resume`` can end it by.

The instance listens on loopback only, with every port it opens chosen free (so sweeps on one host never
collide on Ray's fixed defaults), token authentication on (Ray's own token, ``~/.ray/auth_token``), no
usage report, and Ray's temporary files in a directory of its own, removed with it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from .config import SweepError
from .ray_session import (GRACE_S, MARKER_ENV, TEMP_PREFIX, LocalInstance, boot_id, end_instance, forget,
                          session_members, start_ticks, write_record)

#: Seconds a local instance may take to start (about 20 s on a loaded 2-core machine).
START_TIMEOUT_S = 180.0
#: What ``ray start`` prints once every process of the node runs.
_STARTED = b"Ray runtime started"
_LOG = "head.log"


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _client_server_port() -> list[str]:
    """A free port for Ray Client's server, which ``ray start`` runs (on 10001) only where ``ray[client]`` is."""
    try:
        from ray._private.utils import get_ray_client_dependency_error
    except ImportError:  # another Ray layout: leave Ray its default
        return []
    return [] if get_ray_client_dependency_error() is not None else [f"--ray-client-server-port={free_port()}"]


@dataclass
class LocalHead:
    """A running local instance: its head process and its record (written in ``out`` when given)."""

    process: subprocess.Popen
    instance: LocalInstance
    out: Path | None

    @property
    def address(self) -> str:
        """The GCS address ``ray.init`` connects to."""
        return self.instance.address

    def stop(self, grace_s: float = GRACE_S) -> None:
        """End the instance: SIGTERM its head (``ray start`` stops what it started), then any process left."""
        with contextlib.suppress(OSError):
            self.process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=grace_s)
        end_instance(self.instance, grace_s)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=grace_s)
        forget(self.out or Path(self.instance.temp_dir), self.instance)

    def log_tail(self) -> str:
        """The last non-empty line ``ray start`` wrote."""
        try:
            lines = (Path(self.instance.temp_dir) / _LOG).read_bytes().decode("utf-8", "replace").splitlines()
        except OSError:
            return ""
        return next((line.strip() for line in reversed(lines) if line.strip()), "")


def start_head(*, out: Path | None, num_cpus: int | None, resources: dict[str, float], object_store_bytes: int,
               env: dict[str, str], timeout_s: float = START_TIMEOUT_S) -> LocalHead:
    """Start a local instance and wait until it runs.

    Args:
        out: Where the record goes (None: nowhere, for callers without an output directory).
        num_cpus: CPUs the instance offers (None: every core).
        resources: Custom resources of its node.
        object_store_bytes: Its object store.
        env: Variables set for the instance on top of this process's environment.
        timeout_s: How long it may take to start.

    Raises:
        SweepError: it exited, or did not start within ``timeout_s`` (it is ended then).
    """
    temp_dir = tempfile.mkdtemp(prefix=TEMP_PREFIX)
    marker = secrets.token_hex(16)
    port = free_port()
    command = [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block", f"--port={port}",
               "--node-ip-address=127.0.0.1", "--include-dashboard=false", f"--dashboard-port={free_port()}",
               f"--dashboard-agent-listen-port={free_port()}", *_client_server_port(),
               f"--resources={json.dumps(resources)}", f"--object-store-memory={object_store_bytes}",
               "--disable-usage-stats", f"--temp-dir={temp_dir}"]
    if num_cpus is not None:
        command.append(f"--num-cpus={num_cpus}")
    fd = os.open(Path(temp_dir) / _LOG, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=fd, stderr=subprocess.STDOUT,
                                   env={**os.environ, **env, MARKER_ENV: marker}, start_new_session=True)
    finally:
        os.close(fd)
    head = LocalHead(process, LocalInstance(process.pid, marker, os.getpid(), start_ticks(os.getpid()) or 1,
                                            socket.gethostname(), boot_id(), f"127.0.0.1:{port}", temp_dir,
                                            ((process.pid, start_ticks(process.pid) or 1),)), out)
    try:
        if out is not None:
            write_record(out, head.instance)
        _wait_started(head, timeout_s)
        # Every process it runs now, by pid and start time: Ray's agents hide the marker (ray_session).
        head.instance = replace(head.instance, processes=tuple(sorted(session_members(process.pid).items())))
        if out is not None:
            write_record(out, head.instance)
    except BaseException:
        head.stop()
        raise
    return head


def _wait_started(head: LocalHead, timeout_s: float) -> None:
    log = Path(head.instance.temp_dir) / _LOG
    deadline = time.monotonic() + timeout_s
    while True:
        if _STARTED in log.read_bytes():
            return
        if head.process.poll() is not None:
            raise SweepError(f"a local Ray instance did not start (ray start exited {head.process.returncode}): "
                             f"{head.log_tail()[:300]}")
        if time.monotonic() > deadline:
            raise SweepError(f"a local Ray instance did not start within {timeout_s:g} s: {head.log_tail()[:300]}")
        time.sleep(0.2)
