"""The internal activation energy E(theta, x) that the energy-regularised loss penalises.

The paper behind ``L = L_CE + lambda * E`` gives no explicit formula for E; energymeter names its
choice and lets users change it. For a batch of B samples, with a_l(x) the output of activation
layer l for sample x and n_l its number of units:

* ``l2`` (default): E = 1/B sum_x sum_l sum_i a_{l,i}(x)^2      (sum of squared activations)
* ``l1``:           E = 1/B sum_x sum_l sum_i |a_{l,i}(x)|      (sum of absolute activations)
* ``l0``:           E = 1/B sum_x sum_l #{i : a_{l,i}(x) != 0}  (active units; counted, not differentiable)

``reduction="mean"`` divides each layer's term by n_l. A callable may replace the kind: it takes a
layer's output (B, ...) and returns a per-sample tensor (B,).
"""

from __future__ import annotations

from typing import Callable, Iterable, Union

import torch
from torch import nn

from .kwta import KWinnersTakeAll

#: Module types whose outputs count as activations.
ACTIVATION_TYPES: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Softplus, KWinnersTakeAll,
)

PerSampleFn = Callable[[torch.Tensor], torch.Tensor]
Kind = Union[str, PerSampleFn]


def _l2(a: torch.Tensor) -> torch.Tensor:
    return a.pow(2).flatten(1).sum(1)


def _l1(a: torch.Tensor) -> torch.Tensor:
    return a.abs().flatten(1).sum(1)


def _l0(a: torch.Tensor) -> torch.Tensor:
    return (a.detach() != 0).flatten(1).sum(1).to(a.dtype)


KINDS: dict[str, PerSampleFn] = {"l2": _l2, "l1": _l1, "l0": _l0}

def _l2_total(a: torch.Tensor) -> torch.Tensor:
    # One dot product: a single kernel each way, where pow/sum would launch several.
    flat = a.reshape(-1)
    return torch.dot(flat, flat)


def _l1_total(a: torch.Tensor) -> torch.Tensor:
    return a.abs().sum()


# A layer's E summed over the batch: the training path's fast form of the per-sample definitions above
# (the loss needs only the batch mean, so per-sample sums are built only when asked for, and with
# reduction="sum" the division by the batch size happens once, not per layer).
_BATCH_TOTALS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"l2": _l2_total, "l1": _l1_total}


