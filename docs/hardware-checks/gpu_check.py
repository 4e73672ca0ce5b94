"""The prepared GPU hardware check (issue 2, part 7; issue 11, part 8; issue 18, part 6): does E track GPU joules?

Run it once on a machine with an NVIDIA GPU. Within one time budget (``--budget-s``, default 360 s, so a
rerun fits a 15-minute GPU loan with a cold start) it prints:

1. ``energymeter devices``: every backend, available or not, and why; then the GPU's energy counter
   characterised (``energymeter.characterise``): its measured update period, resolution and idle power.
2. Counter against sampling: one fixed fp32 matmul workload measured in the same windows through the
   NVML energy counter (provenance measured) and through NVML power sampling (integrated), and their ratio.
3. The subject models: an MLP trained at lambda = 0 and at lambda = 1e-2 for 40 epochs (``--epochs``), long
   enough for their E to differ about 1000x, and the lambda = 0 network rescaled (``energymeter.models.rescale``
   by 1000 ** -0.5 = 1/31.6): the same function, the same zeros, about 1000x less E.
4. Data-dependent power: one fp16 GEMM shape fed five left operands (dense N(0, 1) random, the first hidden
   layer's post-ReLU activations of the lambda = 0 model, those of the lambda = 1e-2 model, the lambda = 0
   activations scaled by 1/31.6, and zeros), measured by the energy counter in interleaved windows. Per
   class: zero fraction, fp16 subnormal fraction, mean square (E per element), J per GEMM with a Student-t
   95% interval over windows, the ratio to dense random paired by round. Dense hardware multiplies zeros as
   it multiplies anything else, so data-dependent power (bits toggling in the multipliers) is the only
   physical path by which E could track joules there.
5. The three networks' inference on one large fixed batch (``--batch``, default 65,536 samples), in fp16
   and fp32: interleaved windows, ``--inference-rounds`` (15) rounds, each round a fresh random order of
   all six (network, dtype) conditions; J per sample with a Student-t interval, the ratio to the lambda = 0
   network paired by round, GEMM/s and counted TFLOP/s (the GPU as the bottleneck), then the suite's own
   decision rule as the verdict: the elasticity of J per sample on E within each round and
   ``elasticity_verdict`` (``validation/analysis/stats_elasticity.py``), the paired energy change
   (``energy_change``, ``stats_paired.py``) beside it.
6. ``energymeter validate --device cuda:0 --quick`` as a subprocess, only with ``--validate-reserve-s`` > 0
   (default 0: the inference of part 5 answers the question a 2-seed quick validation could not).

Usage, from the repository root with the package installed:

    .venv/bin/python docs/hardware-checks/gpu_check.py > docs/hardware-checks/<gpu>-<date>.txt

``--fake`` runs the same code paths on the CPU against ``energymeter.testing.FakeNVML`` with tiny sizes
(the numbers then mean nothing, except that the fake GPU charges each GEMM and each forward pass an energy
computed from its operand or its activations, so the tables' ratios and the verdicts can be checked
against a known rule); it skips the validate subprocess, which cannot reach a fake NVML.

Why the GEMM of part 4 is (4096 x 4096) @ (4096 x 4096) in fp16: fp16 GEMMs run on the tensor cores, the
units trained networks use on NVIDIA GPUs and the ones whose power is reported to vary most with operand
values; at 4096 the GEMM is compute-bound (about 137 GFLOP, arithmetic intensity about 1,365 FLOP/byte),
so the window's energy is the multipliers' and not the memory's; and fp16 keeps ten mantissa bits whose
toggling the inputs change. Only the left operand changes between classes; the right operand is one fixed
weight-like matrix, N(0, 1/4096), as the next layer's weights would be. Why the rescaled class: it keeps
the lambda = 0 zeros and lowers E 1000x, so it separates E's magnitude from its sparsity; its fp16
subnormal fraction says how many of its values the fp16 format can no longer hold at full precision.

Exit status: 0 done; 2 no CUDA device without ``--fake``, or bad input (one line on stderr).
"""

from __future__ import annotations

import argparse
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

#: The rescaling factor of E's symmetry: l2 E falls by 1 / RESCALE ** 2 = 1000x, l1 E by 31.6x, l0 E not at all.
RESCALE = 1000 ** -0.5
#: The five GEMM operand classes, in their base order (rounds rotate it).
CLASSES = ("dense-random", "lambda0-acts", "lambda1e-2-acts", "lambda0-acts/31.6", "zeros")
#: The subject networks: lambda of the trained ones; the rescaled one is the lambda = 0 network rescaled.
LAMBDAS = {"lambda0": 0.0, "lambda1e-2": 1e-2}
NETWORKS = ("lambda0", "lambda1e-2", "lambda0-rescaled")
#: Which network each activation class is the first hidden layer of (the /31.6 class: lambda0's, scaled).
CLASS_NETWORK = {"lambda0-acts": "lambda0", "lambda1e-2-acts": "lambda1e-2"}
#: The dtypes the networks' inference runs in (fp16: tensor cores; fp32: CUDA cores, TF32 as torch has it).
INFERENCE_DTYPES = ("float16", "float32")
#: The GPU the check measures (cuda:0 is NVML domain gpu:0 under energymeter's CUDA numbering).
DOMAIN = "gpu:0"
#: Seconds of GPU work between synchronisations inside a window: the loop must see the time the GPU
#: spends, but each sync leaves the GPU briefly idle; 50 ms keeps that under 1% of a window.
CHUNK_TARGET_S = 0.05
#: Seconds each workload runs while its chunk is sized (also its warm-up).
CALIBRATE_S = 0.2
#: The smallest positive normal fp16 number: nonzero fp16 values below it are subnormal.
FP16_MIN_NORMAL = 2.0 ** -14


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-s", type=float, default=360.0,
                        help="overall time budget (s); every part is sized to end within it (default 360)")
    parser.add_argument("--seconds", type=float, default=10.0, help="counter-vs-sampling window length (s)")
    parser.add_argument("--size", type=int, default=8192, help="counter-vs-sampling matmul size n (n x n, fp32)")
    parser.add_argument("--repeats", type=int, default=3, help="counter-vs-sampling windows")
    parser.add_argument("--gemm-size", type=int, default=4096, help="data-dependent GEMM size n (n x n @ n x n)")
    parser.add_argument("--dtype", default="float16", choices=["float16", "bfloat16", "float32"],
                        help="data-dependent GEMM dtype (default float16: tensor cores)")
    parser.add_argument("--window-s", type=float, default=2.0,
                        help="window length of parts 4 and 5 (s; the NVML counter needs >= 1 s)")
    parser.add_argument("--rounds", type=int, default=15,
                        help="most GEMM rounds (one window per class each); fewer if the budget ends")
    parser.add_argument("--batch", type=int, default=65536, help="samples in the fixed inference batch")
    parser.add_argument("--inference-rounds", type=int, default=15,
                        help="inference rounds (one window per network and dtype each); fewer if the budget ends")
    parser.add_argument("--dataset", default="mnist-5k", help="dataset of the subject models")
    parser.add_argument("--epochs", type=int, default=40, help="training epochs of each subject model")
    parser.add_argument("--validate-reserve-s", type=float, default=0.0,
                        help="budget kept for a validate --quick subprocess at the end (s; default 0: none)")
    parser.add_argument("--validate-out", help="keep validate's reports here (default: a temporary directory)")
    parser.add_argument("--fake", action="store_true", help="dry run with a fake NVML on the CPU")
    return parser


