"""A Ray cluster's address, checked for form before anything is written, and reached within a timeout.

Forms accepted (Ray's own): ``auto`` (the cluster ``ray start`` left on this host, or ``RAY_ADDRESS``),
``HOST:PORT`` (a cluster's GCS, as ``ray start --head`` prints it) and ``ray://HOST:PORT`` (the Ray Client,
which needs ``pip install 'ray[client]'``). HOST is a DNS name, an IPv4 address (four octets of 0-255) or
an IPv6 address in brackets; PORT is 1-65535. Anything else is refused with one line, before the sweep
writes ``sweep.json`` or takes its lock, and so is an address where nothing accepts a TCP connection
within the timeout (``ray.init`` would otherwise retry for minutes).
"""

from __future__ import annotations

import importlib.util
import ipaddress
import re
import socket
from dataclasses import dataclass

from .config import SweepError

#: Seconds to wait for a cluster to accept a connection (``--ray-timeout-s``).
DEFAULT_CONNECT_TIMEOUT_S = 30.0
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)\Z")
_FORMS = "use auto, HOST:PORT (e.g. 127.0.0.1:6379) or ray://HOST:PORT"


@dataclass(frozen=True)
class RayAddress:
    """A checked address: ``text`` as given, and the host and port a TCP probe reaches (None for ``auto``)."""

    text: str
    host: str | None = None
    port: int | None = None
    client: bool = False


def _host(host: str) -> str | None:
    """The host in a form ``socket`` takes, or None when it is not a host name or address."""
    if host.startswith("[") and host.endswith("]"):
        try:
            return str(ipaddress.IPv6Address(host[1:-1]))
        except ValueError:
            return None
    if re.fullmatch(r"[0-9.]+", host):  # dotted digits are an IPv4 address or nothing (256.1.1.1 is nothing)
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            return None
    labels = host.rstrip(".").split(".")
    if len(host) > 253 or not all(_LABEL.match(label) for label in labels) or labels[-1].isdigit():
        return None
    return host


def parse_ray_address(text: str) -> RayAddress:
    """Check ``text`` as a Ray address (see the module docstring).

    Raises:
        SweepError: not one of the forms, a host or port out of range, or ``ray://`` without the Ray Client.
    """
    if not isinstance(text, str) or not text.isascii() or not text.strip():
        raise SweepError(f"--ray-address {text!r:.80}: not an address; {_FORMS}")
    if text == "auto":
        return RayAddress(text)
    client = text.startswith("ray://")
    rest = text[len("ray://"):] if client else text
    if "://" in rest or "/" in rest:
        raise SweepError(f"--ray-address {text!r:.80}: not a Ray address (no scheme but ray://, no path); {_FORMS}")
    host, sep, port_text = rest.rpartition(":")
    if not sep or not port_text.isdigit() or not port_text.isascii() or len(port_text) > 5:
        raise SweepError(f"--ray-address {text!r:.80}: needs a port; {_FORMS}")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise SweepError(f"--ray-address {text!r:.80}: port {port} is not in 1-65535")
    checked = _host(host)
    if checked is None:
        raise SweepError(f"--ray-address {text!r:.80}: {host!r:.80} is not a host name or an IP address")
    if client and importlib.util.find_spec("grpc") is None:
        raise SweepError(f"--ray-address {text}: the Ray Client (ray://) needs pip install 'ray[client]'; or give "
                         "the cluster's GCS address HOST:PORT from this host")
    return RayAddress(text, checked, port, client)


def probe(address: RayAddress, timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S) -> None:
    """Check that something accepts a TCP connection at ``address`` within ``timeout_s`` (``auto``: nothing to do).

    Raises:
        SweepError: the host does not resolve, or nothing accepts the connection in time.
    """
    if address.host is None or address.port is None:
        return
    try:
        with socket.create_connection((address.host, address.port), timeout=timeout_s):
            pass
    except socket.gaierror as exc:
        raise SweepError(f"--ray-address {address.text}: the host does not resolve ({exc.strerror})") from None
    except TimeoutError:
        raise SweepError(f"--ray-address {address.text}: nothing answered within {timeout_s:g} s (is the cluster "
                         "up and reachable? raise --ray-timeout-s for a slow network)") from None
    except OSError as exc:
        raise SweepError(f"--ray-address {address.text}: nothing listens there ({exc.strerror or exc}); start "
                         "the cluster with `ray start --head`, or leave --ray-address out for a local "
                         "instance") from None
