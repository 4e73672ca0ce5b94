"""The prepared GPU hardware check (issue 2, part 7): run it once on a machine with an NVIDIA GPU.

It prints `energymeter devices`, then measures one fixed matmul workload through the NVML energy
counter (provenance measured) and, in the same window, through NVML power sampling (integrated),
and prints their ratio. Usage, from the repository root with the package installed:

    python docs/hardware-checks/gpu_check.py [--seconds 20] [--size 8192] > docs/hardware-checks/<gpu>-<date>.txt

``--fake`` runs the same script against energymeter.testing.FakeNVML on the CPU, so the script
itself is tested without a GPU (its numbers then mean nothing).
"""

from __future__ import annotations

import argparse
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each measured window (s)")
    parser.add_argument("--size", type=int, default=8192, help="matrix size n for n x n matmuls")
    parser.add_argument("--repeats", type=int, default=3, help="windows to measure")
    parser.add_argument("--fake", action="store_true", help="dry run with a fake NVML on the CPU")
    args = parser.parse_args(argv)

    import torch

    from energymeter import Meter, backends
    from energymeter.display import format_measurement, format_statuses

    options: dict = {}
    if args.fake:
        from energymeter.testing import FakeGpu, FakeNVML

        options["nvml_module"] = FakeNVML([FakeGpu()])
    else:
        print(format_statuses(backends.available()))
        print()
    device = "cuda:0" if torch.cuda.is_available() and not args.fake else "cpu"
    print(f"workload: {args.size}x{args.size} float32 matmuls on {device}, {args.seconds:g} s windows, "
          f"torch {torch.__version__}")
    counter = Meter(["nvml"], **options)
    sampling = Meter(["nvml"], nvml_mode="sampling", sample_period_s=0.02, **options)
    a = torch.randn(args.size, args.size, device=device)
    b = torch.randn(args.size, args.size, device=device)
    for _ in range(3):
        a @ b  # warm-up outside the windows
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    for repeat in range(args.repeats):
        counter.begin_window("w")
        sampling.begin_window("w")
        start = time.perf_counter()
        matmuls = 0
        while time.perf_counter() - start < args.seconds:
            a @ b
            matmuls += 1
            if device.startswith("cuda") and matmuls % 16 == 0:
                torch.cuda.synchronize()
        m_sampling = sampling.end_window("w")
        m_counter = counter.end_window("w")
        flop = 2 * args.size ** 3 * matmuls
        print(f"\nwindow {repeat + 1}: {matmuls} matmuls = {flop / 1e12:.1f} TFLOP in {m_counter.duration_s:.2f} s")
        print(format_measurement(m_counter))
        print(format_measurement(m_sampling))
        for domain, joules in m_counter.energy_j.items():
            other = m_sampling.energy_j.get(domain)
            if not joules > 0:
                print(f"  {domain}: the counter read {joules:g} J: no ratio (a fake GPU, or a window too short)")
            elif other is not None:
                print(f"  {domain}: counter {joules:.1f} J ({m_counter.provenance[domain]}), sampling {other:.1f} J "
                      f"({m_sampling.provenance[domain]}): sampling / counter = {other / joules:.3f}; "
                      f"{flop / joules / 1e9:.1f} GFLOP/J by the counter")
    counter.close()
    sampling.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