def _checked(args: argparse.Namespace) -> str | None:
    """The first bad argument, in one line, or None."""
    for name in ("budget_s", "seconds", "window_s"):
        if not getattr(args, name) > 0:
            return f"--{name.replace('_', '-')} must be positive, got {getattr(args, name):g}"
    for name in ("size", "repeats", "gemm_size", "rounds", "batch", "inference_rounds", "epochs"):
        if getattr(args, name) < 1:
            return f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}"
    if args.validate_reserve_s < 0:
        return f"--validate-reserve-s must be >= 0, got {args.validate_reserve_s:g}"
    return None


# -- the fake GPU (--fake): a power model behind FakeNVML's interface ---------------------------------------

class ModelGpu:
    """A fake GPU whose energy counter integrates ``power_mw`` over real time plus explicit charges.

    It has the attributes ``energy_mj``/``power_mw`` of ``energymeter.testing.FakeGpu`` that FakeNVML
    reads live; ``charge`` adds the energy of work done (the data-dependent parts of ``--fake``).
    """

    def __init__(self, power_mw: float = 100_000.0) -> None:
        self.name = "NVIDIA H200 (fake)"
        self.uuid = "GPU-00000000-0000-0000-0000-00000000fake"
        self.has_counter = True
        self.has_instant_power = True
        self.lost = False
        self.accessible = True
        self.errors: list[int] = []
        self._charged_mj = 0.0
        self._power_mw = float(power_mw)
        self._since_s = time.monotonic()

    def _settle(self) -> None:
        now = time.monotonic()
        self._charged_mj += self._power_mw * (now - self._since_s)
        self._since_s = now

    @property
    def power_mw(self) -> float:
        return self._power_mw

    @power_mw.setter
    def power_mw(self, value: float) -> None:
        self._settle()
        self._power_mw = float(value)

    @property
    def energy_mj(self) -> float:
        self._settle()
        return self._charged_mj

    def charge(self, millijoules: float) -> None:
        """Add the energy of work just done (mJ)."""
        self._charged_mj += millijoules


def nonzero_fraction(operand: Any) -> float:
    """Fraction of an operand's elements that are not exactly zero."""
    return float((operand != 0).double().mean())


def default_fake_energy_mj_per_gemm(operand: Any) -> float:
    """The fake GPU's GEMM rule: 2 mJ per GEMM plus 6 mJ times the left operand's nonzero fraction."""
    return 2.0 + 6.0 * nonzero_fraction(operand)


@dataclass(frozen=True)
class NetworkStats:
    """A subject network on the fixed batch (computed in fp32, except the fp16 subnormal fraction).

    Attributes:
        activation_energy: Mean E per sample (l2, sum over hooked units, all layers; arbitrary units, not joules).
        zero_fraction: Fraction of hidden (post-ReLU) outputs that are exactly zero.
        fp16_subnormal_fraction: Fraction of hidden outputs that are subnormal in the network's fp16 run.
        accuracy: Fraction of the batch's samples classified right (the batch is tiled from the dataset).
    """

    activation_energy: float
    zero_fraction: float
    fp16_subnormal_fraction: float
    accuracy: float


def default_fake_energy_mj_per_sample(stats: NetworkStats) -> float:
    """The fake GPU's inference rule: 2 mJ per sample plus 6 mJ times the hidden outputs' nonzero fraction."""
    return 2.0 + 6.0 * (1.0 - stats.zero_fraction)


# -- small helpers ------------------------------------------------------------------------------------------

class Budget:
    """Seconds left of the overall budget."""

    def __init__(self, budget_s: float) -> None:
        self.start_s = time.monotonic()
        self.budget_s = budget_s

    def elapsed_s(self) -> float:
        return time.monotonic() - self.start_s

    def left_s(self) -> float:
        return self.budget_s - self.elapsed_s()

    @property
    def end_s(self) -> float:
        return self.start_s + self.budget_s


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize(device)


@dataclass(frozen=True)
class GpuState:
    """What NVML says of the GPU just after a window (None: not given)."""

    temperature_c: float | None = None
    sm_clock_mhz: float | None = None
    utilisation_pct: float | None = None


def _gpu_state(nvml: Any, uuid: str | None) -> GpuState:
    """Temperature, SM clock and utilisation (percent of the last sample period a kernel ran) of the GPU."""
    if uuid is None:
        return GpuState()
    try:
        handle = nvml.nvmlDeviceGetHandleByUUID(uuid)
    except (nvml.NVMLError, AttributeError):
        return GpuState()

    def read(query: str, *constants: str, part: Callable[[Any], Any] = lambda v: v) -> float | None:
        function = getattr(nvml, query, None)
        values = [getattr(nvml, c, None) for c in constants]
        if function is None or None in values:
            return None
        try:
            return float(part(function(handle, *values)))
        except nvml.NVMLError:
            return None

    return GpuState(read("nvmlDeviceGetTemperature", "NVML_TEMPERATURE_GPU"),
                    read("nvmlDeviceGetClockInfo", "NVML_CLOCK_SM"),
                    read("nvmlDeviceGetUtilizationRates", part=lambda rates: rates.gpu))


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:{spec}}"


