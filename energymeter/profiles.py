"""Loading and checking the device profiles in ``hardware_profiles/`` (shipped as package data)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import ProfileError

PROFILE_PACKAGE = "energymeter.hardware_profiles"


def load_profile(name_or_path: str | Path, kind: str) -> dict[str, Any]:
    """Read a profile by bundled name (``"cpu"``, ``"loihi1"``) or by file path.

    Args:
        name_or_path: A bundled profile's name, or a path to a JSON file.
        kind: The ``kind`` the profile must declare (``"cpu"``, ``"loihi"``).

    Raises:
        ProfileError: missing file, invalid JSON, or a profile of another kind or schema version.
    """
    path = Path(name_or_path)
    if path.suffix == ".json" or path.exists():
        label = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ProfileError(f"cannot read profile {label}: {exc.strerror or exc}") from exc
    else:
        label = f"bundled profile {name_or_path!r}"
        try:
            text = resources.files(PROFILE_PACKAGE).joinpath(f"{name_or_path}.json").read_text(encoding="utf-8")
        except (OSError, ModuleNotFoundError) as exc:
            raise ProfileError(f"no {label}; bundled: {', '.join(bundled_profiles())}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProfileError(f"{label} is not valid JSON: {exc.msg} at line {exc.lineno}") from exc
    if not isinstance(data, dict):
        raise ProfileError(f"{label} must be a JSON object")
    if data.get("schema_version") != 1:
        raise ProfileError(f"{label}: unsupported schema_version {data.get('schema_version')!r} (expected 1)")
    if data.get("kind") != kind:
        raise ProfileError(f"{label}: kind is {data.get('kind')!r}, expected {kind!r}")
    return data


def bundled_profiles() -> list[str]:
    """Names of the profiles shipped with the package."""
    return sorted(p.name[:-5] for p in resources.files(PROFILE_PACKAGE).iterdir() if p.name.endswith(".json"))


@dataclass(frozen=True)
class CpuPower:
    """The modeled power of one busy hardware thread.

    Attributes:
        cpu_model: The CPU model string it was matched on.
        tdp_w: The package TDP in watts.
        threads: Hardware threads sharing that TDP.
        source: Where the TDP comes from.
    """

    cpu_model: str
    tdp_w: float
    threads: int
    source: str

    @property
    def power_per_thread_w(self) -> float:
        """TDP divided evenly over the hardware threads (W)."""
        return self.tdp_w / self.threads


def _positive(entry: dict[str, Any], key: str, label: str) -> float:
    value = entry.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ProfileError(f"{label}: {key!r} must be a positive number, got {value!r}")
    return float(value)


def cpu_power(cpu_model: str, default_threads: int, profile: str | Path = "cpu") -> CpuPower:
    """Match a CPU model string against the CPU profile.

    Args:
        cpu_model: E.g. ``"AMD EPYC 7763 64-Core Processor"``.
        default_threads: Threads to use with the default entry (the machine's logical CPUs).
        profile: Bundled profile name or a JSON path.

    Raises:
        ProfileError: the profile is malformed or incomplete.
    """
    data = load_profile(profile, "cpu")
    models = data.get("models", [])
    if not isinstance(models, list):
        raise ProfileError("cpu profile: 'models' must be a list")
    for i, entry in enumerate(models):
        label = f"cpu profile models[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("match"), str) or not entry.get("source"):
            raise ProfileError(f"{label}: needs 'match' (a regex) and 'source'")
        try:
            pattern = re.compile(entry["match"])
        except re.error as exc:
            raise ProfileError(f"{label}: bad regex {entry['match']!r}: {exc}") from exc
        if pattern.search(cpu_model):
            return CpuPower(cpu_model, _positive(entry, "tdp_w", label), int(_positive(entry, "threads", label)),
                            str(entry["source"]))
    default = data.get("default")
    if not isinstance(default, dict) or not default.get("source"):
        raise ProfileError("cpu profile: needs a 'default' entry with 'tdp_w' and 'source'")
    return CpuPower(cpu_model, _positive(default, "tdp_w", "cpu profile default"), max(int(default_threads), 1),
                    str(default["source"]))
