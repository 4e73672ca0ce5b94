"""The prepared GPU hardware check (issue 2, part 7; issue 11, part 8): run it once on a machine with an NVIDIA GPU.

It prints four sections, within one time budget (``--budget-s``, default 420 s, so the whole script
ends in under 8 minutes on an H200-class GPU):

1. ``energymeter devices``: every backend, available or not, and why; then the GPU's energy counter
   characterised (``energymeter.characterise``): its measured update period, resolution and idle power.
2. Counter against sampling: one fixed fp32 matmul workload measured in the same windows through the
   NVML energy counter (provenance measured) and through NVML power sampling (integrated), and their ratio.
3. Data-dependent power: the same fp16 GEMM shape fed four input classes (dense N(0, 1) random, the
   first hidden layer's post-ReLU activations of a lambda = 0 model, those of a lambda = 1e-2 model, and
   zeros), measured by the energy counter in interleaved windows. Per class: the operand's zero fraction
   and mean square (E per element), J per GEMM with a Student-t 95% interval over windows, and the ratio
   to dense random with a 95% interval paired by round. This is the only physical path by which the
   activation energy E could track joules on dense hardware, which multiplies zeros as it multiplies
   anything else: data-dependent power (bit toggling in the multipliers).
4. ``energymeter validate --device cuda:0 --quick`` as a subprocess, and the claims it prints.

Usage, from the repository root with the package installed:

    .venv/bin/python docs/hardware-checks/gpu_check.py > docs/hardware-checks/<gpu>-<date>.txt

``--fake`` runs the same code paths on the CPU against ``energymeter.testing.FakeNVML`` with tiny sizes
(the numbers then mean nothing, except that the fake GPU charges each GEMM an energy computed from its
operand, so the table's ratios can be checked against a known rule); it skips the validate subprocess,
which cannot reach a fake NVML, and prints the command it would run.

Why the GEMM is (4096 x 4096) @ (4096 x 4096) in fp16: fp16 GEMMs run on the tensor cores, the units
trained networks use on NVIDIA GPUs and the ones whose power is reported to vary most with operand
values; at 4096 the GEMM is compute-bound (about 137 GFLOP, arithmetic intensity about 1,365 FLOP/byte),
so the window's energy is the multipliers' and not the memory's; and fp16 keeps ten mantissa bits whose
toggling the inputs change. Only the left operand (the activations) changes between classes; the right
operand is one fixed weight-like matrix, N(0, 1/4096), as the next layer's weights would be.

Exit status: 0 done; 2 no CUDA device without ``--fake`` (one line on stderr).
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

#: The four input classes, in their base order (rounds rotate it).
CLASSES = ("dense-random", "lambda0-acts", "lambda1e-2-acts", "zeros")
#: lambda of the models whose activations feed the two activation classes.
LAMBDAS = {"lambda0-acts": 0.0, "lambda1e-2-acts": 1e-2}
#: The GPU the check measures (cuda:0 is NVML domain gpu:0 under energymeter's CUDA numbering).
DOMAIN = "gpu:0"
#: Seconds of GPU work between synchronisations inside a window: the loop must see the time the GPU
#: spends, but each sync leaves the GPU briefly idle; 50 ms keeps that under 1% of a window.
CHUNK_TARGET_S = 0.05


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-s", type=float, default=420.0,
                        help="overall time budget (s); every part is sized to end within it (default 420)")
    parser.add_argument("--seconds", type=float, default=10.0, help="counter-vs-sampling window length (s)")
    parser.add_argument("--size", type=int, default=8192, help="counter-vs-sampling matmul size n (n x n, fp32)")
    parser.add_argument("--repeats", type=int, default=3, help="counter-vs-sampling windows")
    parser.add_argument("--gemm-size", type=int, default=4096, help="data-dependent GEMM size n (n x n @ n x n)")
    parser.add_argument("--dtype", default="float16", choices=["float16", "bfloat16", "float32"],
                        help="data-dependent GEMM dtype (default float16: tensor cores)")
    parser.add_argument("--window-s", type=float, default=2.0,
                        help="data-dependent window length (s; the NVML counter needs >= 1 s)")
    parser.add_argument("--rounds", type=int, default=15,
                        help="most data-dependent rounds (one window per class each); fewer if the budget ends")
    parser.add_argument("--dataset", default="mnist-5k", help="dataset of the two subject models")
    parser.add_argument("--epochs", type=int, default=2, help="training epochs of each subject model")
    parser.add_argument("--validate-reserve-s", type=float, default=180.0,
                        help="budget kept for the validate subprocess (s)")
    parser.add_argument("--validate-out", help="keep validate's reports here (default: a temporary directory)")
    parser.add_argument("--fake", action="store_true", help="dry run with a fake NVML on the CPU")
    return parser


# -- the fake GPU (--fake): a power model behind FakeNVML's interface ---------------------------------------

class ModelGpu:
    """A fake GPU whose energy counter integrates ``power_mw`` over real time plus explicit charges.

    It has the attributes ``energy_mj``/``power_mw`` of ``energymeter.testing.FakeGpu`` that FakeNVML
    reads live; ``charge`` adds the energy of work done (the data-dependent part of ``--fake``).
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
    """The fake GPU's rule: 2 mJ per GEMM plus 6 mJ times the left operand's nonzero fraction."""
    return 2.0 + 6.0 * nonzero_fraction(operand)


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


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize(device)


