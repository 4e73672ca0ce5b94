"""The counters a sweep was characterised with, typed: one ``SweepCharacterisation`` per start of the sweep.

The sweep characterises this machine's hardware counters before its first run and again at every
``--resume`` (``energymeter.characterise``); ``sweep.json`` keeps each one, and each run record the one in
force when it ran. Manifests and records written before characterisation existed have none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from energymeter.counters import CounterCharacter


@dataclass(frozen=True)
class SweepCharacterisation:
    """What the sweep found of each counter when it (re)started, and the minimum window it took from them.

    Attributes:
        counters: Each hardware domain's figures (measured, or published where it could not be timed).
        min_window_s: The inference window's minimum in the runs that followed (s): the sweep's
            ``min_window_s``, raised to ``energymeter.counters.MIN_WINDOW_UPDATES`` x the slowest update period.
        asked_min_window_s: The sweep's own ``min_window_s`` (s).
        after_runs: Runs finished before this characterisation (0 at the sweep's start).
        at_s: Unix time it was made.
    """

    counters: tuple[CounterCharacter, ...]
    min_window_s: float
    asked_min_window_s: float
    after_runs: int = 0
    at_s: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "counters", tuple(self.counters))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {"counters": [c.to_dict() for c in self.counters], "min_window_s": self.min_window_s,
                "asked_min_window_s": self.asked_min_window_s, "after_runs": self.after_runs, "at_s": self.at_s}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SweepCharacterisation":
        """Read ``to_dict``'s form.

        Raises:
            KeyError, TypeError, ValueError: a malformed entry.
        """
        if not isinstance(data, Mapping):
            raise TypeError(f"a characterisation is a JSON object, not {type(data).__name__}")
        counters = data.get("counters") or ()
        if not isinstance(counters, (list, tuple)):
            raise TypeError("characterisation counters must be a list")
        return cls(tuple(CounterCharacter.from_dict(c) for c in counters), float(data["min_window_s"]),
                   float(data["asked_min_window_s"]), int(data.get("after_runs", 0)), float(data.get("at_s", 0.0)))
