"""``energymeter devices`` and ``energymeter measure -- CMD``: the core's own subcommands (no torch, no analysis)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from .cliargs import EXIT_CANNOT_EXECUTE, EXIT_INTERRUPTED, EXIT_NOT_FOUND, EXIT_OK, UsageError, positive

#: ``devices --characterise-s``'s default: the longest each backend's counters are polled (s).
CHARACTERISE_S = 2.0


def configure_devices(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``devices``."""
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--characterise", action="store_true",
                        help="also time each hardware counter's updates here: update period, resolution, idle power")
    parser.add_argument("--characterise-s", type=positive, default=CHARACTERISE_S, metavar="SECONDS",
                        help=f"the longest each backend's counters are polled (default {CHARACTERISE_S:g})")
    parser.set_defaults(func=_devices)


def _devices(args: argparse.Namespace) -> int:
    from . import backends
    from .display import format_characters, format_statuses

    statuses = backends.available()
    characters = None
    if args.characterise:
        from .characterise import characterise_backends

        found = characterise_backends([s.name for s in statuses if s.available], max_duration_s=args.characterise_s)
        characters = list(found.values())
    if args.json:
        listed = [s.to_dict() for s in statuses]
        print(json.dumps(listed if characters is None else {"backends": listed,
                                                            "counters": [c.to_dict() for c in characters]}, indent=2))
    else:
        print(format_statuses(statuses))
        if characters is not None:
            print(format_characters(characters))
    return EXIT_OK


def configure_measure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``measure``."""
    parser.usage = ("energymeter measure [--backend NAME]... [--json] [-o FILE] [--timeline OUT.png|OUT.html "
                    "[--timeline-period-s S]] -- CMD [ARGS...]")
    parser.add_argument("--backend", action="append", metavar="NAME",
                        help="backend to use (repeatable); default: every available energy backend")
    parser.add_argument("--json", action="store_true", help="print the Measurement as JSON")
    parser.add_argument("-o", "--output", metavar="FILE", help="also write the Measurement as JSON to FILE")
    parser.add_argument("--timeline", metavar="FILE", help="draw the power per domain over the run to FILE (.png, "
                        "or .html: one self-contained page), the window's edges marked (needs matplotlib)")
    parser.add_argument("--timeline-period-s", type=positive, default=0.1, metavar="S",
                        help="seconds between the timeline's samples (default 0.1)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    parser.set_defaults(func=_measure)


def _check_output(path: str, flag: str = "-o") -> None:
    """Refuse an output file that could not be written, before the command runs."""
    if not path.strip():
        raise UsageError(f"energymeter measure: {flag} needs a file name")
    if os.path.isdir(path):
        raise UsageError(f"energymeter measure: {flag} {path} is a directory")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise UsageError(f"energymeter measure: {flag} {path}: no such directory {parent}")
    if not os.access(parent, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise UsageError(f"energymeter measure: {flag} {path} is not writable")


def _measure(args: argparse.Namespace) -> int:
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
        kind = registry.backend_class(name).kind
        if kind in (registry.OPERATION_COUNTER, registry.SIMULATOR):
            raise UsageError(f"energymeter measure: the {name} backend ({kind}) counts work inside this process; "
                             "it cannot count another command's")
    if args.output is not None:
        _check_output(args.output)
    period_s = None
    if args.timeline is not None:
        from . import timeline_plot

        if not args.timeline.lower().endswith(timeline_plot.FORMATS):
            raise UsageError(f"energymeter measure: --timeline {args.timeline}: give a file ending in "
                             f"{', '.join(timeline_plot.FORMATS)}")
        _check_output(args.timeline, "--timeline")
        timeline_plot.check_available()  # before the command runs, not after
        period_s = args.timeline_period_s
    meter = Meter(args.backend or registry.energy_names(), timeline_period_s=period_s)
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
    code = code if code >= 0 else 128 - code
    files = [(args.output, lambda: (json.dumps(result.to_dict(), indent=2) + "\n").encode("utf-8"))]
    if args.timeline:
        files.append((args.timeline, lambda: timeline_plot.render(result, args.timeline)))
    for path, data in files:
        if not path:
            continue
        try:
            _write_file(path, data())
        except (OSError, ValueError) as exc:
            # The command already ran: say why the file is missing, and keep its exit status when it failed.
            print(f"energymeter measure: cannot write {path}: {getattr(exc, 'strerror', None) or exc}",
                  file=sys.stderr)
            code = code or 2
    return code


def _write_file(path: str, data: bytes) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "xb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
