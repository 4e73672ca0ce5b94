"""energymeter: measure the joules PyTorch work draws, and check whether cheap proxies track them.

``with measure() as m: train_step()`` then ``m.result`` is a ``Measurement``: joules per hardware
domain, each labelled ``measured``, ``integrated`` or ``modeled``, plus counted FLOPs.
Importing this package touches no hardware and prints nothing.
"""

from ._version import __version__
from .errors import BackendUnavailable, EnergymeterError, ProfileError, UnknownBackend
from .measurement import SCHEMA_VERSION, Measurement
from .meter import Meter
from .shared import measure


def load_ipython_extension(ipython: object) -> None:
    """``%load_ext energymeter``: registers the ``%%measure`` cell magic (``energymeter.notebook``)."""
    from .notebook import load

    load(ipython)


__all__ = ["SCHEMA_VERSION", "BackendUnavailable", "EnergymeterError", "Measurement", "Meter", "ProfileError",
           "UnknownBackend", "__version__", "measure"]
