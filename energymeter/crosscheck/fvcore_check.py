"""fvcore's count of one forward pass, beside torch's, with the conventions named (fvcore counts MACs)."""

from __future__ import annotations

from typing import Any

from ..errors import BackendUnavailable


def fvcore_cross_check(model: Any, inputs: tuple[Any, ...]) -> dict[str, Any]:
    """Count one forward pass with fvcore, for comparison with torch's counter.

    fvcore counts one fused multiply-add as one "flop", i.e. it reports MACs; torch counts 2 FLOPs per
    multiply-add. The result names the convention so the two are not confused.

    Args:
        model: A ``torch.nn.Module``.
        inputs: Positional inputs for one forward pass.

    Returns:
        ``{"macs": int, "flops_equivalent": 2 * macs, "convention": ..., "unsupported_ops": {...}}``.

    Raises:
        BackendUnavailable: fvcore is not installed (``pip install 'energymeter[fvcore]'``).
    """
    try:
        from fvcore.nn import FlopCountAnalysis
    except ImportError as exc:
        raise BackendUnavailable("fvcore is not installed: pip install 'energymeter[fvcore]'") from exc
    import logging

    analysis = FlopCountAnalysis(model, inputs)
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    logger = logging.getLogger("fvcore")
    level = logger.level
    logger.setLevel(logging.ERROR)  # fvcore logs per-operator notes while counting; restored after
    try:
        macs = int(analysis.total())
    finally:
        logger.setLevel(level)
    return {"macs": macs, "flops_equivalent": 2 * macs,
            "convention": "fvcore counts one multiply-add as 1 (MACs); energymeter/torch count it as 2 FLOPs",
            "unsupported_ops": dict(analysis.unsupported_ops())}