def _interval(low: float | None, high: float | None, spec: str) -> str:
    return "[no interval]" if low is None or high is None else f"[{low:{spec}}, {high:{spec}}]"


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def fp16_subnormal_fraction(values: Any) -> float:
    """Fraction of elements that are subnormal once cast to fp16: nonzero, of magnitude below 2 ** -14."""
    import torch

    magnitude = values.to(torch.float16).abs()
    return float(((magnitude > 0) & (magnitude < FP16_MIN_NORMAL)).double().mean())


# -- 1. devices ---------------------------------------------------------------------------------------------

def section_devices(nvml_module: Any, fake: bool) -> None:
    from energymeter.cli import main as cli_main

    print("== energymeter devices")
    sys.stdout.flush()
    cli_main(["devices"])
    if fake:
        from energymeter.backends.nvml import NvmlBackend
        from energymeter.display import format_statuses

        print("with --fake, NVML is energymeter.testing.FakeNVML:")
        print(format_statuses([NvmlBackend(nvml_module=nvml_module).probe()]))
    print()


def section_counter_characterised(nvml_module: Any) -> None:
    """The GPU's energy counter timed here first: its update period, resolution and idle power (issue 21)."""
    from energymeter.backends.nvml import NvmlBackend
    from energymeter.characterise import characterise_session
    from energymeter.display import format_characters
    from energymeter.errors import BackendUnavailable

    print("== the GPU's energy counter, characterised (energymeter.characterise: polled every 0.5 ms, <= 2 s)")
    try:
        session = NvmlBackend(nvml_module=nvml_module).open()
    except BackendUnavailable as exc:
        print(f"  not characterised: {exc}")
        print()
        return
    try:
        found = characterise_session(session, session.domains, "nvml")
    finally:
        session.close()
    print(format_characters(found.values()))
    print()


# -- 2. counter against sampling ----------------------------------------------------------------------------

#: Share of the budget the counter-vs-sampling windows may take.
COUNTER_SHARE = 0.08


def section_counter_vs_sampling(args: argparse.Namespace, device: str, options: dict[str, Any]) -> None:
    import torch

    from energymeter import Meter
    from energymeter.display import format_measurement

    seconds = min(args.seconds, COUNTER_SHARE * args.budget_s / max(1, args.repeats))
    print(f"== NVML energy counter against integrated power: {args.size}x{args.size} float32 matmuls on {device}, "
          f"{args.repeats} windows of {seconds:g} s, torch {torch.__version__}"
          + (f" (--seconds {args.seconds:g} shortened to fit {COUNTER_SHARE:.0%} of the budget)"
             if seconds < args.seconds else ""))
    counter = Meter(["nvml"], **options)
    sampling = Meter(["nvml"], nvml_mode="sampling", sample_period_s=0.02, **options)
    try:
        a = torch.randn(args.size, args.size, device=device)
        b = torch.randn(args.size, args.size, device=device)
        for _ in range(3):
            a @ b  # warm-up outside the windows
        _sync(device)
        for repeat in range(args.repeats):
            counter.begin_window("w")
            sampling.begin_window("w")
            start = time.perf_counter()
            matmuls = 0
            while time.perf_counter() - start < seconds:
                a @ b
                matmuls += 1
                if matmuls % 16 == 0:
                    _sync(device)
            m_sampling = sampling.end_window("w")
            m_counter = counter.end_window("w")
            flop = 2 * args.size ** 3 * matmuls
            print(f"\nwindow {repeat + 1}: {matmuls} matmuls = {flop / 1e12:.3g} TFLOP (counted) in "
                  f"{m_counter.duration_s:.2f} s")
            print(format_measurement(m_counter))
            print(format_measurement(m_sampling))
            for domain, joules in m_counter.energy_j.items():
                other = m_sampling.energy_j.get(domain)
                if not joules > 0:
                    print(f"  {domain}: the counter read {joules:g} J: no ratio (a window too short for the counter)")
                elif other is not None:
                    print(f"  {domain}: counter {joules:.3f} J ({m_counter.provenance[domain]}), sampling "
                          f"{other:.3f} J ({m_sampling.provenance[domain]}): sampling / counter = "
                          f"{other / joules:.4f}; {flop / joules / 1e9:.4g} GFLOP/J by the counter")
    finally:
        counter.close()
        sampling.close()
    print()



# -- 3. the subject models ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Subjects:
    """The trained networks, the rescaled one, and the first hidden layer's activations they feed part 4."""

    networks: dict[str, Any]  # NETWORKS -> nn.Sequential (fp32, on the device)
    inputs: Any  # every image of the dataset (train then test), CPU
    labels: Any
    first_layer_acts: dict[str, Any]  # "lambda0" / "lambda1e-2" -> (samples x units) post-ReLU, fp32, CPU


def train_subject_models(args: argparse.Namespace, device: str) -> Subjects:
    """Train the lambda = 0 and lambda = 1e-2 MLPs, rescale the lambda = 0 one, and print what each is."""
    import torch
    from torch import nn

    from energymeter.models import build, load_dataset, rescale, train

    dataset = load_dataset(args.dataset)
    inputs, labels = torch.cat([dataset.x_train, dataset.x_test]), torch.cat([dataset.y_train, dataset.y_test])
    networks, acts = {}, {}
    for label, lam in LAMBDAS.items():
        start = time.perf_counter()
        model = build("mlp", dataset.in_shape, dataset.num_classes, seed=0)
        result = train(model, dataset, lam=lam, epochs=args.epochs, seed=0, device=device)
        model.eval()
        first = model[:3]
        if not isinstance(first[-1], nn.ReLU):
            raise RuntimeError(f"expected the mlp's third module to be its first ReLU, got {first[-1]!r}")
        with torch.no_grad():
            acts[label] = torch.cat([first(inputs[i:i + 1000].to(device)).float().cpu()
                                     for i in range(0, len(inputs), 1000)])
        networks[label] = model
        print(f"  {label}: mlp on {dataset.name}, lambda = {lam:g}, {args.epochs} epoch(s) in "
              f"{time.perf_counter() - start:.1f} s: test accuracy {result.test_accuracy:.4f}, E per test sample "
              f"(l2, sum over hooked units, all layers) {result.activation_energy:.4g} (arbitrary units, not joules), "
              f"zero fraction {result.activation_sparsity:.4f}")
    networks["lambda0-rescaled"] = rescale(networks["lambda0"], RESCALE).eval()
    with torch.no_grad():
        probe = inputs[:1000].to(device)
        same = float((networks["lambda0-rescaled"](probe).argmax(1) == networks["lambda0"](probe).argmax(1))
                     .double().mean())
    print(f"  lambda0-rescaled: the lambda = 0 network rescaled by {RESCALE:.5f} = 1/{1 / RESCALE:.1f} per hidden "
          f"layer (energymeter.models.rescale): l2 E x{RESCALE ** 2:g}, the same zeros; fp32 predictions equal to "
          f"lambda0's on {same:.2%} of {len(probe)} images")
    return Subjects(networks, inputs, labels, acts)


