"""Joules to CO2-equivalent with codecarbon's offline per-country carbon intensity (no network); provenance modeled."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from energymeter.errors import EnergymeterError

J_PER_KWH = 3.6e6


class CarbonError(EnergymeterError):
    """codecarbon missing or a country it has no data for."""


def intensity_g_per_kwh(country_iso3: str) -> tuple[float, str]:
    """Grid carbon intensity (gCO2e/kWh) and its source, from codecarbon's bundled energy-mix table.

    Raises:
        CarbonError: codecarbon is not installed, or the code is not in its table.
    """
    # The data file is read where the package lies, without importing codecarbon (its import logs warnings
    # about the machine's GPUs on stderr).
    spec = importlib.util.find_spec("codecarbon")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    try:
        if not locations:
            raise FileNotFoundError("codecarbon")
        text = Path(locations[0], "data", "private_infra", "global_energy_mix.json").read_text(encoding="utf-8")
    except OSError as exc:
        raise CarbonError("--country needs codecarbon's offline data: pip install 'energymeter[carbon]'") from exc
    table = json.loads(text)
    code = country_iso3.upper()
    if code not in table:
        raise CarbonError(f"unknown country code {country_iso3!r}: give an ISO 3166-1 alpha-3 code such as FRA or USA")
    entry = table[code]
    return float(entry["carbon_intensity"]), f"codecarbon global_energy_mix.json, {entry.get('country_name', code)}, " \
                                             f"year {entry.get('year', '?')}"


def co2e_g(energy_j: float, country_iso3: str) -> float:
    """Grams of CO2e for ``energy_j`` joules drawn from that country's grid (modeled)."""
    intensity, _ = intensity_g_per_kwh(country_iso3)
    return energy_j / J_PER_KWH * intensity
