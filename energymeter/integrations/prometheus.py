"""A Prometheus scrape endpoint: cumulative joules per domain as counters, power per domain as gauges.

``serve()`` (or ``energymeter serve``) opens one long-lived ``Meter`` and keeps one window of it open for as long
as the endpoint runs, so every session's background work runs throughout (the RAPL wrap poller folds each
counter wrap into the totals). A scrape reads every session's cumulative joules at that moment:

* ``energymeter_energy_joules_total{domain, provenance, device}``: joules since the meter's sessions opened (a
  counter; a restart resets it, which Prometheus's ``rate()`` and ``increase()`` expect);
* ``energymeter_power_watts{domain, provenance, device}``: mean power over the latest ``power_period_s`` (a gauge,
  from the difference of two samples taken by the shared poller thread; absent until two exist);
* ``energymeter_domain_up{domain, provenance, device}``: 1 while the domain reads, 0 while it is failed.

Nothing listens unless asked: the endpoint binds to the loopback interface by default (``host="0.0.0.0"``
exposes it to the network, on purpose only). ``prometheus_client`` is imported when an endpoint starts (the
``prometheus`` extra).
"""

from __future__ import annotations

import threading
import time
from typing import Any, Iterator, Sequence

from .. import backends as registry
from ..backends.base import Poller, Reading
from ..meter import Meter
from ..timeline import check_period, cumulative, power_w

#: Loopback: a scrape endpoint is reachable from this machine only, unless the caller names another address.
DEFAULT_HOST = "127.0.0.1"
#: The port ``energymeter serve`` listens on unless told otherwise.
DEFAULT_PORT = 9477
_LABELS = ("domain", "provenance", "device")


class Endpoint:
    """A running scrape endpoint; ``stop()`` (or leaving ``with``) shuts it and closes what it opened.

    Attributes:
        host: The address it listens on.
        port: The port it listens on (the one the system chose, where 0 was asked).
        meter: The meter whose sessions it reads.
    """

    def __init__(self, meter: Meter, owns_meter: bool, host: str, port: int, power_period_s: float) -> None:
        from prometheus_client import CollectorRegistry, start_http_server

        self.meter = meter
        self._owns_meter = owns_meter
        self._window = f"energymeter-serve-{id(self)}"
        self._plans = meter._plans
        self._lock = threading.Lock()
        self._samples: list[tuple[float, Reading]] = []  # the latest two, for the power gauge
        meter.begin_window(self._window)  # keeps the sessions' pollers running while the endpoint lives
        self._poller = Poller(self._sample, power_period_s, "energymeter-prometheus")
        self._stopped = False
        try:
            self._sample()
            self._poller.start()
            collectors = CollectorRegistry(auto_describe=False)
            collectors.register(_Collector(self))
            self._server, self._thread = start_http_server(port, addr=host, registry=collectors)
        except BaseException:
            self._shut_meter()
            raise
        self.host = host
        self.port = int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The address to scrape (``http://host:port/metrics``)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def _sample(self) -> None:
        reading = cumulative(self._plans)
        with self._lock:
            self._samples = [*self._samples[-1:], (time.monotonic(), reading)]

    def power_w(self) -> dict[str, float]:
        """Mean power per domain between the latest two samples (W); empty before two exist."""
        with self._lock:
            if len(self._samples) < 2:
                return {}
            (t0_s, before), (t1_s, after) = self._samples
        return power_w(before, after, t1_s - t0_s) if t1_s > t0_s else {}

    def read(self) -> Reading:
        """Every session's cumulative joules now (what a scrape reports)."""
        return cumulative(self._plans)

    def stop(self) -> None:
        """Stop listening, stop sampling, and close the meter where ``serve`` opened it (idempotent)."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        self._shut_meter()

    def _shut_meter(self) -> None:
        self._poller.close()
        try:
            self.meter.end_window(self._window)
        except (KeyError, RuntimeError):
            pass  # the caller's meter was closed under the endpoint: nothing left to end
        if self._owns_meter:
            self.meter.close()

    def __enter__(self) -> "Endpoint":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class _Collector:
    """Builds the metric families at each scrape from the endpoint's sessions."""

    def __init__(self, endpoint: Endpoint) -> None:
        self._endpoint = endpoint

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        endpoint = self._endpoint
        reading = endpoint.read()
        watts = endpoint.power_w()
        energy = CounterMetricFamily("energymeter_energy_joules", "Joules drawn per domain since the meter's sessions "
                                     "opened (provenance: measured, integrated or modeled)", labels=_LABELS)
        power = GaugeMetricFamily("energymeter_power_watts", "Mean power per domain over the latest sampling period",
                                  labels=_LABELS)
        up = GaugeMetricFamily("energymeter_domain_up", "1 while the domain reads, 0 while it is failed",
                               labels=_LABELS)
        for name, domain in endpoint.meter.domains.items():
            labels = [name, domain.provenance, domain.device_id]
            if name in reading.energy_j:
                energy.add_metric(labels, reading.energy_j[name])
            if name in watts:
                power.add_metric(labels, watts[name])
            up.add_metric(labels, 0.0 if name in reading.failed or name not in reading.energy_j else 1.0)
        yield from (energy, power, up)


def serve(backends: Sequence[str] | None = None, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          meter: Meter | None = None, power_period_s: float = 1.0, missing: str = "raise",
          **options: Any) -> Endpoint:
    """Start a scrape endpoint (see the module docstring); returns it running.

    Args:
        backends: Energy backend names; None means every available one that measures or models energy here
            (``energymeter.backends.energy_names()``: no FLOP counter, no simulator).
        host: The address to listen on (loopback by default).
        port: The port (0: any free one, then read ``Endpoint.port``).
        meter: Read this meter's sessions instead of opening one (the endpoint keeps a window of it open and
            leaves it open when it stops).
        power_period_s: Seconds between the samples the power gauge is the difference of.
        missing: ``"raise"`` or ``"skip"`` for named backends that cannot run here (see ``Meter``).
        **options: Backend options, as for ``Meter`` (``powercap_root``, ...).

    Raises:
        ValueError: a bad ``power_period_s`` or ``port``.
        TypeError: ``meter`` given together with backends or options.
        OSError: the address cannot be bound (a port in use).
    """
    period_s = check_period(power_period_s)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"port must be an integer from 0 to 65535, not {port!r}")
    if meter is not None and (backends is not None or options):
        raise TypeError("serve(meter=...) reads that meter's sessions: give backends and options to the Meter")
    owns = meter is None
    if meter is None:
        names = registry.energy_names() if backends is None else [backends] if isinstance(backends, str) else backends
        meter = Meter(names, sync=False, missing=missing, **options)
    try:
        return Endpoint(meter, owns, host, port, period_s)
    except BaseException:
        if owns:
            meter.close()
        raise
