"""Cross-check of the torch simulator's lava mode against lava-nc itself, run in its own Python 3.10.

lava-nc needs Python 3.10, so it runs as a subprocess, always under a timeout (misconfigured lava
runs can hang silently). The interpreter is ``$ENERGYMETER_LAVA_PYTHON``, else ``python3.10`` on PATH,
else pyenv's 3.10; it must have lava-nc installed (``make lava-venv`` builds ``.venv-lava``).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import EnergymeterError
from .convert import SpikingLayer, SpikingNetwork
from .simulate import LavaLif, simulate

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
class LavaNetwork:
    """A feed-forward LIF network as both lava and the torch simulator see it.

    Attributes:
        weights: Per layer, (out, in) weights.
        biases: Per layer, (out,) biases.
        lif: LIF parameters shared by every layer.
    """

    weights: tuple[torch.Tensor, ...]
    biases: tuple[torch.Tensor, ...]
    lif: LavaLif

    def to_spiking(self) -> SpikingNetwork:
        """The torch simulator's version: every layer spiking, Linear synapses."""
        layers = []
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            op = nn.Linear(w.shape[1], w.shape[0])
            with torch.no_grad():
                op.weight.copy_(w)
                op.bias.copy_(b)
            layer = SpikingLayer(str(i), "linear", op, False, True, in_shape=(w.shape[1],), out_shape=(w.shape[0],))
            layer.fanout = (w != 0).sum(0).to(torch.float32)
            layers.append(layer)
        return SpikingNetwork(layers, (self.weights[0].shape[1],), reset="zero")

    def spec(self, spikes: torch.Tensor) -> dict[str, Any]:
        """The runner's JSON input for spikes of shape (samples, timesteps, inputs)."""
        return {"layers": [{"weights": w.tolist(), "bias": b.tolist()} for w, b in zip(self.weights, self.biases)],
                "du": self.lif.du, "dv": self.lif.dv, "vth": self.lif.vth, "samples": spikes.tolist(),
                "timesteps": int(spikes.shape[1])}


def torch_spikes(network: LavaNetwork, spikes: torch.Tensor) -> list[list[list[int]]]:
    """Spikes per sample, layer and timestep from the torch simulator in lava mode."""
    snn = network.to_spiking()
    out = []
    for sample in spikes:
        sim = simulate(snn, sample.unsqueeze(0), int(spikes.shape[1]), dynamics="lava", lif=network.lif)
        out.append([sim.spikes_per_timestep[layer.name] for layer in snn.layers])
    return out


def lava_spikes(network: LavaNetwork, spikes: torch.Tensor, python: str | None = None,
                timeout_s: float = DEFAULT_TIMEOUT_S) -> tuple[list[list[list[int]]], float]:
    """Spikes per sample, layer and timestep from lava-nc, and lava's wall time (s).

    Raises:
        LavaUnavailable: no usable interpreter.
        EnergymeterError: the run failed or exceeded ``timeout_s``.
    """
    python = python or find_lava_python()
    try:
        proc = subprocess.run([python, str(RUNNER)], input=json.dumps(network.spec(spikes)), capture_output=True,
                              text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        raise EnergymeterError(f"lava-nc run exceeded its {timeout_s:g} s timeout") from exc
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
        raise EnergymeterError(f"lava-nc run failed (exit {proc.returncode}): {tail}")
    data = json.loads(proc.stdout)
    return data["spikes"], float(data["wall_s"])


def random_network(sizes: list[int], seed: int, lif: LavaLif, weight_scale: float = 0.6,
                   bias_scale: float = 0.05) -> LavaNetwork:
    """A random feed-forward network (weights and biases drawn from a seeded normal distribution)."""
    gen = torch.Generator().manual_seed(seed)
    weights = tuple(torch.randn(o, i, generator=gen) * weight_scale for i, o in zip(sizes[:-1], sizes[1:]))
    biases = tuple(torch.randn(o, generator=gen) * bias_scale for o in sizes[1:])
    return LavaNetwork(weights, biases, lif)


def random_spikes(samples: int, timesteps: int, inputs: int, rate: float, seed: int) -> torch.Tensor:
    """Bernoulli input spikes of shape (samples, timesteps, inputs)."""
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(samples, timesteps, inputs, generator=gen) < rate).to(torch.float32)
