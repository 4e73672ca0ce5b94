"""Loading and checking the device profiles in ``hardware_profiles/`` (shipped as package data)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

from . import strict_json
from .errors import ProfileError
from .strict_json import StrictJSONError

PROFILE_PACKAGE = "energymeter.hardware_profiles"

#: The schema version each kind of profile must declare.
SCHEMA_VERSIONS = {"cpu": 2, "loihi": 1, "power-limits": 1}
#: What changed, for a profile that declares an older version.
_UPGRADE_HINTS = {
    ("cpu", 1): "version 1 matched CPU models with regular expressions, which a crafted pattern can make take "
                "exponential time; version 2 names the model's words instead, e.g. "
                "\"model\": \"AMD EPYC 7763\" in place of \"match\": \"AMD EPYC 7763\\\\b\"",
}


def load_profile(name_or_path: str | Path, kind: str) -> dict[str, Any]:
    """Read a profile by bundled name (``"cpu"``, ``"loihi1"``, ``"power-limits"``) or by file path.

    Args:
        name_or_path: A bundled profile's name, or a path to a JSON file.
        kind: The ``kind`` the profile must declare (``"cpu"``, ``"loihi"``, ``"power-limits"``).

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
        data = strict_json.loads(text)
    except StrictJSONError as exc:
        raise ProfileError(f"{label}: {exc}") from None
    if not isinstance(data, dict):
        raise ProfileError(f"{label} must be a JSON object")
    if data.get("kind") != kind:
        raise ProfileError(f"{label}: kind is {data.get('kind')!r}, expected {kind!r}")
    expected = SCHEMA_VERSIONS.get(kind, 1)
    version = data.get("schema_version")
    if version != expected:
        hint = _UPGRADE_HINTS.get((kind, version)) if isinstance(version, (int, str)) else None  # a list: unhashable
        raise ProfileError(f"{label}: unsupported schema_version {version!r:.60} (expected {expected})"
                           + (f": {hint}" if hint else ""))
    return data


def bundled_profiles() -> list[str]:
    """Names of the profiles shipped with the package."""
    return sorted(p.name[:-5] for p in resources.files(PROFILE_PACKAGE).iterdir() if p.name.endswith(".json"))


#: Physical upper bounds of a profile's figures: a value beyond one is a typo or a hostile file, and a
#: ceiling of 1e308 W would turn off every plausibility check it feeds. Generous on purpose: the largest
#: server CPU packages draw about 500 W, a whole 8-GPU board under 15 kW; a counter updates within 1 s.
BOUNDS = {"tdp_w": 5_000.0, "tdp_w_per_thread": 100.0, "threads": 1_000_000.0, "max_power_w": 100_000.0, "step_allowance_s": 10.0,
          "energy_pj": 1e9}


def _positive(entry: dict[str, Any], key: str, label: str) -> float:
    value = entry.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or value != value:
        raise ProfileError(f"{label}: {key!r} must be a positive number, got {value!r:.40}")
    return within_bounds(float(value), key, label)


def within_bounds(value: float, key: str, label: str) -> float:
    """``value`` when it lies within the physical bound of ``key`` (``BOUNDS``).

    Raises:
        ProfileError: above the bound (the message names the file, the field and the bound).
    """
    bound = BOUNDS.get(key.split(".")[0])
    if bound is not None and not value <= bound:
        raise ProfileError(f"{label}: {key!r} of {value:g} is above its physical bound of {bound:g}")
    return value


# -- CPU TDPs ---------------------------------------------------------------------------------------

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


# Trademark marks are dropped so "Intel(R) Xeon(R) Gold 6248" and "Intel Xeon Gold 6248" name the same
# model. A fixed pattern with no nested repetition: linear in the text's length.
_MARKS = re.compile(r"\((?:R|TM|C)\)|[\u00ae\u2122]", re.IGNORECASE)


def model_words(text: str) -> list[str]:
    """A CPU model string as case-folded words, trademark marks removed (``"Xeon(R) Gold"`` -> ``xeon gold``)."""
    return _MARKS.sub(" ", text).casefold().split()


def names_model(profile_words: list[str], model: list[str]) -> bool:
    """True when ``profile_words`` occur as consecutive whole words of ``model``.

    Whole words, so ``"Xeon Platinum 8380"`` does not name an ``8380H``. The time is at most
    len(model) x len(profile_words) word comparisons, whatever the input: a profile cannot make
    matching slow, as a regular expression such as ``(a+)+$`` could.
    """
    n = len(profile_words)
    if n == 0:
        return False
    first = profile_words[0]
    for i in range(len(model) - n + 1):
        if model[i] == first and model[i:i + n] == profile_words:
            return True
    return False


