"""The ``loihi`` backend: domain ``loihi:sim``, the modeled Loihi energy of spiking simulations run in a window.

Every ``simulate()`` call reports its counts here; each open session prices them with its profile.
"""

from __future__ import annotations

import threading
import weakref
from pathlib import Path

from ..errors import BackendUnavailable, ProfileError
from ..measurement import MODELED
from ..backends.base import Backend, BackendStatus, EnergySession, Reading

DOMAIN = "loihi:sim"
_sessions: "weakref.WeakSet[LoihiSession]" = weakref.WeakSet()
_sessions_lock = threading.Lock()


def report(sim: object) -> None:
    """Add a finished simulation's modeled energy to every open ``loihi:sim`` session."""
    with _sessions_lock:
        sessions = list(_sessions)
    for session in sessions:
        session.add(sim)


class LoihiBackend(Backend):
    """Modeled Loihi energy of spiking simulations (``energymeter.loihi.simulate``).

    Args:
        loihi_profile: Bundled profile name (``loihi1``, ``loihi1-calibrated``) or a JSON path.
    """

    name = "loihi"
    options = ("loihi_profile",)

    def __init__(self, loihi_profile: str | Path = "loihi1") -> None:
        super().__init__()
        self.profile_name = loihi_profile

    def _probe(self) -> BackendStatus:
        from .profile import load_loihi_profile

        try:
            profile = load_loihi_profile(self.profile_name)
        except ProfileError as exc:
            return BackendStatus(self.name, False, str(exc), (DOMAIN,), MODELED)
        return BackendStatus(self.name, True, f"simulated Loihi, profile {profile.name} ({profile.source}); counts "
                             "only spiking simulations run inside a window", (DOMAIN,), MODELED)

    def open(self) -> "LoihiSession":
        """Open a session that accumulates the energy of simulations."""
        status = self.probe()
        if not status.available:
            raise BackendUnavailable(f"loihi: {status.reason}")
        return LoihiSession(self.profile_name)


class LoihiSession(EnergySession):
    """Cumulative modeled joules of every simulation reported since opening."""

    def __init__(self, profile: str | Path) -> None:
        from .profile import load_loihi_profile

        self.provenance = {DOMAIN: MODELED}
        self.profile = load_loihi_profile(profile)
        self._lock = threading.Lock()
        self._total_j = 0.0
        with _sessions_lock:
            _sessions.add(self)

    def add(self, sim: object) -> None:
        """Price one simulation and add it."""
        from .energy import estimate_energy

        energy_j = estimate_energy(sim, self.profile).total_energy_j  # type: ignore[arg-type]
        with self._lock:
            self._total_j += energy_j

    def read(self) -> Reading:
        """Modeled joules so far."""
        with self._lock:
            return Reading({DOMAIN: self._total_j})

    def close(self) -> None:
        """Stop receiving simulations."""
        with _sessions_lock:
            _sessions.discard(self)