# -- interleaved windows (parts 4 and 5) --------------------------------------------------------------------

@dataclass(frozen=True)
class Workload:
    """One condition of an interleaved comparison: a step of GPU work and what it counts.

    Attributes:
        step: Enqueues one step (one GEMM; one forward pass of the batch) without synchronising.
        units_per_step: What J is divided by: 1 (J per GEMM) or the batch size (J per sample).
        gemms_per_step: GEMMs one step runs (for GEMM/s).
        flop_per_step: Counted FLOPs of one step (2 x m x n x k per GEMM).
    """

    step: Callable[[], None]
    units_per_step: int = 1
    gemms_per_step: int = 1
    flop_per_step: float = 0.0


@dataclass
class Windows:
    """What the windows of one condition measured."""

    j_per_unit: list[float] = field(default_factory=list)  # measured, one per good window
    power_w: list[float] = field(default_factory=list)  # measured joules / window seconds
    units_per_s: list[float] = field(default_factory=list)
    gemms_per_s: list[float] = field(default_factory=list)
    tflop_per_s: list[float] = field(default_factory=list)
    temperature_c: list[float] = field(default_factory=list)
    sm_clock_mhz: list[float] = field(default_factory=list)
    utilisation_pct: list[float] = field(default_factory=list)
    by_round: dict[int, float] = field(default_factory=dict)  # round -> J per unit
    failed: list[str] = field(default_factory=list)
    provenance: str = ""


def rotated(names: Sequence[str], round_index: int) -> list[str]:
    """Round r's order: the base order rotated by r (ABCD, BCDA, CDAB, DABC, ...)."""
    shift = round_index % len(names)
    return list(names[shift:]) + list(names[:shift])


def shuffled(seed: int) -> Callable[[Sequence[str], int], list[str]]:
    """Fresh balanced orders: each round every condition once, in an order drawn anew (seeded) for that round."""
    def order(names: Sequence[str], round_index: int) -> list[str]:
        out = list(names)
        random.Random(f"{seed}-{round_index}").shuffle(out)
        return out
    return order


def steps_per_chunk(workload: Workload, device: str) -> int:
    """Steps that take about ``CHUNK_TARGET_S`` of device time (the workload runs ``CALIBRATE_S`` meanwhile)."""
    for _ in range(3):
        workload.step()
    _sync(device)
    count, start = 0, time.perf_counter()
    while count < 2 or time.perf_counter() - start < CALIBRATE_S:
        workload.step()
        count += 1
        _sync(device)
    return max(1, int(CHUNK_TARGET_S / ((time.perf_counter() - start) / count)))


def run_windows(meter: Any, workloads: dict[str, Workload], device: str, window_s: float, max_rounds: int,
                stop_at_s: float, state: Callable[[Any], GpuState],
                order: Callable[[Sequence[str], int], list[str]] = rotated,
                charge: Callable[[str, int], None] | None = None,
                clock: Callable[[], float] = time.monotonic) -> tuple[dict[str, Windows], int]:
    """Measure interleaved windows, one per condition a round, the order given by ``order`` each round.

    Both orders here cancel drift as ABAB does: ``rotated`` spreads each condition evenly over the positions
    in a round; ``shuffled`` draws each round's order anew, so no condition always follows the same one.

    A window runs whole chunks of steps until ``window_s`` has passed; the Meter synchronises CUDA at both
    edges, so every step of a window lands inside it. Rounds stop at ``max_rounds`` or when the next round
    would end after ``stop_at_s`` (seconds on ``clock``, monotonic by default). ``charge(name, steps)``,
    with ``--fake``, charges the fake GPU for the steps just run.

    Returns:
        Per condition what it measured, and the rounds run.
    """
    chunks = {name: steps_per_chunk(w, device) for name, w in workloads.items()}
    first = next(iter(workloads))  # the first condition warms the GPU to a steady clock, outside every window
    start = time.perf_counter()
    while time.perf_counter() - start < window_s:
        for _ in range(chunks[first]):
            workloads[first].step()
        _sync(device)
    results = {name: Windows() for name in workloads}
    round_s, rounds = 0.0, 0
    while rounds < max_rounds and clock() + max(round_s, len(workloads) * window_s) < stop_at_s:
        round_start = clock()
        for name in order(list(workloads), rounds):
            work, chunk, steps = workloads[name], chunks[name], 0
            meter.begin_window(name)
            start = time.perf_counter()
            while time.perf_counter() - start < window_s:
                for _ in range(chunk):
                    work.step()
                if charge is not None:
                    charge(name, chunk)
                steps += chunk
                _sync(device)
            m = meter.end_window(name)
            _record(results[name], m, work, steps, rounds, state(m.devices.get(DOMAIN)))
        rounds += 1
        round_s = clock() - round_start
    return results, rounds


def _record(record: Windows, m: Any, work: Workload, steps: int, round_index: int, gpu: GpuState) -> None:
    """Add one window's figures to ``record`` (a failed window adds its reason instead)."""
    if DOMAIN not in m.energy_j:
        record.failed.append(m.failed.get(DOMAIN, f"no {DOMAIN} domain in this window"))
        return
    joules = m.energy_j[DOMAIN]
    if not joules > 0:
        record.failed.append(f"the energy counter did not advance in {m.duration_s:.2f} s ({joules:g} J)")
        return
    record.provenance = m.provenance[DOMAIN]
    per_unit = joules / (steps * work.units_per_step)
    record.j_per_unit.append(per_unit)
    record.by_round[round_index] = per_unit
    record.power_w.append(joules / m.duration_s)
    record.units_per_s.append(steps * work.units_per_step / m.duration_s)
    record.gemms_per_s.append(steps * work.gemms_per_step / m.duration_s)
    record.tflop_per_s.append(steps * work.flop_per_step / m.duration_s / 1e12)
    for name in ("temperature_c", "sm_clock_mhz", "utilisation_pct"):  # read just after the window, outside it
        if getattr(gpu, name) is not None:
            getattr(record, name).append(getattr(gpu, name))


