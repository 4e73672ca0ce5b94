"""RAPL read path cost: a reused window's two ``RaplSession.read()`` calls vs the 8 bare preads they need.

A fake two-socket powercap tree (2 packages + 2 dram zones) under a temporary directory; the same
counters are read with ``os.pread`` on kept-open descriptors (the floor) and through the session.
Both loops alternate in rounds so drift affects them alike; the figure is the median round.

    .venv/bin/python bench/bench_rapl_read.py [--rounds 21] [--n 20000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

from energymeter import Meter
from energymeter.backends.rapl import RaplBackend
from energymeter.testing import FakePowercap


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--n", type=int, default=20_000, help="windows per round")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tree = FakePowercap(tmp)
        tree.add_package(0, dram=True, energy_uj=123_456_789)
        tree.add_package(1, dram=True, energy_uj=987_654_321)
        session = RaplBackend(powercap_root=tree.root).open()
        meter = Meter(["rapl"], powercap_root=tree.root, sync=False)
        paths = [os.path.join(z.path, "energy_uj") for z in session.zones]
        fds = [os.open(p, os.O_RDONLY) for p in paths]
        pread, read, n = os.pread, session.read, args.n

        def bare() -> float:
            t0 = time.perf_counter()
            for _ in range(n):
                for fd in fds:
                    pread(fd, 32, 0)
                for fd in fds:
                    pread(fd, 32, 0)
            return (time.perf_counter() - t0) / n

        def reads() -> float:
            t0 = time.perf_counter()
            for _ in range(n):
                read()
                read()
            return (time.perf_counter() - t0) / n

        def window() -> float:
            begin, end = meter.begin_window, meter.end_window
            t0 = time.perf_counter()
            for _ in range(n):
                begin("w")
                end("w")
            return (time.perf_counter() - t0) / n

        rows: dict[str, list[float]] = {"8 bare preads": [], "2 x RaplSession.read()": [],
                                        "Meter(['rapl']) window": []}
        for _ in range(args.rounds):
            rows["8 bare preads"].append(bare())
            rows["2 x RaplSession.read()"].append(reads())
            rows["Meter(['rapl']) window"].append(window())
        floor = statistics.median(rows["8 bare preads"])
        print(f"fake 2-socket tree, 4 zones; median of {args.rounds} rounds x {n} windows")
        for label, values in rows.items():
            median = statistics.median(values)
            print(f"  {label:<26} {median * 1e6:7.2f} us   {median / floor:5.2f}x the preads")
        for fd in fds:
            os.close(fd)
        session.close()
        meter.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
