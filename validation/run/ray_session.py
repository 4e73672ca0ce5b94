"""The local Ray instance a sweep started, recorded in ``--out``, and the ending of a dead driver's leftovers.

A local instance runs in a session of its own (``ray_head``): its head process is a session leader and
every process Ray starts from it (GCS, raylet, agents, workers) keeps that session id, although Ray gives
each worker a process group of its own, so the session, not a process group, is what holds them all.
Each of them also inherits the environment variable ``MARKER_ENV`` with a random value recorded beside the
session id in ``RECORD_FILE``. A driver killed with SIGKILL leaves the whole instance running; the record
lets a later ``--resume`` end it:

* only when the record was written on this host and since this boot, and its driver is no longer running
  (its pid gone, or taken by a process that started at another time);
* only the processes of the recorded session, and only once the session is proven to be the instance's:
  one of its processes is one the record lists (pid and start time, taken once the instance ran) or
  carries the marker. Never by name, never a process outside that session. The kernel does not reuse a
  session id while any process holds it, so a session holding one process of the instance holds no
  stranger; a session id reused after the instance ended holds neither a listed process nor the marker.
  (The marker alone does not do: Ray's agents rewrite their process title over the memory that
  ``/proc/PID/environ`` shows, so theirs reads as zeros.)

Processes are read from ``/proc`` (Linux); each is signalled through a pidfd opened after checking its
start time, so a pid reused in between is never signalled.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import stat
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from energymeter import strict_json

from ..records import store

#: The record of a running local instance, in ``--out``.
RECORD_FILE = "ray-local.json"
#: Environment variable every process of a local instance inherits; its value is the instance's marker.
MARKER_ENV = "ENERGYMETER_RAY_INSTANCE"
#: Prefix of a local instance's Ray temporary directory (under the system's temporary directory).
TEMP_PREFIX = "energymeter-ray-"
#: Seconds the processes get to exit after SIGTERM before SIGKILL.
GRACE_S = 10.0
_PROC = Path("/proc")
_MAX_RECORD_BYTES = 64 * 1024


@dataclass(frozen=True)
class LocalInstance:
    """What ``RECORD_FILE`` holds.

    Attributes:
        session_id: The instance's session id (the pid of its head process, ``ray start --block``).
        marker: The value of ``MARKER_ENV`` in every process of the instance.
        driver_pid: The sweep's own process.
        driver_start_ticks: Its start time (clock ticks since boot, ``/proc/PID/stat`` field 22).
        host: The host name the driver ran on.
        boot_id: ``/proc/sys/kernel/random/boot_id`` then: pids of another boot mean nothing.
        address: The instance's GCS address (``127.0.0.1:PORT``).
        temp_dir: Ray's temporary directory for the instance (sockets, logs), removed with it.
        processes: (pid, start ticks) of each of its processes: the head at first, all once it ran.
    """

    session_id: int
    marker: str
    driver_pid: int
    driver_start_ticks: int
    host: str
    boot_id: str
    address: str
    temp_dir: str
    processes: tuple[tuple[int, int], ...] = field(default=())

    @classmethod
    def from_dict(cls, data: object) -> LocalInstance:
        """Checked fields of a parsed record.

        Raises:
            ValueError: not an object of this layout.
        """
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        values = {}
        for name, kind in (("session_id", int), ("marker", str), ("driver_pid", int), ("driver_start_ticks", int),
                           ("host", str), ("boot_id", str), ("address", str), ("temp_dir", str)):
            value = data.get(name)
            if not isinstance(value, kind) or isinstance(value, bool) or (kind is int and value <= 0) or not value:
                raise ValueError(f"{name}: {'missing' if value is None else 'not a valid value'}")
            values[name] = value
        listed = data.get("processes", [])
        if not isinstance(listed, list) or not all(
                isinstance(p, list) and len(p) == 2 and all(type(v) is int and v > 0 for v in p) for p in listed):
            raise ValueError("processes: not a list of [pid, start ticks]")
        return cls(**values, processes=tuple((pid, ticks) for pid, ticks in listed))


def boot_id() -> str:
    """This boot's id, or 'unknown' where the kernel does not give one."""
    try:
        return (_PROC / "sys/kernel/random/boot_id").read_text().strip() or "unknown"
    except OSError:
        return "unknown"


def start_ticks(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot), or None when it is gone or a zombie."""
    found = _stat(pid)
    return None if found is None else found[1]


def _stat(pid: int) -> tuple[int, int] | None:
    """(session id, start ticks) of a live process, None when gone or a zombie."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # after the command name, which may hold spaces
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[3]), int(fields[19])


def session_members(session_id: int) -> dict[int, int]:
    """The live processes of a session: pid -> start ticks."""
    members = {}
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            found = _stat(int(entry.name))
            if found is not None and found[0] == session_id:
                members[int(entry.name)] = found[1]
    return members


