"""Cost of one ``energymeter.distributed.aggregate()`` call for 4 ranks on gloo, against a bare ``all_gather_object``.

``.venv/bin/python bench/bench_aggregate.py [--ranks 4] [--blocks 31] [--calls 50]`` spawns the ranks
(torch.multiprocessing, gloo over 127.0.0.1), two per simulated host. Each rank holds a realistic window:
two sockets' package and DRAM, two GPUs (one shared with the other rank of its host), ``cpu:model``,
FLOPs and a warning. Blocks of ``aggregate()`` calls alternate with blocks of ``all_gather_object`` of
the same payload (what ``aggregate()`` sends), each block after a barrier, so drift on a shared machine
hits both alike; the ratio is taken block by block (paired) and reported as median [quartiles]. Rank 0
times its blocks; collectives make every rank wait for the slowest. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import time


def rank_window(rank: int):
    from energymeter import Measurement

    shared, own = f"GPU-host{rank // 2}-shared", f"GPU-rank{rank}"
    energy = {"cpu:0:package": 50.0 + rank * 0.01, "cpu:0:dram": 8.0, "cpu:1:package": 48.0, "cpu:1:dram": 7.5,
              "gpu:0": 210.0, "gpu:1": 190.0, "cpu:model": 12.0}
    provenance = {d: "modeled" if d == "cpu:model" else "measured" for d in energy}
    devices = {"cpu:0:package": "/sys/class/powercap/intel-rapl:0", "cpu:0:dram": "/sys/class/powercap/intel-rapl:0:0",
               "cpu:1:package": "/sys/class/powercap/intel-rapl:1", "cpu:1:dram": "/sys/class/powercap/intel-rapl:1:0",
               "gpu:0": own, "gpu:1": shared}
    return Measurement(name="step", duration_s=0.25 + rank * 1e-4, energy_j=energy, provenance=provenance,
                       flops=10**12, warnings=("gpu:0: example warning",), start_time_s=1.7e9, devices=devices)


def worker(rank: int, world: int, port: int, blocks: int, calls: int) -> None:
    import torch
    import torch.distributed as dist

    from energymeter.distributed import aggregate, host_id, merge
    from energymeter import Measurement

    torch.set_num_threads(1)
    os.environ["ENERGYMETER_HOST_ID"] = f"sim-host-{rank // 2}"
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    window = rank_window(rank)
    payload = {"rank": rank, "host": host_id(), "measurement": window.to_dict()}
    gathered: list = [None] * world

    def agg() -> None:
        aggregate(window)

    def bare() -> None:
        dist.all_gather_object(gathered, payload)

    def block(fn) -> float:
        dist.barrier()
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        return (time.perf_counter() - start) / calls

    for _ in range(3):  # warm-up: connections, pickler, first-call imports
        block(agg)
        block(bare)
    agg_s, bare_s, ratios = [], [], []
    for i in range(blocks):
        # Alternate which goes first, so neither always follows the other.
        if i % 2:
            b = block(bare)
            a = block(agg)
        else:
            a = block(agg)
            b = block(bare)
        agg_s.append(a)
        bare_s.append(b)
        ratios.append(a / b)
    result = aggregate(window)
    pairs = [(p["host"], Measurement.from_dict(p["measurement"])) for p in gathered]
    start = time.perf_counter()
    for _ in range(calls * 10):
        merge(pairs, ranks=[p["rank"] for p in gathered])
    merge_s = (time.perf_counter() - start) / (calls * 10)
    if rank == 0:
        naive_j = sum(rank_window(r).total_energy_j for r in range(world))
        q = statistics.quantiles(ratios, n=4)
        print(f"aggregate() over {world} ranks on {(world + 1) // 2} simulated host(s) (2 ranks each), "
              f"gloo on 127.0.0.1, torch {torch.__version__}, {os.cpu_count()} CPU(s); "
              f"{blocks} paired blocks of {calls} calls; 1-min load average at the end "
              f"{os.getloadavg()[0]:.1f}:")
        for label, samples in (("aggregate():                   ", agg_s),
                               ("all_gather_object, same payload:", bare_s)):
            low, _, high = statistics.quantiles(samples, n=4)
            print(f"  {label} median {statistics.median(samples) * 1e6:8.1f} us per call "
                  f"[quartiles {low * 1e6:.1f}, {high * 1e6:.1f}]")
        print(f"  aggregate / bare, paired by block: median {statistics.median(ratios):.2f}x "
              f"[quartiles {q[0]:.2f}x, {q[2]:.2f}x]")
        print(f"  of which merge() alone (rank 0, no collective, mean of {calls * 10}): {merge_s * 1e6:.1f} us")
        print(f"  payload: {len(str(payload))} characters as repr; the aggregate has {len(result.energy_j)} domains, "
              f"total {result.total_energy_j:.2f} J against {naive_j:.2f} J from one tracker per rank")
    dist.destroy_process_group()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, default=4)
    parser.add_argument("--blocks", type=int, default=31)
    parser.add_argument("--calls", type=int, default=50)
    args = parser.parse_args()
    import torch.multiprocessing as mp

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    mp.spawn(worker, args=(args.ranks, port, args.blocks, args.calls), nprocs=args.ranks, join=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
