"""k-winners-take-all: the sparse activation of the "energy-first" subject model."""

from __future__ import annotations

import math

import torch
from torch import nn


class KWinnersTakeAll(nn.Module):
    """Keeps each sample's k largest ReLU outputs and zeroes the rest.

    ``k = max(1, ceil(k_fraction * units))`` per sample over all non-batch dimensions. The output is
    ``relu(x)`` masked to the top k, so it stays in the ReLU family (non-negative, piecewise linear)
    and converts to a spiking network; gradients flow through the winners only.

    Args:
        k_fraction: Fraction of units kept, in (0, 1]. Default 0.1.
    """

    def __init__(self, k_fraction: float = 0.1) -> None:
        super().__init__()
        if not 0 < k_fraction <= 1:
            raise ValueError(f"k_fraction must be in (0, 1], got {k_fraction!r}")
        self.k_fraction = k_fraction

    def k_for(self, units: int) -> int:
        """Winners kept out of ``units``."""
        return max(1, math.ceil(self.k_fraction * units))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = torch.relu(x).flatten(1)
        k = self.k_for(flat.shape[1])
        threshold = flat.topk(k, dim=1).values[:, -1:]
        # Ties at the threshold may keep a few more than k; zeros never count as winners.
        mask = (flat >= threshold) & (flat > 0)
        return (flat * mask).view_as(x)

    def extra_repr(self) -> str:
        return f"k_fraction={self.k_fraction}"