def cpu_power(cpu_model: str, default_threads: int, profile: str | Path = "cpu") -> CpuPower:
    """Match a CPU model string against the CPU profile.

    An entry's ``model`` is the words of a model name (``"AMD EPYC 7763"``); it matches a CPU whose
    model string contains those words consecutively, ignoring case and (R)/(TM) marks. The first
    matching entry wins.

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
    words = model_words(cpu_model)
    matched: CpuPower | None = None
    for i, entry in enumerate(models):
        label = f"cpu profile models[{i}]"
        if not isinstance(entry, dict):
            raise ProfileError(f"{label}: must be an object with 'model', 'tdp_w', 'threads' and 'source'")
        if "match" in entry:
            raise ProfileError(f"{label}: 'match' (a regular expression) is not accepted, since a pattern can take "
                               "exponential time; give 'model', the words of the model name, e.g. "
                               "\"model\": \"Xeon Gold 6248\"")
        if not isinstance(entry.get("model"), str) or not model_words(entry["model"]) or not entry.get("source"):
            raise ProfileError(f"{label}: needs 'model' (the words of a model name) and 'source'")
        # Every entry's figures are checked, the entries this CPU does not match too: a hostile file fails whole.
        tdp_w, entry_threads = _positive(entry, "tdp_w", label), int(_positive(entry, "threads", label))
        if matched is None and names_model(model_words(entry["model"]), words):
            matched = CpuPower(cpu_model, tdp_w, entry_threads, str(entry["source"]))
    default = data.get("default")
    if not isinstance(default, dict) or not default.get("source"):
        raise ProfileError("cpu profile: needs a 'default' entry with 'tdp_w' (or 'tdp_w_per_thread') and 'source'")
    # Both figures checked where given (a per-thread figure, where present, is the one used).
    per_thread_w = _positive(default, "tdp_w_per_thread", "cpu profile default") if "tdp_w_per_thread" in default \
        else None
    default_tdp_w = _positive(default, "tdp_w", "cpu profile default") if "tdp_w" in default or per_thread_w is None \
        else None
    if matched is not None:
        return matched
    threads = max(int(default_threads), 1)
    if per_thread_w is not None:  # a figure per hardware thread, times this machine's threads
        tdp_w = within_bounds(per_thread_w * threads, "tdp_w", "cpu profile default x threads")
        return CpuPower(cpu_model, tdp_w, threads, str(default["source"]))
    return CpuPower(cpu_model, default_tdp_w, threads, str(default["source"]))  # type: ignore[arg-type]


# -- Power ceilings for plausibility checks ---------------------------------------------------------

@dataclass(frozen=True)
class PowerLimits:
    """The most power a counter's domain can plausibly draw, used to reject impossible counter steps.

    A step of a cumulative counter is plausible when it is at most ``max_power_w`` of its domain kind x
    (the time since the previous read + ``step_allowance_s``).

    Attributes:
        max_power_w: Domain kind (``"package"``, ``"dram"``, ``"psys"``, ``"core"``, ``"uncore"``,
            ``"gpu"``) to its ceiling in watts.
        default_max_power_w: Ceiling for a domain kind the profile does not name (W).
        step_allowance_s: Seconds at the ceiling allowed on top of the elapsed time (counters update in
            bursts and are not read at the same instant as the clock).
        sources: Domain kind (and ``"default"``, ``"step_allowance_s"``) to the rationale of its figure.
        profile: Which profile the figures came from.
    """

    max_power_w: Mapping[str, float]
    default_max_power_w: float
    step_allowance_s: float
    sources: Mapping[str, str]
    profile: str = "power-limits"

    def for_kind(self, kind: str) -> float:
        """The ceiling in watts for a domain kind (the last part of a domain name: ``cpu:0:dram`` -> ``dram``)."""
        return self.max_power_w.get(kind, self.default_max_power_w)


def power_limits(profile: str | Path = "power-limits") -> PowerLimits:
    """Read the power ceilings profile.

    Args:
        profile: Bundled profile name (default ``"power-limits"``) or a JSON path.

    Raises:
        ProfileError: the profile is malformed or incomplete.
    """
    data = load_profile(profile, "power-limits")
    default = data.get("default")
    if not isinstance(default, dict) or not default.get("source"):
        raise ProfileError("power-limits profile: needs a 'default' entry with 'max_power_w' and 'source'")
    sources = {"default": str(default["source"])}
    default_w = _positive(default, "max_power_w", "power-limits profile default")
    allowance = data.get("step_allowance_s")
    if not isinstance(allowance, dict) or not allowance.get("source"):
        raise ProfileError("power-limits profile: needs 'step_allowance_s' with 'value' and 'source'")
    value = allowance.get("value")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
        raise ProfileError(f"power-limits profile: step_allowance_s 'value' must be a number >= 0, got {value!r:.40}")
    within_bounds(float(value), "step_allowance_s", "power-limits profile")
    sources["step_allowance_s"] = str(allowance["source"])
    domains = data.get("domains")
    if not isinstance(domains, dict):
        raise ProfileError("power-limits profile: 'domains' must map domain kinds to entries")
    ceilings = {}
    for kind, entry in domains.items():
        label = f"power-limits profile domains[{kind!r}]"
        if not isinstance(entry, dict) or not entry.get("source"):
            raise ProfileError(f"{label}: needs 'max_power_w' and 'source'")
        ceilings[kind] = _positive(entry, "max_power_w", label)
        sources[kind] = str(entry["source"])
    return PowerLimits(ceilings, default_w, float(value), sources, str(profile))
