"""E's rescaling symmetry: a change of weights that leaves every prediction unchanged and E not.

For a positive factor ``a``, ``relu(a z) = a relu(z)``: multiply the weight and bias of the layer that
feeds activation layer l by ``a_l`` and divide the weight of the next weighted layer by ``a_l``, and
the network computes the same function while layer l's outputs are ``a_l`` times larger. l2 E moves by
``a_l^2`` per layer, l1 E by ``a_l``, l0 E (active units) not at all. Chained through the layers, the
weighted layer k (inputs scaled by ``a_{k-1}``, outputs by ``a_k``) gets ``W * a_k / a_{k-1}`` and
``b * a_k``; the output layer ``W / a_last``.

What holds per subject model (each tested in ``tests/test_rescaling.py``):

* ``mlp``: exact up to float rounding (ReLU is positively homogeneous).
* ``cnn``: the same, through average pooling and flattening (both linear); a per-layer factor scales
  every channel of a convolution alike.
* ``kwta-mlp``: k-WTA keeps each sample's top k of ``relu(x)``; scaling a whole layer by ``a > 0``
  keeps the ranking, so the same winners are kept: function-preserving per layer. A per-unit factor
  (a different ``a`` per unit) would change the ranking, and is no symmetry of k-WTA, though it is one of
  a plain ReLU layer; ``rescale`` offers per-layer factors only, the symmetry every subject model has.
"""

from __future__ import annotations

import copy
from typing import Sequence, Union

import torch
from torch import nn

from .activation_energy import ACTIVATION_TYPES
from .kwta import KWinnersTakeAll

#: Activations with ``f(a x) = a f(x)`` for every a > 0 (the only ones a rescaling passes through).
HOMOGENEOUS_TYPES: tuple[type[nn.Module], ...] = (nn.ReLU, KWinnersTakeAll)
#: Layers that commute with a scalar factor (linear, no weights of their own).
_PASS_THROUGH: tuple[type[nn.Module], ...] = (nn.Flatten, nn.AvgPool2d, nn.AvgPool1d, nn.Dropout, nn.Identity)
_WEIGHTED: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d)

Factors = Union[float, Sequence[float]]


def activation_layers(model: nn.Module) -> list[str]:
    """Names of ``model``'s activation layers in order: the layers ``rescale``'s factors apply to."""
    return [name for name, m in model.named_modules() if name and isinstance(m, ACTIVATION_TYPES)]


def rescale(model: nn.Module, factor: Factors) -> nn.Module:
    """A copy of ``model`` whose activation layer l outputs ``factor_l`` times as much, computing the same function.

    Args:
        model: An ``nn.Sequential`` of weighted layers (Linear/Conv), ReLU or k-WTA activations and linear
            pass-through layers (Flatten, AvgPool), ending in a weighted layer: every subject model.
        factor: One positive factor for every activation layer, or one per activation layer in order
            (``activation_layers(model)``).

    Returns:
        The rescaled copy (``model`` is left as it was). With ``factor = 1000 ** -0.5`` its l2 E is 1000x
        lower, its l1 E 31.6x lower, its l0 E and every prediction the same (to float rounding).

    Raises:
        ValueError: a factor that is not positive and finite, the wrong number of factors, an activation
            that is not positively homogeneous (e.g. GELU, Sigmoid), a layer rescaling cannot pass
            through, or a network that does not end in a weighted layer.
    """
    if not isinstance(model, nn.Sequential):
        raise ValueError(f"rescale needs an nn.Sequential, got {type(model).__name__}")
    n_act = sum(isinstance(m, ACTIVATION_TYPES) for m in model)
    factors = [float(factor)] * n_act if isinstance(factor, (int, float)) else [float(f) for f in factor]
    if len(factors) != n_act:
        raise ValueError(f"{len(factors)} factors for {n_act} activation layers")
    if not all(f > 0 and f < float("inf") for f in factors):
        raise ValueError(f"rescaling factors must be positive and finite, got {factors}")
    out = copy.deepcopy(model)
    weighted = [i for i, m in enumerate(out) if isinstance(m, _WEIGHTED)]
    if not weighted or weighted[-1] != len(out) - 1:
        raise ValueError("the network must end in a weighted layer (Linear or Conv) for rescaling to cancel")
    scale_in, pending, act_index = 1.0, None, 0  # the factor on the current signal; the layer feeding it
    with torch.no_grad():
        for i, module in enumerate(out):
            if isinstance(module, _WEIGHTED):
                if pending is not None:
                    raise ValueError(f"layer {i} ({type(module).__name__}) follows a weighted layer without an "
                                     "activation between them")
                pending = module
                module.weight.div_(scale_in)
            elif isinstance(module, ACTIVATION_TYPES):
                if not isinstance(module, HOMOGENEOUS_TYPES):
                    raise ValueError(f"activation {i} ({type(module).__name__}) is not positively homogeneous: "
                                     "no rescaling passes through it unchanged")
                if pending is None:
                    raise ValueError(f"activation {i} has no weighted layer before it to carry the factor")
                a = factors[act_index]
                act_index += 1
                pending.weight.mul_(a)
                if pending.bias is not None:
                    pending.bias.mul_(a)
                scale_in, pending = a, None
            elif not isinstance(module, _PASS_THROUGH):
                raise ValueError(f"layer {i} ({type(module).__name__}) is not known to commute with a scalar factor")
    return out
