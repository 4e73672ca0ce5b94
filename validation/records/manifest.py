"""``sweep.json``, typed: what a sweep was asked to run and where it ran. The only code that knows its layout.

The sweep writes one ``SweepManifest`` before its first run and checks it on ``--resume``; the reports read
its settings and metadata. Every field may be absent on reading (a manifest written by hand or by an older
energymeter): the sweep refuses to resume one whose fingerprint does not match, the reports show what is there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from .characterisation import SweepCharacterisation
from .store import SWEEP_FILE, StoreError, write_json_atomic


@dataclass(frozen=True)
class SweepManifest:
    """The contents of sweep.json.

    Attributes:
        fingerprint: Hash of the settings that define the sweep (``SweepConfig.fingerprint()``).
        config: The sweep's settings (``SweepConfig.to_dict()``), as JSON.
        activation_energy_definitions: E definition -> its formula, for the reports.
        energy_backends: The energy backends each run's meter opens.
        reference_reps: Repetitions of the reference workload, fixed for the whole sweep (None: not recorded).
        run_order: Run keys in the order they run.
        metadata: Machine and software facts (``run.metadata.collect``).
        backend_changes: Each ``--resume`` that continued on other energy backends than the sweep began
            with (``--allow-backend-change``): ``{"from": [...], "to": [...], "after_runs": N}``.
        characterisations: The hardware counters as characterised at the sweep's start and at each
            ``--resume``, with the minimum window taken from them (none in manifests older than them).
    """

    fingerprint: str | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    activation_energy_definitions: Mapping[str, str] = field(default_factory=dict)
    energy_backends: tuple[str, ...] = ()
    reference_reps: int | None = None
    run_order: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    backend_changes: tuple[Mapping[str, Any], ...] = ()
    characterisations: tuple[SweepCharacterisation, ...] = ()

    def __post_init__(self) -> None:
        for name in ("config", "activation_energy_definitions", "metadata"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name) or {})))
        object.__setattr__(self, "energy_backends", tuple(self.energy_backends))
        object.__setattr__(self, "run_order", tuple(self.run_order))
        object.__setattr__(self, "backend_changes", tuple(MappingProxyType(dict(c)) for c in self.backend_changes))
        object.__setattr__(self, "characterisations", tuple(self.characterisations))

    @property
    def country(self) -> str | None:
        """The ISO 3166-1 alpha-3 country the sweep was run with (None: not asked)."""
        value = self.config.get("country")
        return None if value is None else str(value)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of sweep.json."""
        return {"fingerprint": self.fingerprint, "config": _plain(self.config),
                "activation_energy_definitions": dict(self.activation_energy_definitions),
                "energy_backends": list(self.energy_backends), "reference_reps": self.reference_reps,
                "run_order": list(self.run_order), "metadata": _plain(self.metadata),
                "backend_changes": [_plain(c) for c in self.backend_changes],
                "characterisations": [c.to_dict() for c in self.characterisations]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SweepManifest":
        """Read sweep.json's object (absent fields take their defaults).

        Raises:
            ValueError, TypeError: a field of the wrong type.
        """
        reps = data.get("reference_reps")
        fingerprint = data.get("fingerprint")
        return cls(None if fingerprint is None else str(fingerprint), dict(data.get("config") or {}),
                   {str(k): str(v) for k, v in (data.get("activation_energy_definitions") or {}).items()},
                   tuple(str(b) for b in data.get("energy_backends") or ()), None if reps is None else int(reps),
                   tuple(str(k) for k in data.get("run_order") or ()), dict(data.get("metadata") or {}),
                   tuple(dict(c) for c in data.get("backend_changes") or ()),
                   tuple(SweepCharacterisation.from_dict(c) for c in data.get("characterisations") or ()))


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def write_manifest(directory: Path, manifest: SweepManifest) -> None:
    """Write ``directory/sweep.json`` atomically.

    Raises:
        StoreError: the write failed.
    """
    write_json_atomic(directory / SWEEP_FILE, manifest.to_dict())


def read_manifest(directory: Path) -> SweepManifest | None:
    """The directory's sweep.json, or None when there is none.

    Raises:
        StoreError: it exists but is not a JSON object of this layout.
    """
    path = directory / SWEEP_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StoreError(f"{path} is unreadable ({exc})") from exc
    if not isinstance(data, dict):
        raise StoreError(f"{path} is not a JSON object")
    try:
        return SweepManifest.from_dict(data)
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        raise StoreError(f"{path} is not a sweep manifest ({exc})") from exc
