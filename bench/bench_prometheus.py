"""What one scrape of the Prometheus endpoint costs (issue 19): CPU time per scrape, and where it goes.

``serve(["rapl"])`` on one fake two-socket powercap tree (4 zones, so 4 domains x 3 metric families). Rows:

* a full HTTP scrape (``urllib`` GET of ``/metrics`` over loopback), on the CPU time of the whole process,
  which counts the endpoint's server thread and the client alike (both run here);
* rendering the exposition text alone (``prometheus_client.generate_latest`` of the endpoint's registry: the
  sessions' reads, the metric families, the text), on the calling thread's CPU time;
* the sessions' cumulative read alone (what every scrape must do at least).

Variants run in interleaved rounds (their order alternates), each on its own clock as above; median [quartiles]
and a distribution-free 95% interval of the median, per call. Nothing is asserted. The endpoint's background
power sampling (one read per ``power_period_s``) is not in a scrape; ``bench/bench_timeline.py`` times one.
Run: ``.venv/bin/python bench/bench_prometheus.py``.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
import urllib.request
from typing import Callable

from bench_window import median_ci, quartiles, two_socket_tree
from energymeter.integrations.prometheus import serve
from energymeter.timeline import cumulative

ROUNDS = 31
NUMBER = 50


def per_call_s(fn: Callable[[], object], clock: Callable[[], float], number: int) -> float:
    start = clock()
    for _ in range(number):
        fn()
    return (clock() - start) / number


def main() -> int:
    from prometheus_client import CollectorRegistry, generate_latest

    from energymeter.integrations.prometheus import _Collector

    tmp = tempfile.mkdtemp(prefix="energymeter-bench-")
    tree, _ = two_socket_tree(f"{tmp}/powercap")
    with serve(["rapl"], port=0, powercap_root=tree.root) as endpoint:
        own = CollectorRegistry(auto_describe=False)
        own.register(_Collector(endpoint))
        url = endpoint.url
        variants = {
            "http scrape": (lambda: urllib.request.urlopen(url).read(), time.process_time),
            "render": (lambda: generate_latest(own), time.thread_time),
            "read": (lambda: cumulative(endpoint._plans), time.thread_time),
        }
        for fn, clock in variants.values():
            per_call_s(fn, clock, 5)
        times: dict[str, list[float]] = {name: [] for name in variants}
        names = list(variants)
        for r in range(ROUNDS):
            for name in names if r % 2 == 0 else names[::-1]:
                fn, clock = variants[name]
                times[name].append(per_call_s(fn, clock, NUMBER))
        size = len(urllib.request.urlopen(url).read())
    print(f"{ROUNDS} interleaved rounds x {NUMBER} calls; fake tree of 4 RAPL zones; a scrape is {size} bytes")
    for name, clock_name in (("http scrape", "process CPU, server + client"), ("render", "thread CPU"),
                             ("read", "thread CPU")):
        values = [t * 1e6 for t in times[name]]
        q1, med, q3 = quartiles(values)
        low, high = median_ci(values)
        print(f"  {name:<12} {med:8.1f} us per call [{q1:.1f}, {q3:.1f}]  median 95% CI [{low:.1f}, {high:.1f}]  "
              f"({clock_name})")
    print(f"  render / http scrape: {statistics.median(times['render']) / statistics.median(times['http scrape']):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
