"""The ``energymeter`` command.

Exit codes:
    0: success.
    2: bad input (unknown flag, backend, model or dataset; malformed values or files): one line on stderr.
    126 / 127: ``measure``'s command could not be executed / was not found.
    130: interrupted (Ctrl-C).
    Otherwise ``measure`` exits with its command's own exit code.

Start-up stays cheap: every subcommand is listed with its help here, but its module is imported
(and its arguments defined) only when that subcommand runs. ``devices`` and ``measure`` import
neither torch nor the analysis stack.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Sequence

from .cliargs import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, UsageError
from .errors import EnergymeterError

#: subcommand -> ("module:configure", one-line help). ``configure(parser)`` adds the arguments and
#: sets ``func``; it is called only for the subcommand that runs.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "devices": ("energymeter.cli_measure:configure_devices", "list every backend, available or not, and why"),
    "measure": ("energymeter.cli_measure:configure_measure", "run a command and print the energy it drew (on stderr)"),
    "train": ("energymeter.models.cli:configure",
              "train one subject model with L = CE + lambda * E and print the result"),
    "validate": ("energymeter.validation.cli:configure_validate",
                 "run the lambda sweep on this device and write the reports"),
    "report": ("energymeter.validation.cli:configure_report", "write the reports of a sweep directory"),
    "demo": ("energymeter.demo:configure", "measure real training steps of a small MLP on scikit-learn's digits"),
    "serve": ("energymeter.cli_serve:configure",
              "serve joules and power per domain to Prometheus (loopback unless --host says otherwise)"),
}


#: A missing import -> the extra that installs it (``pip install 'energymeter[EXTRA]'``).
EXTRA_OF = {"torch": "torch", "numpy": "torch", "sklearn": "validate", "scipy": "validate", "statsmodels": "validate",
            "pandas": "validate", "matplotlib": "validate", "mlxtend": "validate", "ray": "ray", "pynvml": "nvml",
            "amdsmi": "amd", "codecarbon": "carbon", "fvcore": "fvcore", "prometheus_client": "prometheus",
            "IPython": "notebook"}


def _missing_extra(exc: ModuleNotFoundError, command: str | None) -> str | None:
    """One line naming the extra to install, for a library an extra provides; None for anything else."""
    top = (exc.name or "").split(".")[0]
    extra = EXTRA_OF.get(top)
    if extra is None:
        return None
    where = f"energymeter {command}" if command else "energymeter"
    return f"{where}: needs {top}, which is not installed: pip install 'energymeter[{extra}]'"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line instead of usage + message
        raise UsageError(f"{self.prog}: {message}")


def _chosen(argv: Sequence[str]) -> str | None:
    """The subcommand named in ``argv`` (the first argument that is not an option)."""
    for arg in argv:
        if not arg.startswith("-"):
            return arg if arg in SUBCOMMANDS else None
    return None


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The argument parser; only the subcommand named in ``argv`` gets its arguments (and its module imported)."""
    from ._version import __version__

    parser = _Parser(prog="energymeter", description="Measure the energy of PyTorch work and check its proxies.")
    parser.add_argument("--version", action="version", version=f"energymeter {__version__}")
    sub = parser.add_subparsers(dest="subcommand", required=True, parser_class=_Parser)
    chosen = _chosen(argv)
    for name, (target, help_text) in SUBCOMMANDS.items():
        subparser = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            module_name, _, function = target.partition(":")
            getattr(importlib.import_module(module_name), function)(subparser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser(argv).parse_args(argv)
        return int(args.func(args))
    except ModuleNotFoundError as exc:
        line = _missing_extra(exc, _chosen(argv))
        if line is None:
            raise
        print(line, file=sys.stderr)
        return EXIT_USAGE
    except UsageError as exc:
        text = str(exc)
        print(text if text.startswith("energymeter") else f"error: {text}", file=sys.stderr)
        return EXIT_USAGE
    except EnergymeterError as exc:
        print(f"energymeter: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("energymeter: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (``energymeter devices | head``): nothing more to say to it. Point stdout at
        # /dev/null so the interpreter's last flush does not complain either.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