def ratio_to(results: dict[str, Windows], name: str, reference: str) -> Any:
    """Geometric-mean ratio of J per unit, ``name`` over ``reference``, paired by round, with its interval."""
    from energymeter.validation.analysis.stats_paired import paired_ratio

    rounds = paired_rounds(results, name, reference)
    return paired_ratio([results[name].by_round[r] for r in rounds], [results[reference].by_round[r] for r in rounds],
                        "j_per_unit")


def paired_rounds(results: dict[str, Windows], name: str, reference: str) -> list[int]:
    """The rounds in which both conditions have a good window."""
    return sorted(set(results[name].by_round) & set(results[reference].by_round))


def measure_interleaved(options: dict[str, Any], nvml: Any, workloads: dict[str, Workload], device: str,
                        window_s: float, max_rounds: int, stop_at_s: float,
                        order: Callable[[Sequence[str], int], list[str]],
                        charge: Callable[[str, int], None] | None) -> tuple[dict[str, Windows], int]:
    """``run_windows`` with a fresh NVML Meter, NVML initialised for the state reads around it."""
    from energymeter import Meter

    meter = Meter(["nvml"], **options)
    try:
        nvml.nvmlInit()  # for the temperature, clock and utilisation reads; NVML counts its inits
        try:
            return run_windows(meter, workloads, device, window_s, max_rounds, stop_at_s,
                               lambda uuid: _gpu_state(nvml, uuid), order, charge)
        finally:
            nvml.nvmlShutdown()
    finally:
        meter.close()


def _state_cells(record: Windows) -> str:
    return (f"{_fmt(_mean(record.power_w), '.1f'):>7} {_fmt(_mean(record.gemms_per_s), '.4g'):>9} "
            f"{_fmt(_mean(record.tflop_per_s), '.3g'):>7} {_fmt(_mean(record.utilisation_pct), '.0f'):>5} "
            f"{_fmt(_mean(record.temperature_c), '.0f'):>6} {_fmt(_mean(record.sm_clock_mhz), '.0f'):>6}")


STATE_HEADER = f"{'W':>7} {'GEMM/s':>9} {'TFLOP/s':>7} {'util%':>5} {'deg C':>6} {'SM MHz':>6}"
STATE_NOTE = ("W, GEMM/s and TFLOP/s (counted, 2mnk per GEMM) are means over windows; util% (NVML: share of the "
              "last sample period a kernel ran), deg C and SM MHz are read just after each window.")


# -- 4. data-dependent power --------------------------------------------------------------------------------

def tile_to(acts: Any, size: int) -> Any:
    """Rows are samples, columns units: repeat both cyclically to fill a size x size matrix."""
    import torch

    rows = torch.arange(size) % acts.shape[0]
    cols = torch.arange(size) % acts.shape[1]
    return acts[rows][:, cols].contiguous()


def build_operands(first_layer_acts: dict[str, Any], size: int) -> tuple[dict[str, Any], Any]:
    """The five left operands (one per class, ``CLASSES`` order) and the shared right operand, fp32 on the CPU."""
    import torch

    generator = torch.Generator().manual_seed(0)
    lambda0 = tile_to(first_layer_acts["lambda0"], size)
    operands = {
        "dense-random": torch.randn(size, size, generator=generator),
        "lambda0-acts": lambda0,
        "lambda1e-2-acts": tile_to(first_layer_acts["lambda1e-2"], size),
        "lambda0-acts/31.6": lambda0 * RESCALE,
        "zeros": torch.zeros(size, size),
    }
    return operands, torch.randn(size, size, generator=generator) / math.sqrt(size)


def operand_stats(operand: Any, source: Any) -> tuple[float, float, float]:
    """(zero fraction, mean square) of an operand as the multipliers see it (after the cast), and the fp16
    subnormal fraction of its fp32 ``source``."""
    values = operand.double()
    return float((values == 0).double().mean()), float((values * values).mean()), fp16_subnormal_fraction(source)


def _gemm(a: Any, b: Any, out: Any) -> Callable[[], None]:
    import torch

    return lambda: torch.matmul(a, b, out=out)


def section_data_dependent(args: argparse.Namespace, device: str, options: dict[str, Any], nvml: Any,
                           subjects: Subjects, stop_at_s: float, fake_gpu: ModelGpu | None,
                           fake_rule: Callable[[Any], float]) -> None:
    import torch

    from energymeter.validation.analysis.intervals import t_interval

    dtype = getattr(torch, args.dtype)
    n = args.gemm_size
    print(f"== Data-dependent power: ({n} x {n}) @ ({n} x {n}) {args.dtype} GEMMs on {device}; left operand by "
          "class (the first hidden layer's post-ReLU activations, rows = samples, tiled cyclically), right operand "
          "one fixed N(0, 1/n) matrix")
    sources, weights_fp32 = build_operands(subjects.first_layer_acts, n)
    operands = {name: a.to(device=device, dtype=dtype) for name, a in sources.items()}
    weights = weights_fp32.to(device=device, dtype=dtype)
    stats = {name: operand_stats(a, sources[name]) for name, a in operands.items()}
    out = torch.empty_like(weights)
    workloads = {name: Workload(_gemm(a, weights, out), flop_per_step=2.0 * n ** 3) for name, a in operands.items()}
    charge = None
    if fake_gpu is not None:
        fake_gpu.power_mw = 0.0  # each window then holds exactly its GEMMs' charges
        charge_mj = {name: fake_rule(a) for name, a in operands.items()}

        def charge(name: str, gemms: int) -> None:
            fake_gpu.charge(charge_mj[name] * gemms)

    results, rounds = measure_interleaved(options, nvml, workloads, device, args.window_s, args.rounds, stop_at_s,
                                          rotated, charge)
    provenance = next((r.provenance for r in results.values() if r.provenance), "measured")
    print(f"\n{rounds} round(s) x {len(CLASSES)} classes, windows of {args.window_s:g} s, order rotating each "
          f"round; J per GEMM is the {DOMAIN} energy counter ({provenance}) over the GEMMs the window ran.")
    print("J/GEMM interval: Student t 95% over windows. Ratio to dense-random: paired by round, Student t 95% on the "
          "mean of per-round log ratios, back-transformed (geometric mean).")
    print("zero fraction and mean square are of the left operand as cast; mean square is E per element "
          "(l2, arbitrary units, not joules); fp16 subn: share of its fp32 values that are subnormal in fp16 "
          f"(nonzero, below 2^-14 = {FP16_MIN_NORMAL:.3g}).")
    print(STATE_NOTE)
    print(f"{'class':<18} {'zero frac':>9} {'fp16 subn':>9} {'mean square':>11} {'n':>3} "
          f"{'J/GEMM (' + provenance + ')':>20} {'95% interval':>24} {'ratio to dense':>14} {'95% interval':>18} "
          f"{'n pairs':>7} " + STATE_HEADER)
    for name in CLASSES:
        record = results[name]
        zero_fraction, mean_square, subnormal = stats[name]
        energy = t_interval(record.j_per_unit)
        ratio = ratio_to(results, name, "dense-random")
        print(f"{name:<18} {zero_fraction:>9.4f} {subnormal:>9.4f} {mean_square:>11.4g} {energy.n:>3} "
              f"{_fmt(energy.mean, '.5g'):>20} {_interval(energy.low, energy.high, '.5g'):>24} "
              f"{_fmt(ratio.estimate, '.4f'):>14} {_interval(ratio.low, ratio.high, '.4f'):>18} {ratio.n:>7} "
              + _state_cells(record))
        for reason in record.failed:
            print(f"  {name}: a window failed: {reason}")
    for name in ("lambda1e-2-acts", "lambda0-acts/31.6"):
        ratio = ratio_to(results, name, "lambda0-acts")
        base = stats["lambda0-acts"][1]
        e_ratio = stats[name][1] / base if base > 0 else math.nan
        if ratio.low is None or ratio.high is None:
            verdict = "no interval (fewer than 2 paired rounds)"
        elif ratio.high < 1:
            verdict = f"the {name} operand costs less energy per GEMM than the lambda0-acts one"
        elif ratio.low > 1:
            verdict = f"the {name} operand costs more energy per GEMM than the lambda0-acts one"
        else:
            verdict = "the interval includes 1: no difference in energy per GEMM resolved at this n"
        print(f"E beside joules: {name} over lambda0-acts: E per element x{e_ratio:.4g}; J per GEMM ({provenance}) "
              f"x{_fmt(ratio.estimate, '.4f')} {_interval(ratio.low, ratio.high, '.4f')} (n = {ratio.n} paired "
              f"rounds): {verdict}.")
    print()


