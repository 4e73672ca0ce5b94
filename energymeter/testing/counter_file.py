"""Writes a fake counter file the way sysfs shows it: a concurrent reader never sees it empty or half-written."""

from __future__ import annotations

import os
from pathlib import Path


def write_counter(path: Path | str, value: int) -> None:
    """Write ``value`` to a counter file, in place when it exists.

    ``Path.write_text`` truncates first, so a reader polling in another thread or process (the RAPL wrap
    poller, another rank) can read an empty file and fail its zone. This overwrites the existing bytes in one
    ``pwrite`` instead, padded with spaces to the old length (``int()`` and the RAPL parser ignore them); a
    reader holding the file open (the RAPL session keeps a descriptor) sees the new value, as it would not after
    a rename.

    Args:
        path: The counter file; created (plainly) when it does not exist yet.
        value: The counter's new value, in the file's own unit.
    """
    text = f"{value}\n".encode()
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        Path(path).write_bytes(text)
        return
    try:
        old = os.fstat(fd).st_size
        os.pwrite(fd, text.ljust(old, b" "), 0)
    finally:
        os.close(fd)
