"""Argument types and the usage error shared by every subcommand (the CLI's dispatch imports no subcommand
module until that subcommand runs, and subcommand modules import this, never ``energymeter.cli``)."""

from __future__ import annotations

import argparse
import math

from .errors import EnergymeterError

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_CANNOT_EXECUTE = 126
EXIT_NOT_FOUND = 127
EXIT_INTERRUPTED = 130


class UsageError(EnergymeterError):
    """Bad input from the user: reported as one line, exit status 2."""


#: The largest count any flag takes (steps, epochs, seeds, samples): beyond it a run would never end.
MAX_COUNT = 10**9
#: Seeds go to numpy and torch, whose seeds are unsigned 32-bit at the narrowest.
MAX_SEED = 2**32 - 1


def _int_within(text: str, low: int, high: int) -> int:
    if len(text) > 40:  # Python refuses int() of over 4,300 digits with a traceback-worthy message
        raise argparse.ArgumentTypeError(f"not an integer of at most 40 digits: {text[:20]!r}...")
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be at least {low}: {text!r}")
    if value > high:
        raise argparse.ArgumentTypeError(f"must be at most {high:,}: {text!r}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer from 1 to ``MAX_COUNT``."""
    return _int_within(text, 1, MAX_COUNT)


def seed(text: str) -> int:
    """argparse type: a seed, an integer from 0 to ``MAX_SEED``."""
    return _int_within(text, 0, MAX_SEED)


def finite(text: str) -> float:
    """argparse type: a finite float (nan and inf are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number: {text!r}")
    return value


def nonnegative(text: str) -> float:
    """argparse type: a finite float >= 0."""
    value = finite(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0: {text!r}")
    return value


def positive(text: str) -> float:
    """argparse type: a finite float > 0."""
    value = finite(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def nonempty_path(text: str) -> str:
    """argparse type: a path that is not the empty string (``--out ''`` would mean the current directory)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text
