"""The report's sections on energy paired by round: inference in interleaved rounds, training in chunks."""

from __future__ import annotations

import math

from ..analysis.analysis import Analysis
from ..analysis.rounds import PairedComparison
from .section import Section, fmt

_HEADERS = ("model", "dataset", "E", "lambda", "domain", "provenance", "energy change over seeds",
            "log ratio over seeds", "seeds", "rounds per seed", "measurement SE", "seed SD")


def _change(c: PairedComparison) -> str:
    """exp(mean log ratio) - 1 in percent, with the interval's ends mapped the same way."""
    iv = c.across_seeds
    if iv.low is None or iv.high is None:
        return f"{math.expm1(iv.mean) * 100:+.1f}% (n={iv.n}, no interval)"
    return f"{math.expm1(iv.mean) * 100:+.1f}% [{math.expm1(iv.low) * 100:+.1f}, {math.expm1(iv.high) * 100:+.1f}]"


def _rows(comparisons: tuple[PairedComparison, ...]) -> tuple[tuple[str, ...], ...]:
    return tuple((c.model, c.dataset, c.activation_energy_kind, f"{c.lam:g}", c.domain, c.provenance, _change(c),
                  fmt(c.across_seeds, '+.3f'), str(len(c.seeds)), ",".join(str(s.rounds) for s in c.seeds),
                  "n/a" if c.measurement_se is None else f"{c.measurement_se:.3f}",
                  "n/a" if c.seed_sd is None else f"{c.seed_sd:.3f}") for c in comparisons)


_READING = ("'over seeds' is the mean of the seeds' mean log ratios (95% t interval over seeds); 'measurement SE' "
            "is the within-seed standard error over rounds, 'seed SD' the spread of the seeds' means (training "
            "variability plus measurement noise). Raw joules: the design cancels drift, so these figures need no "
            "drift correction.")


def _section(title: str, design: str, comparisons: tuple[PairedComparison, ...], how: str, unprotected: str) -> Section:
    """The comparisons of one design, or, without any, what the sweep's design leaves to drift."""
    if not comparisons:
        return Section(title, 3, paragraphs=(f"{design}: {unprotected}",))
    return Section(f"{title} ({design})", 3, paragraphs=(f"{how} {_READING}",), headers=_HEADERS,
                   rows=_rows(comparisons))


def paired_sections(a: Analysis) -> list[Section]:
    """Inference paired by round and training paired by chunk, or, for each, why the sweep has none."""
    return [
        _section("Inference paired by round", a.inference_design, a.inference_rounds,
                 "Each round measured every network of one seed once, in a fresh balanced order (Williams squares), "
                 "each window the same fixed batch; the log ratio of joules per sample, lambda over lambda = 0, is "
                 "taken within each round, so drift and slow counter noise cancel.",
                 "no interleaved rounds in this sweep: each run's inference window ran right after its training, "
                 "so drift of the machine falls on whichever lambda ran then."),
        _section("Training paired by chunk", a.training_design, a.training_rounds,
                 "The networks of one seed were trained round-robin, one epoch each per round in a fresh balanced "
                 "order, each epoch a window of its own; the log ratio of joules per epoch, lambda over lambda = 0, "
                 "is taken within each round (epoch k against epoch k).",
                 "drift of the machine falls on whichever lambda trained when it happened."),
    ]
