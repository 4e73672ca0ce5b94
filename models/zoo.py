"""The subject models: ``build(name, in_shape, num_classes, **kwargs)``.

Every model uses ReLU-family activations as modules (so ``ActivationEnergy`` sees them and the
network converts to a spiking one), bias-carrying Linear/Conv layers and average pooling.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from torch import nn

from .kwta import KWinnersTakeAll


def _features(in_shape: Sequence[int]) -> int:
    return int(math.prod(in_shape))


def mlp(in_shape: Sequence[int], num_classes: int, hidden: Sequence[int] = (256, 256)) -> nn.Sequential:
    """Flatten -> [Linear -> ReLU] x len(hidden) -> Linear. Default 784-256-256-10 on 28x28 inputs."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = _features(in_shape)
    for size in hidden:
        layers += [nn.Linear(width, int(size)), nn.ReLU()]
        width = int(size)
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


def kwta_mlp(in_shape: Sequence[int], num_classes: int, hidden: Sequence[int] = (256, 256),
             k_fraction: float = 0.1) -> nn.Sequential:
    """Like ``mlp`` but each hidden layer keeps only its top ``k_fraction`` of units (k-WTA)."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = _features(in_shape)
    for size in hidden:
        layers += [nn.Linear(width, int(size)), KWinnersTakeAll(k_fraction)]
        width = int(size)
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


def cnn(in_shape: Sequence[int], num_classes: int, channels: Sequence[int] = (6, 16),
        hidden: Sequence[int] = (120, 84)) -> nn.Sequential:
    """LeNet-like: [Conv5x5(pad 2) -> ReLU -> AvgPool2] x 2 -> Flatten -> [Linear -> ReLU] x 2 -> Linear.

    Padding keeps spatial size through each convolution, so 8x8 digits and 28x28 MNIST both fit.
    """
    if len(in_shape) != 3:
        raise ValueError(f"cnn needs (channels, height, width) input, got {tuple(in_shape)}")
    c, h, w = (int(v) for v in in_shape)
    layers: list[nn.Module] = []
    for out in channels:
        layers += [nn.Conv2d(c, int(out), kernel_size=5, padding=2), nn.ReLU(), nn.AvgPool2d(2)]
        c, h, w = int(out), h // 2, w // 2
    if h < 1 or w < 1:
        raise ValueError(f"input {tuple(in_shape)} is too small for {len(channels)} pooling stages")
    layers.append(nn.Flatten())
    width = c * h * w
    for size in hidden:
        layers += [nn.Linear(width, int(size)), nn.ReLU()]
        width = int(size)
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


MODELS: dict[str, Callable[..., nn.Module]] = {"mlp": mlp, "cnn": cnn, "kwta-mlp": kwta_mlp}


def build(name: str, in_shape: Sequence[int], num_classes: int, *, seed: int | None = None, **kwargs) -> nn.Module:
    """Build a subject model.

    Args:
        name: ``"mlp"``, ``"cnn"`` or ``"kwta-mlp"``.
        in_shape: One sample's shape, e.g. ``(1, 28, 28)``.
        num_classes: Output classes.
        seed: Seeds the weight initialisation (the global torch RNG is left as it was).
        **kwargs: Model options (``hidden``, ``channels``, ``k_fraction``).

    Raises:
        ValueError: unknown name (the message lists the known ones) or bad options.
    """
    try:
        factory = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(MODELS)}") from None
    if seed is None:
        return factory(in_shape, num_classes, **kwargs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return factory(in_shape, num_classes, **kwargs)
