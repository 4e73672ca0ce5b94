"""A sweep's output directory: ``results.jsonl`` (one ``RunRecord`` per line), ``sweep.json``, and a lock.

* Each record is one line, written with a single ``write`` of the whole line, then fsynced: a run killed
  before its record is written leaves nothing, and a kill during the write leaves at most half a line,
  which the reader reports and skips. A line missing only its newline is still a whole record; the next
  append starts a fresh line, so nothing is recorded twice.
* On reading, a line that is not a record is reported by line number and skipped, never silently dropped:
  each line is parsed within limits (``records.json_line``) and any failure of one line, of any kind, is
  that line's problem alone.
* Nothing is written through a symbolic link: files are opened with ``O_NOFOLLOW`` or written beside
  their target under a unique name and renamed over it, so a link planted in the directory is replaced,
  never followed. A failed write (disk full) leaves the previous file intact and raises ``StoreError``.
* ``lock(directory)`` takes an exclusive lock for the length of a sweep; a second sweep gets ``StoreError``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from energymeter.errors import EnergymeterError

from .json_line import parse_line
from .record import RecordError, RunRecord
from .rounds import RoundsRecord

RESULTS_FILE = "results.jsonl"
#: One line per group of an interleaved sweep: its inference rounds (``rounds.RoundsRecord``).
ROUNDS_FILE = "rounds.jsonl"
SWEEP_FILE = "sweep.json"
LOCK_FILE = ".energymeter.lock"


class StoreError(EnergymeterError):
    """An output directory that cannot be used (locked, not writable, a link in the way, disk full)."""


@dataclass(frozen=True)
class Problem:
    """A line of results.jsonl that could not be read.

    Attributes:
        line: 1-based line number (0: not a line of results.jsonl).
        reason: What is wrong with it.
    """

    line: int
    reason: str

    def __str__(self) -> str:
        return f"{RESULTS_FILE} line {self.line}: {self.reason}; skipped" if self.line else self.reason


def _describe(exc: OSError, path: Path) -> str:
    if exc.errno == errno.ELOOP:
        return f"{path} is a symbolic link; energymeter does not write through links"
    if exc.errno == errno.ENOSPC:
        return f"no space left on the device holding {path}"
    return f"cannot write {path}: {exc.strerror or exc}"


def append_record(directory: Path, record: RunRecord) -> None:
    """Append one record as a line, fsynced.

    Raises:
        StoreError: the file is a link, or the write failed (nothing partial is left behind).
    """
    append_line(directory / RESULTS_FILE, record.to_dict())


def append_rounds(directory: Path, rounds: RoundsRecord) -> None:
    """Append one group's interleaved inference rounds to ``rounds.jsonl``, fsynced (as ``append_record``)."""
    append_line(directory / ROUNDS_FILE, rounds.to_dict())


def _parsed_lines(path: Path, parse: Any, what: str) -> Iterator[tuple[int, Any]]:
    """``(line number, parse(object))`` for every non-blank line, or ``(number, Problem)`` for a line that fails
    (whatever it holds: a ``RecordError`` says why in its own words, anything else is named with its type).

    Raises:
        StoreError: ``path`` is there but is not a file.
    """
    if not path.exists():
        return
    if not path.is_file():
        raise StoreError(f"{path} is not a file (a directory or a device where the {what}s should be)")
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield number, parse(parse_line(line))
            except RecordError as exc:
                yield number, Problem(number, str(exc))
            except Exception as exc:  # noqa: BLE001 - whatever one line holds, it fails that line alone
                yield number, Problem(number, f"unreadable {what} ({type(exc).__name__}: {exc})"[:500])


def read_rounds(directory: Path) -> tuple[list[RoundsRecord], list[Problem]]:
    """Every readable rounds record (the last one per group and seed: a group measured again on ``--resume``
    replaces its earlier rounds), and the problems of the lines that were not. No file: none (older sweeps).

    Raises:
        StoreError: ``rounds.jsonl`` is there but is not a file.
    """
    found: dict[str, RoundsRecord] = {}
    problems: list[Problem] = []
    for _, item in _parsed_lines(directory / ROUNDS_FILE, RoundsRecord.from_dict, "rounds record"):
        if isinstance(item, Problem):
            problems.append(item)
        else:
            found[item.key] = item
    return list(found.values()), problems


