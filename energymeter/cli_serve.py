"""``energymeter serve``: a Prometheus scrape endpoint until Ctrl-C or SIGTERM (see ``energymeter.integrations``)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from .cliargs import EXIT_INTERRUPTED, EXIT_OK, UsageError, positive


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be from 0 to 65535: {text!r}")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``serve``."""
    from .integrations.prometheus import DEFAULT_HOST, DEFAULT_PORT

    parser.add_argument("--backend", action="append", metavar="NAME",
                        help="backend to serve (repeatable); default: every available energy backend")
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help=f"address to listen on (default {DEFAULT_HOST}: this machine only)")
    parser.add_argument("--port", type=_port, default=DEFAULT_PORT,
                        help=f"port to listen on (default {DEFAULT_PORT}; 0: any free one, printed)")
    parser.add_argument("--power-period-s", type=positive, default=1.0, metavar="S",
                        help="seconds between the samples the power gauge is computed from (default 1)")
    parser.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    from . import backends as registry
    from .integrations.prometheus import serve

    for name in args.backend or ():
        if name in registry.names() and registry.backend_class(name).kind in (registry.OPERATION_COUNTER,
                                                                              registry.SIMULATOR):
            raise UsageError(f"energymeter serve: the {name} backend counts work inside a window; it has no "
                             "energy to serve")
    try:
        endpoint = serve(args.backend, host=args.host, port=args.port, power_period_s=args.power_period_s)
    except OSError as exc:
        raise UsageError(f"energymeter serve: cannot listen on {args.host}:{args.port}: "
                         f"{exc.strerror or exc}") from None
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        domains = ", ".join(endpoint.meter.domains) or "none"
        print(f"energymeter serve: {endpoint.url} (domains: {domains}); Ctrl-C stops", file=sys.stderr, flush=True)
        while not stop.wait(3600):
            pass
        return EXIT_OK
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous)
        endpoint.stop()
