"""``results.jsonl``: one JSON record per finished run, appended atomically enough that a kill loses no finished run.

Each record is one line, written with a single ``write`` of the whole line, then flushed and
fsynced. A run killed mid-way has written nothing. On reading, a corrupt or partial line is
reported by line number and skipped; it is never silently dropped.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

RECORD_SCHEMA_VERSION = 1
RESULTS_FILE = "results.jsonl"
SWEEP_FILE = "sweep.json"


@dataclass(frozen=True)
class Problem:
    """A line of results.jsonl that could not be read.

    Attributes:
        line: 1-based line number.
        reason: What is wrong with it.
    """

    line: int
    reason: str

    def __str__(self) -> str:
        return f"{RESULTS_FILE} line {self.line}: {self.reason}; skipped"


def append_record(directory: Path, record: dict[str, Any]) -> None:
    """Append one record as a line, flushed and fsynced."""
    line = json.dumps({"schema_version": RECORD_SCHEMA_VERSION, **record}, sort_keys=True) + "\n"
    fd = os.open(directory / RESULTS_FILE, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        data = line.encode("utf-8")
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            # A run killed while writing left half a line: start on a fresh line so only it is lost.
            data = b"\n" + data
        written = os.write(fd, data)
        if written != len(data):  # a short write would leave half a line: finish it
            os.write(fd, data[written:])
        os.fsync(fd)
    finally:
        os.close(fd)


def read_records(directory: Path) -> tuple[list[dict[str, Any]], list[Problem]]:
    """Every valid record, and the problems of the lines that were not."""
    path = directory / RESULTS_FILE
    records, problems = [], []
    if not path.exists():
        return records, problems
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                problems.append(Problem(number, f"not valid JSON ({exc.msg} at column {exc.colno})"))
                continue
            if not isinstance(record, dict) or "key" not in record:
                problems.append(Problem(number, "not a run record (no 'key')"))
                continue
            if record.get("schema_version") != RECORD_SCHEMA_VERSION:
                problems.append(Problem(number, f"schema_version {record.get('schema_version')!r}, "
                                                f"expected {RECORD_SCHEMA_VERSION}"))
                continue
            if not line.endswith("\n"):
                problems.append(Problem(number, "incomplete last line (the run was interrupted while writing)"))
                continue
            missing = _missing_fields(record)
            if missing:
                problems.append(Problem(number, f"run record without {', '.join(missing)}"))
                continue
            records.append(record)
    return records, problems


#: Fields every run record must have for the analysis (dotted paths).
REQUIRED_FIELDS = ("model", "dataset", "lambda", "seed", "test_accuracy", "activation_energy",
                   "inference.net_energy_j_per_workload", "inference.duration_s_per_workload",
                   "inference.measurement.provenance", "train")


def _missing_fields(record: dict[str, Any]) -> list[str]:
    missing = []
    for path in REQUIRED_FIELDS:
        node: Any = record
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                missing.append(path)
                break
            node = node[part]
    return missing


def unique_by_key(records: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Records with their first occurrence per run key."""
    seen = set()
    for record in records:
        if record["key"] not in seen:
            seen.add(record["key"])
            yield record


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to a temporary file and rename it into place."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