def carries(pid: int, marker: str) -> bool:
    """Whether ``/proc/PID/environ`` shows ``MARKER_ENV`` set to ``marker``."""
    try:
        environment = (_PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return False  # gone, or another user's
    return f"{MARKER_ENV}={marker}".encode() in environment.split(b"\0")


def instance_processes(instance: LocalInstance) -> dict[int, int]:
    """The live processes of the instance (pid -> start ticks): its session's, once proven its (see above)."""
    members = session_members(instance.session_id)
    listed = set(instance.processes)
    if any((pid, ticks) in listed or carries(pid, instance.marker) for pid, ticks in members.items()):
        return members
    return {}


def _signal(pid: int, ticks: int, sig: int) -> None:
    """Signal ``pid`` only if it is still the process that started at ``ticks``."""
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return
    try:
        if start_ticks(pid) == ticks:  # the pidfd holds this very process from here on
            signal.pidfd_send_signal(fd, sig)
    except OSError:
        pass  # it exited meanwhile
    finally:
        os.close(fd)


def end_instance(instance: LocalInstance, grace_s: float = GRACE_S) -> int:
    """SIGTERM the instance's processes, SIGKILL those left after ``grace_s``; the number there were.

    The session is proven the instance's once; from then on it holds no stranger while it is not empty.
    """
    targets = instance_processes(instance)
    ended = set(targets)
    for pid, ticks in targets.items():
        _signal(pid, ticks, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while targets and time.monotonic() < deadline:
        time.sleep(0.1)
        targets = session_members(instance.session_id)
        ended |= set(targets)
    for _ in range(50):  # SIGKILL, and again for any process started meanwhile
        if not targets:
            break
        for pid, ticks in targets.items():
            _signal(pid, ticks, signal.SIGKILL)
        time.sleep(0.1)
        targets = session_members(instance.session_id)
        ended |= set(targets)
    return len(ended)


def write_record(out: Path, instance: LocalInstance) -> None:
    """Write ``RECORD_FILE`` in ``out`` (atomically, never through a link)."""
    store.write_json_atomic(out / RECORD_FILE, asdict(instance))


def read_record(out: Path) -> LocalInstance | None:
    """The record in ``out``, or None when there is none.

    Raises:
        ValueError: it is not a regular file (a link is not followed), too long, or not a record.
    """
    path = out / RECORD_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise ValueError(exc.strerror or str(exc)) from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError("not a regular file")
        raw = os.read(fd, _MAX_RECORD_BYTES + 1)
    finally:
        os.close(fd)
    if len(raw) > _MAX_RECORD_BYTES:
        raise ValueError(f"longer than {_MAX_RECORD_BYTES} bytes")
    return LocalInstance.from_dict(strict_json.loads(raw.decode("utf-8", "replace")))


def forget(out: Path, instance: LocalInstance) -> None:
    """Remove the instance's temporary directory (when it is one of ours) and its record."""
    temp = Path(instance.temp_dir)
    if temp.parent == Path(tempfile.gettempdir()) and temp.name.startswith(TEMP_PREFIX):
        with contextlib.suppress(OSError):
            if stat.S_ISDIR(os.lstat(temp).st_mode):
                shutil.rmtree(temp, ignore_errors=True)
    with contextlib.suppress(OSError):
        (out / RECORD_FILE).unlink()


def end_leftovers(out: Path, grace_s: float = GRACE_S) -> str | None:
    """End the local Ray instance a dead driver left in ``out``; a line saying what was done, None if none.

    Nothing is ended when the record is unreadable, from another host, or its driver still runs; a
    record from before this boot is removed (its processes ended with that boot).
    """
    path = out / RECORD_FILE
    try:
        instance = read_record(out)
    except (ValueError, OSError) as exc:
        return f"{path} is unreadable ({exc}); no process was ended"
    if instance is None:
        return None
    here = socket.gethostname()
    if instance.host != here:
        return (f"{path}: its Ray instance (session {instance.session_id}) ran on host {instance.host}, not on "
                f"{here}; it was left alone (end it there: see the README)")
    if instance.boot_id != boot_id():
        forget(out, instance)
        return f"{path} was written before this machine restarted; nothing was left to end"
    if start_ticks(instance.driver_pid) == instance.driver_start_ticks:
        return (f"the sweep's driver (pid {instance.driver_pid}) still runs; its Ray instance (session "
                f"{instance.session_id}) was left alone")
    count = end_instance(instance, grace_s)
    forget(out, instance)
    if not count:
        return f"the Ray instance left by driver pid {instance.driver_pid} had no process left"
    return (f"ended {count} process(es) of the Ray instance (session {instance.session_id}) left by driver pid "
            f"{instance.driver_pid}, which no longer runs")
