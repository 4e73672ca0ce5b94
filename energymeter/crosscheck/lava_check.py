"""Cross-check of the torch simulator's lava mode against lava-nc itself, run in its own Python 3.10.

``run_lava`` sends any number of ``LavaNetwork``s (with their input spikes) to one lava subprocess
(``lava_runner.py``) and returns each network's spikes, per neuron if asked, and lava's timings with
``run()`` apart from build and read-out. ``random_network`` draws networks from the family the test
suite compares (bias-driven first layer, 2-4 Dense+LIF layers, widths 3-200, four weight kinds, per-layer
du, dv and thresholds).

lava-nc needs Python 3.10, so it runs as a subprocess, always under a timeout (misconfigured lava
runs can hang silently). The interpreter is ``$ENERGYMETER_LAVA_PYTHON``, else ``python3.10`` on PATH,
else pyenv's 3.10; it must have lava-nc installed (``make lava-venv`` builds ``.venv-lava``).
"""

from __future__ import annotations

import glob
import json
import os
import random
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from ..errors import EnergymeterError
from ..loihi.lava_network import LavaLayer, LavaNetwork
from ..loihi.simulation import simulate

RUNNER = Path(__file__).with_name("lava_runner.py")
DEFAULT_TIMEOUT_S = 300.0


class LavaUnavailable(EnergymeterError):
    """No Python 3.10 with lava-nc was found; the message says what was tried."""


def _candidates() -> list[str]:
    found = []
    env = os.environ.get("ENERGYMETER_LAVA_PYTHON")
    if env:
        found.append(env)
    on_path = shutil.which("python3.10")
    if on_path:
        found.append(on_path)
    pyenv_root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    found += sorted(glob.glob(os.path.join(pyenv_root, "versions", "3.10*", "bin", "python3.10")))
    return found


def find_lava_python(timeout_s: float = 60.0) -> str:
    """The first candidate interpreter that is Python 3.10 and imports lava.

    Raises:
        LavaUnavailable: none works; the message lists what each candidate said.
    """
    notes = []
    for candidate in _candidates():
        try:
            proc = subprocess.run([candidate, "-c", "import sys; assert sys.version_info[:2] == (3, 10), sys.version; "
                                   "import lava.magma"], capture_output=True, text=True, timeout=timeout_s)
        except (OSError, subprocess.TimeoutExpired) as exc:
            notes.append(f"{candidate}: {exc}")
            continue
        if proc.returncode == 0:
            return candidate
        last = (proc.stderr.strip().splitlines() or ["failed"])[-1]
        notes.append(f"{candidate}: {last}")
    raise LavaUnavailable("no Python 3.10 with lava-nc found (set ENERGYMETER_LAVA_PYTHON, or run `make lava-venv`); "
                          + ("tried " + "; ".join(notes) if notes else "no python3.10 candidate exists"))


@dataclass(frozen=True)
class LavaRun:
    """What lava-nc did with one network: spikes per sample, layer and timestep, and how long it took.

    Attributes:
        spikes: Per sample, per layer, spikes per timestep.
        neuron_spikes: With ``record="neurons"``: per layer name, a bool tensor (samples, timesteps, neurons).
        build_s: Per sample, seconds to construct and wire lava's processes and monitors.
        run_s: Per sample, seconds in lava's ``run()`` alone (it compiles, starts the runtime and steps).
        readout_s: Per sample, seconds to read the monitors and ``stop()``.
    """

    spikes: list[list[list[int]]]
    neuron_spikes: dict[str, torch.Tensor] | None
    build_s: tuple[float, ...]
    run_s: tuple[float, ...]
    readout_s: tuple[float, ...]

    @property
    def total_s(self) -> tuple[float, ...]:
        """Per sample, build + run + read-out seconds."""
        return tuple(b + r + o for b, r, o in zip(self.build_s, self.run_s, self.readout_s))


def _inputs(network: LavaNetwork, spikes: torch.Tensor | None, timesteps: int) -> torch.Tensor:
    if spikes is None:
        if network.input_size:
            raise ValueError(f"this network takes {network.input_size} input spikes per timestep; got none")
        return torch.zeros(1, timesteps, 0)
    if spikes.dim() != 3 or spikes.shape[1] != timesteps or spikes.shape[2] != network.input_size:
        raise ValueError(f"spikes must be (samples, {timesteps}, {network.input_size}), got {tuple(spikes.shape)}")
    return spikes