def append_line(path: Path, line: dict[str, Any]) -> None:
    """Append one JSON object as a line of ``path``, fsynced; a failed write leaves nothing partial.

    Raises:
        StoreError: the file is a link, or the write failed.
    """
    data = (json.dumps(line, sort_keys=True) + "\n").encode("utf-8")
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        raise StoreError(_describe(exc, path)) from exc
    size = 0
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            # The last line has no newline (a whole record, or half a line from a kill): start a fresh line.
            data = b"\n" + data
        written = os.write(fd, data)
        if written != len(data):
            os.ftruncate(fd, size)  # a short write would leave half a line: take it back
            raise StoreError(f"short write to {path} ({written} of {len(data)} bytes); the record was not kept")
        os.fsync(fd)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, size)
        raise StoreError(_describe(exc, path)) from exc
    finally:
        os.close(fd)


def read_records(directory: Path) -> tuple[list[RunRecord], list[Problem]]:
    """Every readable record (first occurrence per key), and the problems of the lines that were not.

    Raises:
        StoreError: ``results.jsonl`` is there but is not a file.
    """
    records: list[RunRecord] = []
    problems: list[Problem] = []
    seen: set[str] = set()
    for number, item in _parsed_lines(directory / RESULTS_FILE, RunRecord.from_dict, "run record"):
        if isinstance(item, Problem):
            problems.append(item)
        elif item.key in seen:
            problems.append(Problem(number, f"a second record of run {item.key} (the first is kept)"))
        else:
            seen.add(item.key)
            records.append(item)
    return records, problems
    if not path.is_file():
        raise StoreError(f"{path} is not a file (a directory or a device where the results should be)")
    seen: set[str] = set()
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = RunRecord.from_dict(parse_line(line))
            except RecordError as exc:
                problems.append(Problem(number, str(exc)))
                continue
            except Exception as exc:  # noqa: BLE001 - whatever one line holds, it fails that line alone
                problems.append(Problem(number, f"unreadable run record ({type(exc).__name__}: {exc})"[:500]))
                continue
            if record.key in seen:
                problems.append(Problem(number, f"a second record of run {record.key} (the first is kept)"))
                continue
            seen.add(record.key)
            records.append(record)
    return records, problems


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write a file beside ``path`` under a unique name, fsync it, and rename it over ``path``.

    A link at ``path`` is replaced, not followed. On failure the previous file is left as it was.

    Raises:
        StoreError: the write failed (the message names the file and the cause, e.g. disk full).
    """
    raw = data.encode("utf-8") if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{id(raw):x}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        raise StoreError(_describe(exc, tmp)) from exc
    try:
        view = memoryview(raw)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
        _fsync_directory(path.parent)
    except OSError as exc:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise StoreError(_describe(exc, path)) from exc


def _fsync_directory(directory: Path) -> None:
    """Make a rename durable (the directory entry), where the platform allows opening a directory."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a directory; the rename itself has happened
    finally:
        os.close(fd)


def write_json_atomic(path: Path, data: Any) -> None:
    """``write_atomic`` of indented, key-sorted JSON."""
    write_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def check_writable(directory: Path) -> None:
    """Create ``directory`` if needed and prove a file can be created in it (without following links).

    Raises:
        StoreError: it cannot be created or written.
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"output directory {directory} cannot be created: {exc.strerror or exc}") from exc
    probe = directory / f".energymeter-write-test.{os.getpid()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise StoreError(f"output directory {directory} is not writable: {exc.strerror or exc}") from exc


@contextlib.contextmanager
def lock(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``directory`` for the block (one sweep per directory at a time).

    Raises:
        StoreError: another process holds it.
    """
    path = directory / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        raise StoreError(_describe(exc, path)) from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "another process"
            raise StoreError(f"{directory} is in use by another sweep (pid {holder}); wait for it to finish "
                             "or choose another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def keys(records: Iterable[RunRecord]) -> set[str]:
    """The run keys of ``records``."""
    return {r.key for r in records}
