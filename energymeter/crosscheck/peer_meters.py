"""Peer readings of the same inference window, where a peer is installed and a measured domain exists.

* pyRAPL (Intel RAPL through its own sysfs reader): package and DRAM joules per socket, compared with
  energymeter's ``cpu:N:package`` / ``cpu:N:dram``.
* codecarbon (``OfflineEmissionsTracker``, no network): its CPU + RAM + GPU energy; codecarbon picks
  its own method (RAPL where readable, else a TDP model), which its figure inherits.

Without a measured domain there is nothing to cross-check: each peer is recorded as not run, with why.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, Iterator, Mapping

from ..domains import CPU, Domain

J_PER_KWH = 3.6e6


def _pyrapl_begin() -> Any:
    import pyRAPL

    pyRAPL.setup()
    meas = pyRAPL.Measurement("energymeter-crosscheck")
    meas.begin()
    return meas


def _pyrapl_end(meas: Any) -> dict[str, Any]:
    meas.end()
    result = meas.result
    out: dict[str, Any] = {"duration_s": result.duration / 1e6}
    for i, uj in enumerate(result.pkg or []):
        out[f"cpu:{i}:package"] = uj / 1e6
    for i, uj in enumerate(result.dram or []):
        out[f"cpu:{i}:dram"] = uj / 1e6
    return out


@contextlib.contextmanager
def _quiet_fds() -> Iterator[None]:
    """Send file descriptors 1 and 2 to /dev/null for the block: codecarbon's libraries print there from C."""
    import os
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


def _codecarbon_begin(country: str | None) -> Any:
    with _quiet_fds():
        from codecarbon import OfflineEmissionsTracker

        logging.getLogger("codecarbon").setLevel(logging.ERROR)
        # codecarbon writes nothing with save_to_file=False; its output_dir must still exist: the cwd is
        # used rather than a temporary directory outside what the user chose.
        tracker = OfflineEmissionsTracker(country_iso_code=(country or "USA").upper(), save_to_file=False,
                                          log_level="error", measure_power_secs=1)
        tracker.start()
    return tracker


def _codecarbon_end(tracker: Any) -> dict[str, Any]:
    with _quiet_fds():
        tracker.stop()
    data = tracker.final_emissions_data
    return {"energy_j": float(data.energy_consumed) * J_PER_KWH, "cpu_energy_j": float(data.cpu_energy) * J_PER_KWH,
            "ram_energy_j": float(data.ram_energy) * J_PER_KWH, "gpu_energy_j": float(data.gpu_energy) * J_PER_KWH,
            "note": "codecarbon's own method (RAPL where readable, else its TDP model)"}


PEERS = {"pyRAPL": (_pyrapl_begin, _pyrapl_end, "cpu"), "codecarbon": (_codecarbon_begin, _codecarbon_end, "any")}


@contextlib.contextmanager
def peers(domains: Mapping[str, Domain], country: str | None = None) -> Iterator[dict[str, Any]]:
    """Run every applicable peer around the block; the yielded dict is filled with their readings or reasons.

    Args:
        domains: The meter's domain declarations (``Meter.domains``): a CPU peer runs only where a
            measured domain of device class ``cpu`` exists, whatever the domains are called.
        country: An ISO code for codecarbon's carbon figures, or None.
    """
    results: dict[str, Any] = {}
    started: list[tuple[str, Any, Any]] = []
    measured = [d for d in domains.values() if d.provenance == "measured"]
    for name, (begin, end, scope) in PEERS.items():
        relevant = [d for d in measured if d.device_class == CPU] if scope == "cpu" else measured
        if not relevant:
            results[name] = {"not_run": "no measured " + ("CPU " if scope == "cpu" else "") + "domain to compare with"}
            continue
        try:
            handle = begin(country) if name == "codecarbon" else begin()
        except ImportError:
            results[name] = {"not_run": f"{name} is not installed"}
            continue
        except Exception as exc:  # a peer's own failure is recorded, never fatal to the sweep
            results[name] = {"not_run": f"{name} failed to start: {type(exc).__name__}: {exc}"}
            continue
        started.append((name, handle, end))
    try:
        yield results
    finally:
        for name, handle, end in reversed(started):
            try:
                results[name] = end(handle)
            except Exception as exc:  # recorded with its reason in the run's record
                results[name] = {"not_run": f"{name} failed: {type(exc).__name__}: {exc}"}
