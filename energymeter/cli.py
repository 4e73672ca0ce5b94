"""The ``energymeter`` command.

Exit codes:
    0: success.
    2: bad input (unknown flag, backend, model or dataset; malformed values or files): one line on stderr.
    126 / 127: ``measure``'s command could not be executed / was not found.
    130: interrupted (Ctrl-C).
    Otherwise ``measure`` exits with its command's own exit code.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from typing import Any, Sequence

from .errors import EnergymeterError

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_CANNOT_EXECUTE = 126
EXIT_NOT_FOUND = 127
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """Bad input from the user: reported as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line instead of usage + message
        raise UsageError(f"{self.prog}: {message}")


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def number(text: str) -> float:
    """argparse type: a float, with a one-line error."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def _cmd_devices(args: argparse.Namespace) -> int:
    from . import backends
    from .display import format_statuses

    statuses = backends.available()
    if args.json:
        print(json.dumps([s.to_dict() for s in statuses], indent=2))
    else:
        print(format_statuses(statuses))
    return EXIT_OK


def _cmd_measure(args: argparse.Namespace) -> int:
    from . import backends as registry
    from .display import format_measurement
    from .meter import Meter

    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise UsageError("energymeter measure: give the command to run after --")
    for name in args.backend or ():
        if name not in registry.names():
            raise UsageError(f"energymeter measure: unknown backend {name!r}; known: {', '.join(registry.names())}")
    if args.backend and "flops" in args.backend:
        raise UsageError("energymeter measure: the flops backend counts torch operators in this process; "
                         "it cannot count another command's")
    meter = Meter(args.backend or registry.hardware_energy_names())
    try:
        meter.begin_window("command")
        try:
            code = subprocess.call(command)
        except FileNotFoundError:
            print(f"energymeter measure: command not found: {command[0]}", file=sys.stderr)
            code = EXIT_NOT_FOUND
        except PermissionError:
            print(f"energymeter measure: cannot execute: {command[0]}", file=sys.stderr)
            code = EXIT_CANNOT_EXECUTE
        except KeyboardInterrupt:
            code = EXIT_INTERRUPTED
        result = meter.end_window("command")
    finally:
        meter.close()
    text = json.dumps(result.to_dict(), indent=2) if args.json else format_measurement(result)
    print(text, file=sys.stderr)
    if args.output:
        _write_json(args.output, result.to_dict())
    return code if code >= 0 else 128 - code


def _write_json(path: str, data: Any) -> None:
    try:
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2)
            handle.write("\n")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from exc


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (subcommands register themselves here)."""
    parser = _Parser(prog="energymeter", description="Measure the energy of PyTorch work and check its proxies.")
    from ._version import __version__

    parser.add_argument("--version", action="version", version=f"energymeter {__version__}")
    sub = parser.add_subparsers(dest="subcommand", required=True, parser_class=_Parser)

    devices = sub.add_parser("devices", help="list every backend, available or not, and why")
    devices.add_argument("--json", action="store_true", help="print JSON instead of a table")
    devices.set_defaults(func=_cmd_devices)

    measure = sub.add_parser("measure", help="run a command and print the energy it drew (on stderr)",
                             usage="energymeter measure [--backend NAME]... [--json] [-o FILE] -- CMD [ARGS...]")
    measure.add_argument("--backend", action="append", metavar="NAME",
                         help="backend to use (repeatable); default: every available energy backend")
    measure.add_argument("--json", action="store_true", help="print the Measurement as JSON")
    measure.add_argument("-o", "--output", metavar="FILE", help="also write the Measurement as JSON to FILE")
    measure.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    measure.set_defaults(func=_cmd_measure)

    from . import demo
    from .models import cli as models_cli
    from .validation import cli as validation_cli

    for register in (validation_cli.register, models_cli.register, demo.register):
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return int(args.func(args))
    except UsageError as exc:
        print(f"error: {exc}" if not str(exc).startswith("energymeter") else f"{exc}", file=sys.stderr)
        return EXIT_USAGE
    except EnergymeterError as exc:
        print(f"energymeter: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("energymeter: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
