"""The ``loihi`` backend: domain ``loihi:sim``, the modeled Loihi energy of spiking simulations run in a window.

A session subscribes to the simulator's observer registry (``energymeter.loihi.simulation.subscribe``)
when it opens and unsubscribes when it closes: the simulator owns the registry and knows nothing of
backends. Probing reads only the profile and looks for torch without importing it; opening imports the
simulator, which needs torch.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Any

from ..domains import PROCESS, SIMULATED, Domain
from ..errors import ProfileError
from ..measurement import MODELED
from .base import SIMULATOR, Backend, BackendStatus, EnergySession, Reading

DOMAIN = "loihi:sim"


class LoihiBackend(Backend):
    """Modeled Loihi energy of spiking simulations (``energymeter.loihi.simulate``).

    Args:
        loihi_profile: Bundled profile name (``loihi1``, ``loihi1-calibrated``) or a JSON path.
    """

    name = "loihi"
    kind = SIMULATOR
    options = ("loihi_profile",)

    def __init__(self, loihi_profile: str | Path = "loihi1") -> None:
        super().__init__()
        self.profile_name = loihi_profile

    def _probe(self) -> BackendStatus:
        from ..loihi.profile import load_loihi_profile

        # find_spec looks for torch without importing it: the simulator needs torch, a probe must stay cheap.
        if importlib.util.find_spec("torch") is None:
            return BackendStatus(self.name, False, "torch is not installed (the Loihi simulator runs on it); "
                                 "pip install 'energymeter[torch]'", (DOMAIN,), MODELED)
        try:
            profile = load_loihi_profile(self.profile_name)
        except ProfileError as exc:
            return BackendStatus(self.name, False, str(exc), (DOMAIN,), MODELED)
        return BackendStatus(self.name, True, f"simulated Loihi, profile {profile.name} ({profile.source}); counts "
                             "only spiking simulations run inside a window", (DOMAIN,), MODELED)

    def _open(self) -> "LoihiSession":
        return LoihiSession(self.profile_name)


class LoihiSession(EnergySession):
    """Cumulative modeled joules of every simulation finished since opening."""

    def __init__(self, profile: str | Path) -> None:
        from ..loihi import simulation
        from ..loihi.profile import load_loihi_profile

        self.domains = {DOMAIN: Domain(DOMAIN, SIMULATED, PROCESS, MODELED, SIMULATOR)}
        self.profile = load_loihi_profile(profile)
        self._lock = threading.Lock()
        self._total_j = 0.0
        self._epoch = 0
        self.last_failure: str | None = None
        simulation.subscribe(self.add)

    def add(self, sim: Any) -> None:
        """Price one finished simulation and add it.

        A simulation this session cannot price is a fault of the ``loihi:sim`` domain, not of the caller's
        ``simulate()`` (whose work is done): the domain's epoch is bumped, so every window that spans it
        fails that domain, and later windows measure again. The last reason is kept in ``last_failure``.
        """
        from ..loihi.energy import estimate_energy

        try:
            energy_j = estimate_energy(sim, self.profile).total_energy_j
        except Exception as exc:  # not swallowed: the windows spanning it fail, with the reason kept here
            with self._lock:
                self._epoch += 1
                self.last_failure = f"a simulation could not be priced ({type(exc).__name__}: {exc})"
            return
        with self._lock:
            self._total_j += energy_j

    def read(self) -> Reading:
        """Modeled joules so far, with the epoch of pricing failures."""
        with self._lock:
            if not self._epoch:
                return Reading({DOMAIN: self._total_j})
            return Reading({DOMAIN: self._total_j}, {}, {DOMAIN: self._epoch}, {DOMAIN: self.last_failure or ""})

    def close(self) -> None:
        """Stop receiving simulations."""
        from ..loihi import simulation

        simulation.unsubscribe(self.add)
