"""A scale-free activation energy: E with each layer measured in units of its own activation scale.

``rescale`` (``rescaling.py``) shows that l2 E can fall 1000x with no change to what a ReLU network
computes. The scale-free E divides each layer's share by that layer's activation scale s_l, the
99.9th percentile of its non-zero outputs on the same inputs (the scale the Loihi conversion,
``energymeter.loihi.conversion``, normalises each layer by):

* ``l2-scale-free``: sum_l E_l2,l / s_l^2      * ``l1-scale-free``: sum_l E_l1,l / s_l

(per sample, arbitrary units). Scaling layer l's outputs by any a_l > 0 scales E_l2,l by a_l^2 and s_l by
a_l, so any positive per-layer rescaling leaves both unchanged; what is left is how many units are
active and how their values are spread below the scale. A layer with no non-zero output adds 0.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .activation_energy import ActivationEnergy

#: The percentile of non-zero outputs taken as a layer's scale (the Loihi conversion's default).
SCALE_PERCENTILE = 99.9
#: At most this many non-zero values per layer enter its percentile (a fixed stride over the rest).
_MAX_SCALE_VALUES = 2_000_000
SCALE_FREE_KINDS = ("l2-scale-free", "l1-scale-free")


def _quantile(values: list[torch.Tensor], q: float) -> float:
    flat = torch.cat(values) if values else torch.zeros(0)
    if flat.numel() == 0:
        return math.nan
    if flat.numel() > _MAX_SCALE_VALUES:  # quantile()'s size limit
        flat = flat[:: flat.numel() // _MAX_SCALE_VALUES + 1]
    return float(torch.quantile(flat.double(), q / 100.0))


def activation_energies(model: nn.Module, x: torch.Tensor, *, batch_size: int = 1000,
                        device: str | torch.device = "cpu",
                        percentile: float = SCALE_PERCENTILE) -> dict[str, float]:
    """Mean E per sample of ``model`` on ``x`` under every definition, in one pass without gradients.

    Args:
        model: A subject model.
        x: Inputs (N, ...).
        batch_size: Samples per forward.
        device: Where to run.
        percentile: The layer scale's percentile of non-zero outputs.

    Returns:
        ``{"l2", "l1", "l0", "l2-scale-free", "l1-scale-free"}`` to mean E per sample (reduction ``sum``).
    """
    n = len(x)
    sums: dict[str, list[float]] = {}  # layer -> [sum of squares, sum of |a|, active units]
    positives: dict[str, list[torch.Tensor]] = {}
    strides: dict[str, int] = {}
    was_training = model.training
    model.eval()
    with ActivationEnergy(model, "l2") as hooks, torch.no_grad():
        for start in range(0, n, batch_size):
            model(x[start:start + batch_size].to(device))
            for name, out in hooks._outputs():
                flat = out.detach().reshape(-1).double()
                acc = sums.setdefault(name, [0.0, 0.0, 0.0])
                acc[0] += float(torch.dot(flat, flat))
                acc[1] += float(flat.abs().sum())
                acc[2] += float((flat != 0).sum())
                stride = strides.setdefault(name, max(1, math.ceil(flat.numel() / len(out) * n / _MAX_SCALE_VALUES)))
                nonzero = flat[flat > 0]
                positives.setdefault(name, []).append(nonzero[::stride].float().cpu())
    model.train(was_training)
    out_e = {"l2": 0.0, "l1": 0.0, "l0": 0.0, "l2-scale-free": 0.0, "l1-scale-free": 0.0}
    for name, (sq, ab, active) in sums.items():
        out_e["l2"] += sq / n
        out_e["l1"] += ab / n
        out_e["l0"] += active / n
        scale = _quantile(positives[name], percentile)
        if math.isfinite(scale) and scale > 0:
            out_e["l2-scale-free"] += sq / n / scale ** 2
            out_e["l1-scale-free"] += ab / n / scale
    return out_e