# -- 5. the networks' inference on one fixed batch ----------------------------------------------------------

def fixed_batch(subjects: Subjects, size: int) -> tuple[Any, Any]:
    """``size`` samples (and labels) tiled cyclically from the dataset's images: one batch every network sees."""
    import torch

    rows = torch.arange(size) % len(subjects.inputs)
    return subjects.inputs[rows].contiguous(), subjects.labels[rows].contiguous()


def hidden_outputs(model: Any, x: Any) -> list[Any]:
    """The outputs of ``model``'s activation layers (post-ReLU) on ``x``, in order, without gradients."""
    import torch

    from energymeter.models import ACTIVATION_TYPES

    outputs = []
    with torch.no_grad():
        for module in model:
            x = module(x)
            if isinstance(module, ACTIVATION_TYPES):
                outputs.append(x)
    return outputs


def network_stats(model: Any, x: Any, y: Any, device: str, chunk: int = 8192) -> NetworkStats:
    """E (the suite's ``evaluate``: l2, sum), zeros and accuracy in fp32; subnormals in an fp16 copy's run."""
    import copy

    import torch

    from energymeter.models import evaluate

    result = evaluate(model, x, y, batch_size=chunk, device=device)
    model.eval()
    half = copy.deepcopy(model).to(torch.float16)
    subnormal, total = 0.0, 0
    for start in range(0, len(x), chunk):
        for h in hidden_outputs(half, x[start:start + chunk].to(device=device, dtype=torch.float16)):
            subnormal += fp16_subnormal_fraction(h) * h.numel()
            total += h.numel()
    return NetworkStats(result.activation_energy, result.activation_sparsity, subnormal / total if total else 0.0,
                        result.accuracy)


def linear_flop_and_gemms(model: Any, samples: int) -> tuple[float, int]:
    """Counted FLOPs (2 x samples x in x out per Linear) and GEMMs of one forward pass of ``samples``."""
    from torch import nn

    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return sum(2.0 * samples * m.in_features * m.out_features for m in linears), len(linears)


def _forward(model: Any, x: Any) -> Callable[[], None]:
    import torch

    def step() -> None:
        with torch.no_grad():
            model(x)
    return step


@dataclass(frozen=True)
class Comparison:
    """One network against the lambda = 0 network in one dtype, by the suite's own rule."""

    network: str
    dtype: str
    activation_energy_ratio: float  # E of the network over E of lambda0 on the batch
    joules_ratio: Any  # StatResult: J per sample ratio paired by round
    elasticity: Any  # StatResult with the elasticity verdict
    energy_change: Any  # StatResult with the paired energy-change verdict


def compare(results: dict[str, Windows], stats: dict[str, NetworkStats], network: str, dtype: str) -> Comparison:
    """The elasticity verdict and the paired energy change of ``network`` against lambda0 in ``dtype``.

    Rounds are the paired units (each round holds one window of each condition): within a round the
    elasticity is the slope of log J per sample on log E, and ``elasticity_verdict`` reads the Student-t
    interval over rounds against the suite's thresholds; ``energy_change`` reads the paired log ratio.
    """
    from energymeter.validation.analysis.stats import ENERGY_SESOI, elasticity, elasticity_verdict, energy_change

    name, base = f"{network} {dtype}", f"lambda0 {dtype}"
    rounds = paired_rounds(results, name, base)
    after = [results[name].by_round[r] for r in rounds]
    before = [results[base].by_round[r] for r in rounds]
    e_after, e_before = stats[network].activation_energy, stats["lambda0"].activation_energy
    slope = elasticity_verdict(elasticity(after + before, [e_after] * len(rounds) + [e_before] * len(rounds),
                                          rounds + rounds))
    change = energy_change(after, before, proxy_fell=e_after < e_before, sesoi=ENERGY_SESOI)
    return Comparison(network, dtype, e_after / e_before, ratio_to(results, name, base), slope, change)


#: Seconds a window runs beyond ``--window-s`` (its last chunk, the syncs, the Meter and NVML reads), planned high.
WINDOW_OVERHEAD_S = 0.15
#: Seconds part 5 spends before its windows, beyond chunk sizing (E on the batch, the fp16 copies), planned high.
INFERENCE_SETUP_S = 5.0
#: Rounds part 4 keeps when the budget is short, before part 5 loses any.
GEMM_MIN_ROUNDS = 3