class ActivationEnergy:
    """Forward hooks that compute E on the same forward pass as the loss.

    After ``model(x)``, ``.value`` is E for that batch (a differentiable scalar, except ``l0``),
    ``.per_sample`` its per-sample terms (B,), and ``.per_layer`` each layer's share (floats).
    Each forward of ``model`` starts a new batch. Use as a context manager or call ``remove()``.

    Args:
        model: The network.
        kind: ``"l2"``, ``"l1"``, ``"l0"`` or a callable (B, ...) -> (B,).
        reduction: ``"sum"`` over units, or ``"mean"`` (each layer's term divided by its unit count).
        layers: Extra module names (as in ``model.named_modules()``) to treat as activations.

    Raises:
        ValueError: unknown kind or reduction, a named layer that does not exist, or no activation found.
    """

    def __init__(self, model: nn.Module, kind: Kind = "l2", reduction: str = "sum",
                 layers: Iterable[str] = ()) -> None:
        if callable(kind):
            self.kind_name, self._fn = getattr(kind, "__name__", "custom"), kind
        elif kind in KINDS:
            self.kind_name, self._fn = str(kind), KINDS[kind]
        else:
            raise ValueError(f"unknown energy kind {kind!r}; known: {', '.join(KINDS)} or a callable")
        if reduction not in ("sum", "mean"):
            raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
        self.reduction = reduction
        modules = dict(model.named_modules())
        wanted = set(layers)
        missing = sorted(wanted - set(modules))
        if missing:
            raise ValueError(f"no module named {', '.join(missing)} in the model")
        self.layer_names = [name for name, m in modules.items()
                            if name and (isinstance(m, ACTIVATION_TYPES) or name in wanted)]
        if not self.layer_names:
            raise ValueError("the model has no activation modules to hook (use nn.ReLU etc. as modules, "
                             "or name layers explicitly)")
        self._total = _BATCH_TOTALS.get(self.kind_name) if not callable(kind) else None
        # The training path (l2/l1, reduction "sum") keeps only the layer outputs during the forward and
        # computes E on the first read of ``value``: the hooks do no arithmetic and no per-layer
        # bookkeeping beyond one append, and E's kernels are the ones written inline would launch.
        self._lazy = self._total is not None and reduction == "sum"
        self._calls: list[tuple[str, torch.Tensor, int]] = []  # (layer, output, its version) in call order
        self._value: torch.Tensor | None = None
        self._handles = [model.register_forward_pre_hook(self._reset)]
        self._handles += [modules[name].register_forward_hook(self._hook(name)) for name in self.layer_names]
        self.enabled = True

    def _reset(self, module: nn.Module, args: object) -> None:
        self._calls = []
        self._value = None

    def _hook(self, name: str) -> Callable[[nn.Module, object, torch.Tensor], None]:
        def hook(module: nn.Module, args: object, output: torch.Tensor) -> None:
            if self.enabled:
                # Kept by reference (autograd holds them anyway); the version detects a later in-place change.
                self._calls.append((name, output, output._version))
        return hook

    def _outputs(self) -> list[tuple[str, torch.Tensor]]:
        if not self._calls:
            raise RuntimeError("no forward pass has run through the hooked model yet")
        for name, output, version in self._calls:
            if output._version != version:
                raise RuntimeError(f"the output of layer {name!r} was changed in place after it was produced "
                                   "(an inplace op downstream); E cannot be computed from it: make that op "
                                   "out-of-place")
        return [(name, output) for name, output, _ in self._calls]

    @staticmethod
    def _units_of(output: torch.Tensor) -> int:
        return output[0].numel() if output.dim() > 0 else 1

    def _compute_value(self) -> torch.Tensor:
        outputs = self._outputs()
        value: torch.Tensor | None = None
        if self._lazy:
            assert self._total is not None
            for _, output in outputs:
                raw = self._total(output)
                value = raw if value is None else value + raw
            last = outputs[-1][1]
            assert value is not None
            return value * (1.0 / (last.shape[0] if last.dim() > 0 else 1))
        for _, output in outputs:
            units = self._units_of(output)
            if self._total is not None:
                batch = output.shape[0] if output.dim() > 0 else 1
                term = self._total(output) * (1.0 / (batch * units))
            else:
                term = self._fn(output).mean()
                if self.reduction == "mean":
                    term = term / units
            value = term if value is None else value + term
        assert value is not None
        return value

    def _layer_terms(self) -> dict[str, torch.Tensor]:
        grouped: dict[str, list[torch.Tensor]] = {}
        for name, output in self._outputs():
            grouped.setdefault(name, []).append(output)
        terms = {}
        for name, outputs in grouped.items():
            per = [self._fn(o) for o in outputs]
            term = per[0] if len(per) == 1 else torch.stack(per).sum(0)  # a module used twice adds both uses
            terms[name] = term / self._units_of(outputs[-1]) if self.reduction == "mean" else term
        return terms

    @property
    def per_sample(self) -> torch.Tensor:
        """E of each sample in the last batch, shape (B,) (computed on demand, differentiable for l1/l2)."""
        return torch.stack(list(self._layer_terms().values())).sum(0)

    @property
    def value(self) -> torch.Tensor:
        """E for the last batch: the mean over samples of the per-sample energy (a scalar tensor)."""
        if self._value is None:
            self._value = self._compute_value()
        return self._value

    @property
    def per_layer(self) -> dict[str, float]:
        """Each layer's share of E for the last batch (mean over samples)."""
        with torch.no_grad():
            return {name: float(term.mean()) for name, term in self._layer_terms().items()}

    @property
    def units(self) -> dict[str, int]:
        """Units per sample of each hooked layer (known after a forward pass)."""
        return {name: self._units_of(output) for name, output, _ in self._calls}

    def remove(self) -> None:
        """Remove every hook."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __enter__(self) -> "ActivationEnergy":
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()
