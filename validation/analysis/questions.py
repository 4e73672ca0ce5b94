"""The questions a sweep asks, each with its claims, its verdict counts and the design it rests on.

A report opens with one line per question (``summarise``): how many of its claims reached each verdict,
and what the verdicts rest on (pairing by seed, the seeds, the run order sweep.json recorded, the family
control of ``multiplicity``). The claims are then listed by question. The questions are a table
(``QUESTIONS``): a new claim kind joins one by its ``kinds``; a kind no question names is listed under
``OTHER``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from ..records.manifest import SweepManifest
from .claims import PAPER_E_RATIO_V2, PAPER_EFFICIENCY_GAIN, PAPER_MAX_ACC_LOSS_PP, Claim
from .multiplicity import FAMILIES, FamilyControl
from .stats_core import DOES_NOT_TRACK, FAILS, HOLDS, INCONCLUSIVE, TRACKS
from .tables import Tables

#: The order verdicts are counted in; a verdict outside it follows.
VERDICT_ORDER = (TRACKS, DOES_NOT_TRACK, HOLDS, FAILS, INCONCLUSIVE)
OTHER = "other"


@dataclass(frozen=True)
class Question:
    """One question a sweep asks.

    Attributes:
        key: Its name (``tracking``, ``saving``, ...), in report.json's ``summary`` and each claim's ``question``.
        text: The question in words.
        unit: What one claim of it is about, plural (``"(energy figure, lambda) pairs"``).
        lead: The verdict the line leads with (``tracks`` / ``holds``).
        method: How each of its verdicts is reached, in words.
        paired: Whether its claims compare lambda > 0 with lambda = 0 seed by seed.
        match: Whether a claim answers it.
    """

    key: str
    text: str
    unit: str
    lead: str
    method: str
    paired: bool
    match: Callable[[Claim], bool]


def _kind(kind: str, joint: bool | None = None) -> Callable[[Claim], bool]:
    def match(c: Claim) -> bool:
        return c.kind == kind and (joint is None or bool(c.subject.get("joint")) == joint)
    return match


QUESTIONS: tuple[Question, ...] = (
    Question("tracking", "Does energy follow E?", "(energy figure, lambda) pairs", TRACKS,
             "elasticity of energy on E within seed (tracks > 0.05, does_not_track inside +-0.02)",
             True, _kind("energy_tracking")),
    Question("saving", "Does lambda save energy?", "(energy figure, lambda) pairs", HOLDS,
             "energy change at lambda vs 0 on the log scale against the smallest change of interest",
             True, _kind("energy_saving")),
    Question("e_reduction", f"Does E fall about {PAPER_E_RATIO_V2:,.0f}x?", "(lambda, E definition) pairs", HOLDS,
             "E(0) / E(lambda), geometric mean, against 500-2,000x", True, _kind("e_reduction", False)),
    Question("joint", f"Does E fall about {PAPER_E_RATIO_V2:,.0f}x with under {PAPER_MAX_ACC_LOSS_PP} pp of "
             "accuracy lost (the paper's joint claim)?", "groups", HOLDS,
             f"E(0) / E(lambda) at the largest lambda shown to lose under {PAPER_MAX_ACC_LOSS_PP} pp", True, _kind("e_reduction", True)),
    Question("accuracy", f"Is accuracy kept within {PAPER_MAX_ACC_LOSS_PP} pp?", "lambdas", HOLDS,
             "paired accuracy change, Student t, against a loss of 0.5 pp", True, _kind("accuracy_change")),
    Question("efficiency", f"Does lambda give the paper's {PAPER_EFFICIENCY_GAIN[0]:.0%}-{PAPER_EFFICIENCY_GAIN[1]:.0%} "
             "training-efficiency gains?", "(lambda, cost) pairs", HOLDS,
             "cost (J, FLOPs, s) to the baseline's accuracy minus 0.5 pp, paired ratio on the log scale",
             True, _kind("training_efficiency")),
    Question("anova", "Does architecture alone explain almost nothing of accuracy (ANOVA)?", "ANOVA terms", HOLDS,
             "two-way ANOVA of accuracy, lambda blocking; a term matters at p < 0.05 with partial eta^2 >= 0.06",
             False, _kind("architecture_anova")),
    Question("correlation", "Does E correlate with energy across runs?", "energy figures", TRACKS,
             "Pearson r within model x dataset x E groups, cluster bootstrap over seeds", False, _kind("correlation")),
)


@dataclass(frozen=True)
class QuestionSummary:
    """One question's line in a report's summary, and its claims.

    Attributes:
        question: The question.
        counts: Verdict -> claims reaching it (in ``VERDICT_ORDER``).
        withdrawn: Claims whose verdict its family's control withdrew (now inconclusive).
        design: What the verdicts rest on, one phrase each.
        claims: Its claims, in the registry's order.
        indices: Their places in the analysis's claims (report.json's ``claims``).
        absent: Why it has no claims (empty when it has some).
    """

    question: Question
    counts: Mapping[str, int]
    withdrawn: int
    design: tuple[str, ...]
    claims: tuple[Claim, ...]
    indices: tuple[int, ...]
    absent: str = ""

    @property
    def key(self) -> str:
        return self.question.key

    @property
    def total(self) -> int:
        return len(self.claims)

    @property
    def verdicts(self) -> str:
        """``tracks in 3 of 12 (energy figure, lambda) pairs, does_not_track 2, inconclusive 7``."""
        if not self.claims:
            return f"not evaluated: {self.absent}"
        q = self.question
        lead = f"{q.lead} in {self.counts.get(q.lead, 0)} of {self.total} {q.unit}"
        rest = [f"{v} {k}" for v, k in self.counts.items() if v != q.lead]
        withdrawn = f" ({self.withdrawn} withdrawn by the family control)" if self.withdrawn else ""
        return ", ".join([lead, *rest]) + withdrawn

    @property
    def line(self) -> str:
        """The question, its verdicts and its design in one line."""
        return f"{self.question.text} {self.verdicts}. Design: {'; '.join(self.design)}."

    def to_dict(self) -> dict[str, Any]:
        """report.json's entry (``claims``: places in report.json's ``claims``)."""
        return {"key": self.key, "question": self.question.text, "line": self.line, "verdicts": self.verdicts,
                "counts": dict(self.counts), "total": self.total, "withdrawn": self.withdrawn,
                "design": list(self.design), "absent": self.absent or None,
                "claims": list(self.indices)}


def _counts(claims: Sequence[Claim]) -> dict[str, int]:
    found = {c.verdict for c in claims}
    order = [v for v in VERDICT_ORDER if v in found] + sorted(found - set(VERDICT_ORDER))
    return {v: sum(c.verdict == v for c in claims) for v in order}


def run_order(sweep: SweepManifest) -> str:
    """The run order the sweep recorded, in words."""
    if not sweep.run_order:
        return "run order not recorded (no run_order in sweep.json)"
    seed = sweep.config.get("order_seed")
    how = f"random, order_seed {seed}" if seed is not None else "as recorded"
    return f"run order {how} ({len(sweep.run_order)} runs in sweep.json)"


def _seeds(tables: Tables) -> str:
    counts = sorted({r.seeds for r in tables.lambda_rows if r.lam != 0.0})
    if not counts:
        return "no lambda > 0 paired with lambda = 0"
    shown = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    return f"{shown} seed{'' if counts == [1] else 's'} paired with lambda = 0"


def _family(kind_of: Callable[[Claim], bool], claims: Sequence[Claim], families: Sequence[FamilyControl]) -> str:
    names = {FAMILIES.get(c.kind) for c in claims if kind_of(c)}
    shown = [f"{_METHOD_NAMES.get(f.method, f.method)} over the {f.size} {f.family} claims ({f.kept} of "
             f"{f.decided} decided kept)" for f in families if f.family in names]
    return "; ".join(shown) if shown else "each verdict read alone from its interval (no family control)"


_METHOD_NAMES = {"holm": "Holm", "bh": "Benjamini-Hochberg"}


def summarise(claims: Sequence[Claim], families: Sequence[FamilyControl], tables: Tables,
              sweep: SweepManifest, absent: Mapping[str, str] | None = None,
              measured: Sequence[str] = ()) -> tuple[QuestionSummary, ...]:
    """One summary per question (every question, even one this sweep could not evaluate; ``OTHER`` only
    when some claim answers none), each with its claims.

    Args:
        claims: Every claim (after the family control).
        families: How each family was controlled.
        tables: The sweep's tables (for the seeds).
        sweep: The manifest (for the run order).
        absent: Question key -> why it has no claims, where the analysis knows (e.g. the ANOVA's skip reason).
        measured: How the energy was measured (``"inference: interleaved rounds, ..."``), for the paired questions.
    """
    absent = dict(absent or {})
    order = run_order(sweep)
    out = []
    taken: set[int] = set()
    for q in QUESTIONS:
        mine = tuple(i for i, c in enumerate(claims) if q.match(c) and i not in taken)
        taken.update(mine)
        method = q.method + (f" ({tables.sesoi:.0%})" if q.key == "saving" else "")
        design = ((method,) + ((_seeds(tables), order, *measured) if q.paired else (order,))
                  + (_family(q.match, claims, families),))
        out.append(_summary(q, claims, mine, design, "" if mine else absent.get(q.key, "no such claim on this sweep")))
    rest = tuple(i for i in range(len(claims)) if i not in taken)
    if rest:
        q = Question(OTHER, "Other registered claims:", "claims", HOLDS, "as each claim states", False,
                     lambda c: False)
        out.append(_summary(q, claims, rest, (q.method,), ""))
    return tuple(out)


def _summary(q: Question, claims: Sequence[Claim], indices: tuple[int, ...], design: tuple[str, ...],
             absent: str) -> QuestionSummary:
    mine = tuple(claims[i] for i in indices)
    return QuestionSummary(q, _counts(mine), sum("withdrawn_by" in c.details for c in mine), design, mine, indices,
                           absent)