def _gpu_state(nvml: Any, uuid: str | None) -> tuple[float | None, float | None]:
    """(temperature in deg C, SM clock in MHz) of the GPU, or None for what NVML does not give."""
    if uuid is None:
        return None, None
    try:
        handle = nvml.nvmlDeviceGetHandleByUUID(uuid)
    except (nvml.NVMLError, AttributeError):
        return None, None
    values: list[float | None] = []
    for query, arg in (("nvmlDeviceGetTemperature", "NVML_TEMPERATURE_GPU"), ("nvmlDeviceGetClockInfo", "NVML_CLOCK_SM")):
        function, constant = getattr(nvml, query, None), getattr(nvml, arg, None)
        try:
            values.append(float(function(handle, constant)) if function is not None and constant is not None else None)
        except nvml.NVMLError:
            values.append(None)
    return values[0], values[1]


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:{spec}}"


def _interval(low: float | None, high: float | None, spec: str) -> str:
    return "[no interval]" if low is None or high is None else f"[{low:{spec}}, {high:{spec}}]"


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


# -- 3. data-dependent power --------------------------------------------------------------------------------

@dataclass
class ClassWindows:
    """What the windows of one input class measured."""

    j_per_gemm: list[float] = field(default_factory=list)  # measured, one per good window
    power_w: list[float] = field(default_factory=list)  # measured joules / window seconds
    gemms_per_s: list[float] = field(default_factory=list)
    temperature_c: list[float] = field(default_factory=list)
    sm_clock_mhz: list[float] = field(default_factory=list)
    by_round: dict[int, float] = field(default_factory=dict)  # round -> J per GEMM
    failed: list[str] = field(default_factory=list)
    provenance: str = ""


def train_subject_models(args: argparse.Namespace, device: str) -> dict[str, Any]:
    """Train the lambda = 0 and lambda = 1e-2 MLPs; return each class's first-hidden-layer activations (CPU)."""
    import torch
    from torch import nn

    from energymeter.models import build, load_dataset, train

    dataset = load_dataset(args.dataset)
    inputs = torch.cat([dataset.x_train, dataset.x_test])
    activations = {}
    for label, lam in LAMBDAS.items():
        start = time.perf_counter()
        model = build("mlp", dataset.in_shape, dataset.num_classes, seed=0)
        result = train(model, dataset, lam=lam, epochs=args.epochs, seed=0, device=device)
        first = model[:3]
        if not isinstance(first[-1], nn.ReLU):
            raise RuntimeError(f"expected the mlp's third module to be its first ReLU, got {first[-1]!r}")
        with torch.no_grad():
            acts = torch.cat([first(inputs[i:i + 1000].to(device)).float().cpu() for i in range(0, len(inputs), 1000)])
        activations[label] = acts
        print(f"  {label}: mlp on {dataset.name}, lambda = {lam:g}, {args.epochs} epoch(s) in "
              f"{time.perf_counter() - start:.1f} s: test accuracy {result.test_accuracy:.4f}, E per test sample "
              f"(l2, sum over hooked units, all layers) {result.activation_energy:.4g} (arbitrary units, not joules), "
              f"first hidden layer {tuple(acts.shape)}")
    return activations