def network_spec(network: LavaNetwork, spikes: torch.Tensor | None, timesteps: int) -> dict[str, Any]:
    """One network's entry in the runner's JSON input (float64 values, written exactly by ``json``)."""
    layers = [{"weights": None if layer.weights is None else layer.weights.to(torch.float64).tolist(),
               "bias": layer.bias.to(torch.float64).tolist(), "du": layer.du, "dv": layer.dv, "vth": layer.vth}
              for layer in network.layers]
    samples = (_inputs(network, spikes, timesteps) != 0).to(torch.int8).tolist()
    return {"timesteps": int(timesteps), "layers": layers, "samples": samples}


def run_lava(cases: Sequence[tuple[LavaNetwork, torch.Tensor | None, int]], *, record: str = "counts",
             python: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> list[LavaRun]:
    """Run each (network, spikes (samples, timesteps, inputs) or None, timesteps) in lava-nc, in one subprocess.

    Raises:
        LavaUnavailable: no usable interpreter.
        EnergymeterError: the run failed or exceeded ``timeout_s``.
    """
    if record not in ("counts", "neurons"):
        raise ValueError(f"record must be 'counts' or 'neurons', got {record!r}")
    python = python or find_lava_python()
    spec = {"schema_version": 2, "record": record,
            "networks": [network_spec(network, spikes, timesteps) for network, spikes, timesteps in cases]}
    try:
        proc = subprocess.run([python, str(RUNNER)], input=json.dumps(spec), capture_output=True, text=True,
                              timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        raise EnergymeterError(f"lava-nc run exceeded its {timeout_s:g} s timeout") from exc
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
        raise EnergymeterError(f"lava-nc run failed (exit {proc.returncode}): {tail}")
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise EnergymeterError(f"lava-nc runner printed no readable result: {exc}") from exc
    if len(data.get("results", ())) != len(cases):
        raise EnergymeterError(f"lava-nc returned {len(data.get('results', ()))} result(s) for {len(cases)} "
                               "network(s): nothing is compared")
    runs = []
    for (network, _, _), result in zip(cases, data["results"], strict=True):
        neurons = None
        if record == "neurons":
            samples = result["neurons"]
            neurons = {name: torch.tensor([[[c == "1" for c in row] for row in sample[i]] for sample in samples],
                                          dtype=torch.bool).view(len(samples), -1, layer.neurons)
                       for i, (name, layer) in enumerate(zip(network.names, network.layers))}
        runs.append(LavaRun(result["spikes"], neurons, tuple(result["build_s"]), tuple(result["run_s"]),
                            tuple(result["readout_s"])))
    return runs


WEIGHT_KINDS = ("signed", "sparse", "heavy-tailed", "integer")


def random_network(seed: int, *, widths: Sequence[int] | None = None, input_size: int = 0,
                   weight_kind: str | None = None) -> LavaNetwork:
    """A random network of the family the cross-check covers, drawn from ``seed``.

    A bias-driven first LIF layer (or, with ``input_size``, a Dense layer from that many input neurons),
    then 2-4 Dense+LIF layers; widths 3-200; weights signed normal, sparse (70-95% zeros), heavy-tailed
    (Pareto tails of index 1.5, random signs) or small integers; du and dv each 0, small (0.001-0.1), 1 or
    uniform in (0, 1); a threshold per layer (integers with integer weights). A bias-driven layer's
    biases reach 2 x max(dv, 0.1) x vth, so about half its neurons spike; weight scales keep most later
    layers spiking. The same seed gives the same network.

    Args:
        seed: Seeds every draw.
        widths: Neurons per layer (first layer first) instead of drawn ones.
        input_size: External input neurons; 0 (default) for a bias-driven first layer.
        weight_kind: One of ``WEIGHT_KINDS`` instead of a drawn one.
    """
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    if widths is None:
        widths = [rng.randint(3, 200) for _ in range(rng.randint(3, 5) - (1 if input_size else 0))]
    kind = weight_kind or rng.choice(WEIGHT_KINDS)
    if kind not in WEIGHT_KINDS:
        raise ValueError(f"weight_kind must be one of {', '.join(WEIGHT_KINDS)}, got {kind!r}")

    def decay() -> float:
        return rng.choice([0.0, rng.uniform(0.001, 0.1), 1.0, rng.random()])

    layers = []
    fan_in = input_size
    for index, width in enumerate(widths):
        vth = float(rng.randint(1, 4)) if kind == "integer" else rng.uniform(0.3, 2.0)
        du, dv = decay(), decay()
        if index == 0 and not input_size:
            # v settles at bias / dv without spiking: half the neurons get a bias above dv * vth
            bias = torch.rand(width, generator=gen, dtype=torch.float64) * 2 * max(dv, 0.1) * vth
            layers.append(LavaLayer(du=du, dv=dv, vth=vth, bias=bias))
        else:
            scale = vth * 2.5 / max(fan_in, 1) ** 0.5
            shape = (width, fan_in)
            if kind == "integer":
                weights = torch.randint(-2, 4, shape, generator=gen).to(torch.float64)
            elif kind == "heavy-tailed":
                # Pareto tails (index 1.5: infinite variance) with random signs, from the seeded generator
                uniform = torch.rand(shape, generator=gen, dtype=torch.float64).clamp(min=1e-12)
                sign = torch.where(torch.rand(shape, generator=gen, dtype=torch.float64) < 0.4, -1.0, 1.0)
                weights = (sign * (uniform ** (-1 / 1.5) - 1) * scale).clamp(-20 * vth, 20 * vth)
            else:
                weights = torch.randn(shape, generator=gen, dtype=torch.float64) * scale + 0.3 * scale
                if kind == "sparse":
                    keep = torch.rand(shape, generator=gen, dtype=torch.float64) > rng.uniform(0.7, 0.95)
                    weights = weights * keep / keep.double().mean().clamp(min=0.05).sqrt()
            bias = torch.randn(width, generator=gen, dtype=torch.float64) * 0.02 * vth
            layers.append(LavaLayer(du=du, dv=dv, vth=vth, weights=weights, bias=bias))
        fan_in = width
    return LavaNetwork(layers)


def random_spikes(samples: int, timesteps: int, inputs: int, rate: float, seed: int) -> torch.Tensor:
    """Bernoulli input spikes of shape (samples, timesteps, inputs)."""
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(samples, timesteps, inputs, generator=gen) < rate).to(torch.float32)


def compare_random_networks(networks: int, seed: int, *, near_ties: int = 0, chunk: int = 25,
                            python: str | None = None, exact: bool = False) -> dict[str, Any]:
    """Compare the simulator with lava-nc, neuron by neuron, on ``networks`` random bias-driven networks.

    ``near_ties`` of them get a threshold planted within 1e-7 of a potential they reach
    (``lava_reference.plant_near_tie``); the rest are left as drawn. Returns a summary: how many were
    compared, how many came within 1e-7 of a threshold (float64 reference), the widest and longest,
    and the seeds of any that differ. ``exact=True`` runs the simulator's exact mode (lava's own Dense sum).
    """
    import numpy as np

    from .lava_reference import plant_near_tie, run_reference

    rng = random.Random(seed)
    cases: list[tuple[int, LavaNetwork, int]] = []
    while len(cases) < networks:
        net_seed, timesteps = rng.randrange(2**31), rng.randint(20, 120)
        network = random_network(net_seed)
        if len(cases) < near_ties:
            planted = plant_near_tie(network, timesteps, net_seed)
            if planted is None:
                continue
            network = planted[0]
        cases.append((net_seed, network, timesteps))
    python = python or find_lava_python()
    mismatches, near, widest, longest = [], 0, 0, 0
    for start in range(0, len(cases), chunk):
        part = cases[start:start + chunk]
        runs = run_lava([(net, None, steps) for _, net, steps in part], record="neurons", python=python, timeout_s=1800)
        for (net_seed, net, steps), run in zip(part, runs, strict=True):
            sim = simulate(net, None, steps, record="neurons", exact=exact)
            assert sim.neuron_spikes is not None and run.neuron_spikes is not None
            if not all(torch.equal(sim.neuron_spikes[n], run.neuron_spikes[n]) for n in net.names):
                mismatches.append(net_seed)
            near += run_reference(net, None, steps, np.float64).closest_to_threshold()[0] < 1e-7
            widest, longest = max(widest, max(net.sizes)), max(longest, steps)
    return {"networks": len(cases), "planted_near_ties": near_ties, "within_1e-7_of_threshold": int(near),
            "widest_layer": widest, "longest_timesteps": longest, "mismatched_seeds": mismatches, "seed": seed,
            "exact": exact}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m energymeter.crosscheck.lava_check --networks N [--near-ties K] [--seed S]``: print the summary as JSON."""
    import argparse

    parser = argparse.ArgumentParser(description=compare_random_networks.__doc__.splitlines()[0])
    parser.add_argument("--networks", type=int, default=100)
    parser.add_argument("--near-ties", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--exact", action="store_true", help="compare the simulator's exact mode")
    args = parser.parse_args(argv)
    try:
        summary = compare_random_networks(args.networks, args.seed, near_ties=args.near_ties, exact=args.exact)
    except LavaUnavailable as exc:
        parser.exit(2, f"{exc}\n")
    print(json.dumps(summary))
    return 1 if summary["mismatched_seeds"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