def planned_s(conditions: int, rounds: int, window_s: float, setup_s: float = 0.0) -> float:
    """Seconds an interleaved part takes: setup, chunk sizing, the warm-up window, then ``rounds`` rounds."""
    return setup_s + conditions * (CALIBRATE_S + 0.1) + window_s + rounds * conditions * (window_s + WINDOW_OVERHEAD_S)


def inference_share_s(args: argparse.Namespace, left_s: float) -> float:
    """Seconds of ``left_s`` given to part 5: all its rounds need, as long as part 4 keeps ``GEMM_MIN_ROUNDS``.

    Part 5 answers the question, so it goes first; part 4 runs in what is left, and is cut to its
    minimum before part 5 loses a round.
    """
    inference_s = planned_s(len(NETWORKS) * len(INFERENCE_DTYPES), args.inference_rounds, args.window_s,
                            INFERENCE_SETUP_S)
    gemm_min_s = planned_s(len(CLASSES), min(GEMM_MIN_ROUNDS, args.rounds), args.window_s)
    return max(0.0, min(inference_s, left_s - gemm_min_s))


def section_inference(args: argparse.Namespace, device: str, options: dict[str, Any], nvml: Any,
                      subjects: Subjects, stop_at_s: float, fake_gpu: ModelGpu | None,
                      fake_rule: Callable[[NetworkStats], float]) -> list[Comparison]:
    import copy

    import torch

    from energymeter.validation.analysis.intervals import t_interval
    from energymeter.validation.analysis.stats import ENERGY_SESOI, MIN_ELASTICITY, NULL_ELASTICITY

    x, y = fixed_batch(subjects, args.batch)
    features = int(x[0].numel())
    print(f"== Inference: the {len(NETWORKS)} networks on one fixed batch of {args.batch:,} x {features} "
          f"(the dataset's images tiled), in {' and '.join(INFERENCE_DTYPES)}, on {device}"
          + (f"; torch.backends.cuda.matmul.allow_tf32 = {torch.backends.cuda.matmul.allow_tf32}"
             if device.startswith("cuda") else ""))
    stats = {name: network_stats(model, x, y, device) for name, model in subjects.networks.items()}
    workloads, charge_mj = {}, {}
    for dtype_name in INFERENCE_DTYPES:
        dtype = getattr(torch, dtype_name)
        batch = x.to(device=device, dtype=dtype)
        for name in NETWORKS:
            model = copy.deepcopy(subjects.networks[name]).to(device=device, dtype=dtype).eval()
            flop, gemms = linear_flop_and_gemms(model, args.batch)
            workloads[f"{name} {dtype_name}"] = Workload(_forward(model, batch), args.batch, gemms, flop)
            charge_mj[f"{name} {dtype_name}"] = fake_rule(stats[name]) * args.batch
    charge = None
    if fake_gpu is not None:
        fake_gpu.power_mw = 0.0

        def charge(name: str, steps: int) -> None:
            fake_gpu.charge(charge_mj[name] * steps)

    results, rounds = measure_interleaved(options, nvml, workloads, device, args.window_s, args.inference_rounds,
                                          stop_at_s, shuffled(0), charge)
    provenance = next((r.provenance for r in results.values() if r.provenance), "measured")
    print(f"\n{rounds} round(s) x {len(workloads)} conditions, windows of {args.window_s:g} s, each round a fresh "
          "random order of all conditions (seeded); J per sample is the "
          f"{DOMAIN} energy counter ({provenance}) over the samples the window ran.")
    print("E per sample: l2, sum over hooked units, all layers, on this batch in fp32 (energymeter.models.evaluate; "
          "arbitrary units, not joules); zero frac: hidden outputs exactly zero; fp16 subn: hidden outputs "
          "subnormal in the fp16 run; acc: accuracy on the batch.")
    print("J/sample interval: Student t 95% over windows. Ratio to lambda0 (same dtype): paired by round, Student t "
          "95% on the mean of per-round log ratios, back-transformed.")
    print(STATE_NOTE)
    print(f"{'network':<17} {'dtype':<8} {'E/sample':>10} {'zero frac':>9} {'fp16 subn':>9} {'acc':>6} {'n':>3} "
          f"{'J/sample (' + provenance + ')':>22} {'95% interval':>24} {'ratio to lambda0':>16} {'95% interval':>18} "
          f"{'n pairs':>7} {'samples/s':>10} " + STATE_HEADER)
    for dtype_name in INFERENCE_DTYPES:
        for name in NETWORKS:
            record, s = results[f"{name} {dtype_name}"], stats[name]
            energy = t_interval(record.j_per_unit)
            ratio = ratio_to(results, f"{name} {dtype_name}", f"lambda0 {dtype_name}")
            print(f"{name:<17} {dtype_name:<8} {s.activation_energy:>10.4g} {s.zero_fraction:>9.4f} "
                  f"{s.fp16_subnormal_fraction:>9.4f} {s.accuracy:>6.4f} {energy.n:>3} {_fmt(energy.mean, '.5g'):>22} "
                  f"{_interval(energy.low, energy.high, '.5g'):>24} {_fmt(ratio.estimate, '.4f'):>16} "
                  f"{_interval(ratio.low, ratio.high, '.4f'):>18} {ratio.n:>7} "
                  f"{_fmt(_mean(record.units_per_s), '.4g'):>10} " + _state_cells(record))
            for reason in record.failed:
                print(f"  {name} {dtype_name}: a window failed: {reason}")
    print("\nVerdict, by the suite's own rule (validation/analysis/stats_elasticity.py: elasticity_verdict; each round "
          f"is a paired unit, so the rule's 'seeds' are rounds here): E tracks the joules when the 95% interval of the "
          f"elasticity (slope of log J per sample on log E, within each round) lies above {MIN_ELASTICITY}; it does "
          f"not when the interval lies inside +-{NULL_ELASTICITY} or below -{NULL_ELASTICITY}. Beside it the paired "
          f"energy change (stats_paired.energy_change, smallest change that matters {ENERGY_SESOI:.0%}).")
    comparisons = [compare(results, stats, name, dtype_name) for dtype_name in INFERENCE_DTYPES
                   for name in NETWORKS[1:]]
    for c in comparisons:
        print(f"verdict {c.network} vs lambda0, {c.dtype}: E x{c.activation_energy_ratio:.4g}; J per sample "
              f"({provenance}) x{_fmt(c.joules_ratio.estimate, '.4f')} "
              f"{_interval(c.joules_ratio.low, c.joules_ratio.high, '.4f')} (n = {c.joules_ratio.n} paired rounds); "
              f"elasticity: {c.elasticity.verdict} ({c.elasticity.reason}); energy change: {c.energy_change.verdict} "
              f"({c.energy_change.reason})")
    for dtype_name in INFERENCE_DTYPES:
        print(f"in {dtype_name}: " + _reading({c.network: c.elasticity.verdict for c in comparisons
                                                if c.dtype == dtype_name}))
    print()
    return comparisons