def tile_to(acts: Any, size: int) -> Any:
    """Rows are samples, columns units: repeat both cyclically to fill a size x size matrix."""
    import torch

    rows = torch.arange(size) % acts.shape[0]
    cols = torch.arange(size) % acts.shape[1]
    return acts[rows][:, cols].contiguous()


def build_operands(activations: dict[str, Any], size: int, dtype: Any, device: str) -> tuple[dict[str, Any], Any]:
    """The four left operands (one per class) and the shared right operand, all ``size x size`` on ``device``."""
    import torch

    generator = torch.Generator().manual_seed(0)
    operands = {
        "dense-random": torch.randn(size, size, generator=generator),
        "lambda0-acts": tile_to(activations["lambda0-acts"], size),
        "lambda1e-2-acts": tile_to(activations["lambda1e-2-acts"], size),
        "zeros": torch.zeros(size, size),
    }
    weights = torch.randn(size, size, generator=generator) / math.sqrt(size)
    return ({name: a.to(device=device, dtype=dtype) for name, a in operands.items()},
            weights.to(device=device, dtype=dtype))


def operand_stats(operand: Any) -> tuple[float, float]:
    """(zero fraction, mean square) of an operand as the multipliers see it (after the cast)."""
    values = operand.double()
    return float((values == 0).double().mean()), float((values * values).mean())


def gemms_per_chunk(a: Any, b: Any, out: Any, device: str) -> int:
    """GEMMs that take about ``CHUNK_TARGET_S`` of device time."""
    import torch

    for _ in range(3):
        torch.matmul(a, b, out=out)
    _sync(device)
    count, start = 0, time.perf_counter()
    while count < 2 or time.perf_counter() - start < 0.2:
        torch.matmul(a, b, out=out)
        count += 1
        _sync(device)
    per_gemm_s = (time.perf_counter() - start) / count
    return max(1, int(CHUNK_TARGET_S / per_gemm_s))


def run_windows(meter: Any, operands: dict[str, Any], weights: Any, device: str, window_s: float,
                max_rounds: int, stop_at_s: float, state: Callable[[Any], tuple[float | None, float | None]],
                charge: Callable[[str, int], None] | None = None,
                clock: Callable[[], float] = time.monotonic) -> tuple[dict[str, ClassWindows], int]:
    """Measure interleaved windows, the class order rotating each round (ABCD, BCDA, CDAB, DABC, ...).

    Rotating rather than repeating ABCD cancels thermal drift as ABCD does and also spreads each class
    evenly over the four positions in a round (a class never always follows the coolest one).

    A window runs whole chunks of GEMMs until ``window_s`` has passed; the Meter synchronises CUDA at both
    edges, so every GEMM of a window lands inside it. Rounds stop at ``max_rounds`` or when the next round
    would end after ``stop_at_s`` (seconds on ``clock``, monotonic by default).

    Returns:
        Per class what it measured, and the rounds run.
    """
    import torch

    out = torch.empty_like(weights)
    first = next(iter(operands.values()))  # dense random in the check: the costliest GEMM sizes the chunks
    chunk = gemms_per_chunk(first, weights, out, device)
    start = time.perf_counter()
    while time.perf_counter() - start < window_s:  # warm-up to a steady clock, outside every window
        for _ in range(chunk):
            torch.matmul(first, weights, out=out)
        _sync(device)
    results = {name: ClassWindows() for name in operands}
    names = list(operands)
    round_s = 0.0
    rounds = 0
    while rounds < max_rounds and clock() + max(round_s, len(names) * window_s) < stop_at_s:
        round_start = clock()
        order = names[rounds % len(names):] + names[:rounds % len(names)]
        for name in order:
            a = operands[name]
            gemms = 0
            meter.begin_window(name)
            start = time.perf_counter()
            while time.perf_counter() - start < window_s:
                for _ in range(chunk):
                    torch.matmul(a, weights, out=out)
                if charge is not None:
                    charge(name, chunk)
                gemms += chunk
                _sync(device)
            m = meter.end_window(name)
            record = results[name]
            temperature_c, sm_clock_mhz = state(m.devices.get(DOMAIN))  # just after the window, outside its joules
            if DOMAIN not in m.energy_j:
                record.failed.append(m.failed.get(DOMAIN, f"no {DOMAIN} domain in this window"))
                continue
            joules = m.energy_j[DOMAIN]
            if not joules > 0:
                record.failed.append(f"the energy counter did not advance in {m.duration_s:.2f} s ({joules:g} J)")
                continue
            record.provenance = m.provenance[DOMAIN]
            record.j_per_gemm.append(joules / gemms)
            record.by_round[rounds] = joules / gemms
            record.power_w.append(joules / m.duration_s)
            record.gemms_per_s.append(gemms / m.duration_s)
            if temperature_c is not None:
                record.temperature_c.append(temperature_c)
            if sm_clock_mhz is not None:
                record.sm_clock_mhz.append(sm_clock_mhz)
        rounds += 1
        round_s = clock() - round_start
    return results, rounds


def ratio_to(results: dict[str, ClassWindows], name: str, reference: str) -> Any:
    """Geometric-mean ratio of J per GEMM, ``name`` over ``reference``, paired by round, with its interval."""
    from energymeter.validation.analysis.stats_paired import paired_ratio

    rounds = sorted(set(results[name].by_round) & set(results[reference].by_round))
    return paired_ratio([results[name].by_round[r] for r in rounds], [results[reference].by_round[r] for r in rounds],
                        "j_per_gemm")


def section_data_dependent(args: argparse.Namespace, device: str, options: dict[str, Any], nvml: Any,
                           budget: Budget, fake_gpu: ModelGpu | None,
                           fake_rule: Callable[[Any], float]) -> None:
    import torch

    from energymeter import Meter
    from energymeter.validation.analysis.intervals import t_interval

    dtype = getattr(torch, args.dtype)
    n = args.gemm_size
    print(f"== Data-dependent power: ({n} x {n}) @ ({n} x {n}) {args.dtype} GEMMs on {device}; left operand by "
          "class, right operand one fixed N(0, 1/n) matrix")
    print("subject models (the first hidden layer's post-ReLU activations, rows = samples, tiled cyclically to "
          f"{n} x {n}):")
    activations = train_subject_models(args, device)
    operands, weights = build_operands(activations, n, dtype, device)
    stats = {name: operand_stats(a) for name, a in operands.items()}
    charge = None
    if fake_gpu is not None:
        fake_gpu.power_mw = 0.0  # each window then holds exactly its GEMMs' charges
        charge_mj = {name: fake_rule(a) for name, a in operands.items()}

        def charge(name: str, gemms: int) -> None:
            fake_gpu.charge(charge_mj[name] * gemms)

    meter = Meter(["nvml"], **options)
    try:
        nvml.nvmlInit()  # for the temperature and clock reads; NVML counts its inits
        try:
            stop_at_s = budget.start_s + budget.budget_s - args.validate_reserve_s
            results, rounds = run_windows(meter, operands, weights, device, args.window_s, args.rounds, stop_at_s,
                                          lambda uuid: _gpu_state(nvml, uuid), charge)
        finally:
            nvml.nvmlShutdown()
    finally:
        meter.close()
    provenance = next((r.provenance for r in results.values() if r.provenance), "measured")
    print(f"\n{rounds} round(s) x {len(CLASSES)} classes, windows of {args.window_s:g} s, order rotating each "
          f"round; J per GEMM is the {DOMAIN} energy counter ({provenance}) over the GEMMs the window ran.")
    print("J/GEMM interval: Student t 95% over windows. Ratio to dense-random: paired by round, Student t 95% on the "
          "mean of per-round log ratios, back-transformed (geometric mean).")
    print("zero fraction and mean square are of the left operand as cast; mean square is E per element "
          "(l2, arbitrary units, not joules).")
    header = (f"{'class':<16} {'zero frac':>9} {'mean square':>11} {'n':>3} {'J/GEMM (' + provenance + ')':>20} "
              f"{'95% interval':>24} {'ratio to dense':>14} {'95% interval':>18} {'n pairs':>7} {'W':>7} "
              f"{'GEMM/s':>9} {'deg C':>6} {'SM MHz':>6}")
    print(header)
    rows = {}
    for name in CLASSES:
        record = results[name]
        zero_fraction, mean_square = stats[name]
        energy = t_interval(record.j_per_gemm)
        ratio = ratio_to(results, name, "dense-random")
        rows[name] = (energy, ratio)
        power = t_interval(record.power_w).mean if record.power_w else None
        rate = t_interval(record.gemms_per_s).mean if record.gemms_per_s else None
        temperature = t_interval(record.temperature_c).mean if record.temperature_c else None
        clock = t_interval(record.sm_clock_mhz).mean if record.sm_clock_mhz else None
        print(f"{name:<16} {zero_fraction:>9.4f} {mean_square:>11.4g} {energy.n:>3} {_fmt(energy.mean, '.5g'):>20} "
              f"{_interval(energy.low, energy.high, '.5g'):>24} {_fmt(ratio.estimate, '.4f'):>14} "
              f"{_interval(ratio.low, ratio.high, '.4f'):>18} {ratio.n:>7} {_fmt(power, '.1f'):>7} "
              f"{_fmt(rate, '.1f'):>9} {_fmt(temperature, '.0f'):>6} {_fmt(clock, '.0f'):>6}")
        for reason in record.failed:
            print(f"  {name}: a window failed: {reason}")
    ratio = ratio_to(results, "lambda1e-2-acts", "lambda0-acts")
    e_ratio = stats["lambda1e-2-acts"][1] / stats["lambda0-acts"][1] if stats["lambda0-acts"][1] > 0 else math.nan
    if ratio.low is None or ratio.high is None:
        verdict = "no interval (fewer than 2 paired rounds)"
    elif ratio.high < 1:
        verdict = "the lambda = 1e-2 activations cost less energy per GEMM than the lambda = 0 ones"
    elif ratio.low > 1:
        verdict = "the lambda = 1e-2 activations cost more energy per GEMM than the lambda = 0 ones"
    else:
        verdict = "the interval includes 1: no difference in energy per GEMM resolved at this n"
    print(f"E beside joules: lambda = 1e-2 over lambda = 0: E per element x{e_ratio:.4g}; J per GEMM "
          f"({provenance}) x{_fmt(ratio.estimate, '.4f')} {_interval(ratio.low, ratio.high, '.4f')} "
          f"(n = {ratio.n} paired rounds): {verdict}.")
    print()


# -- 4. validate --------------------------------------------------------------------------------------------

def validate_command(out_dir: str) -> list[str]:
    """The command line of the validate subprocess."""
    return [sys.executable, "-m", "energymeter", "validate", "--device", "cuda:0", "--quick", "--quiet",
            "--out", out_dir]


def section_validate(args: argparse.Namespace, budget: Budget) -> None:
    print("== energymeter validate --device cuda:0 --quick")
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


def main(argv: Sequence[str] | None = None, *, fake_energy_mj_per_gemm: Callable[[Any], float] | None = None) -> int:
    """Run the check.

    Args:
        argv: Command-line arguments.
        fake_energy_mj_per_gemm: With ``--fake``: the fake GPU's energy per GEMM (mJ) as a function of the
            GEMM's left operand (default ``default_fake_energy_mj_per_gemm``).
    """
    args = _parser().parse_args(argv)
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
    section_data_dependent(args, device, options, nvml, budget, fake_gpu,
                           fake_energy_mj_per_gemm or default_fake_energy_mj_per_gemm)
    print(f"[{budget.elapsed_s():.0f} s of {args.budget_s:g} s used]")
    section_validate(args, budget)
    print(f"[{budget.elapsed_s():.0f} s of {args.budget_s:g} s used]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