def _reading(verdicts: dict[str, str]) -> str:
    """One sentence from the two elasticity verdicts: what the joules followed."""
    from energymeter.validation.analysis.stats import DOES_NOT_TRACK, TRACKS

    trained, rescaled = verdicts.get("lambda1e-2"), verdicts.get("lambda0-rescaled")
    if trained == TRACKS and rescaled == TRACKS:
        return "the joules followed E, both where training changed it and where a pure rescaling did."
    if trained == TRACKS and rescaled == DOES_NOT_TRACK:
        return ("the joules followed E where training changed the network, not where a pure rescaling changed E "
                "alone: they followed something lambda = 1e-2 changed beyond E's scale (its zeros, for one), not "
                "E's size.")
    if trained == DOES_NOT_TRACK and rescaled == DOES_NOT_TRACK:
        return "E did not track the joules: neither a trained nor a rescaled 1000-fold fall of E moved them."
    return f"no single reading (lambda1e-2: {trained}; lambda0-rescaled: {rescaled})."


# -- 6. validate (only with --validate-reserve-s > 0) -------------------------------------------------------

def validate_command(out_dir: str) -> list[str]:
    """The command line of the validate subprocess."""
    return [sys.executable, "-m", "energymeter", "validate", "--device", "cuda:0", "--quick", "--quiet",
            "--out", out_dir]


def section_validate(args: argparse.Namespace, budget: Budget) -> None:
    print("== energymeter validate --device cuda:0 --quick")
    if args.validate_reserve_s <= 0:
        print("skipped: --validate-reserve-s 0 (the default; the inference above answers whether E tracks the "
              "joules, which a 2-seed quick validation cannot); with a reserve a GPU run executes: "
              + " ".join(validate_command(args.validate_out or "<tmpdir>")))
        print()
        return
    if args.fake:
        print("skipped in --fake mode (a subprocess cannot reach the fake NVML); a GPU run executes: "
              + " ".join(validate_command(args.validate_out or "<tmpdir>")))
        print()
        return
    timeout_s = budget.left_s() - 5.0
    if timeout_s < 30.0:
        print(f"skipped: {budget.left_s():.0f} s of the {budget.budget_s:g} s budget left")
        print()
        return
    with tempfile.TemporaryDirectory(prefix="gpu-check-validate-") as tmp:
        out_dir = args.validate_out or os.path.join(tmp, "report")
        command = validate_command(out_dir)
        print("running: " + " ".join(command) + f" (timeout {timeout_s:.0f} s)")
        sys.stdout.flush()
        start = time.perf_counter()
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            print(f"validate did not finish within {timeout_s:.0f} s (the budget); no claims")
            print()
            return
        print(f"exit status {done.returncode} after {time.perf_counter() - start:.1f} s")
        lines = done.stderr.splitlines()
        keep = next((i for i, line in enumerate(lines) if "run(s) finished" in line), None)
        if keep is None:  # no claims: show the end of what it said
            keep = max(0, len(lines) - 40)
        for line in lines[keep:]:
            print(line)
    print()




def main(argv: Sequence[str] | None = None, *, fake_energy_mj_per_gemm: Callable[[Any], float] | None = None,
         fake_energy_mj_per_sample: Callable[[NetworkStats], float] | None = None) -> int:
    """Run the check.

    Args:
        argv: Command-line arguments.
        fake_energy_mj_per_gemm: With ``--fake``: the fake GPU's energy per GEMM (mJ) as a function of the
            GEMM's left operand (default ``default_fake_energy_mj_per_gemm``).
        fake_energy_mj_per_sample: With ``--fake``: the fake GPU's energy per inference sample (mJ) as a
            function of the network's ``NetworkStats`` (default ``default_fake_energy_mj_per_sample``).
    """
    args = _parser().parse_args(argv)
    bad = _checked(args)
    if bad is not None:
        print(f"gpu_check: {bad}", file=sys.stderr)
        return 2
    budget = Budget(args.budget_s)

    import torch

    options: dict[str, Any] = {}
    fake_gpu = None
    if args.fake:
        from energymeter.testing import FakeNVML

        fake_gpu = ModelGpu()
        nvml: Any = FakeNVML([fake_gpu])
        options["nvml_module"] = nvml
        device = "cpu"
    else:
        if not torch.cuda.is_available():
            print("gpu_check: no CUDA device here: run it on a machine with an NVIDIA GPU, or pass --fake",
                  file=sys.stderr)
            return 2
        import pynvml

        nvml = pynvml
        device = "cuda:0"
    print(f"gpu_check: budget {args.budget_s:g} s, torch {torch.__version__}, device {device}"
          + (f" ({torch.cuda.get_device_name(0)})" if device.startswith("cuda") else " (fake NVML)"))
    print()
    section_devices(nvml, args.fake)
    section_counter_characterised(nvml)
    section_counter_vs_sampling(args, device, options)
    print(f"[{budget.elapsed_s():.0f} s of {args.budget_s:g} s used]")
    print(f"== Subject models ({args.epochs} epoch(s) each, on {device})")
    subjects = train_subject_models(args, device)
    print()
    end_s = budget.end_s - args.validate_reserve_s
    inference_s = inference_share_s(args, end_s - time.monotonic())
    section_data_dependent(args, device, options, nvml, subjects, end_s - inference_s, fake_gpu,
                           fake_energy_mj_per_gemm or default_fake_energy_mj_per_gemm)
    print(f"[{budget.elapsed_s():.0f} s of {args.budget_s:g} s used]")
    section_inference(args, device, options, nvml, subjects, end_s, fake_gpu,
                      fake_energy_mj_per_sample or default_fake_energy_mj_per_sample)
    print(f"[{budget.elapsed_s():.0f} s of {args.budget_s:g} s used]")
    section_validate(args, budget)
    print(f"[{budget.elapsed_s():.0f} s of {args.budget_s:g} s used]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
