"""The exceptions energymeter raises. Vendor errors are translated into these at the backend boundary."""


class EnergymeterError(Exception):
    """Base class of every error energymeter raises on purpose."""


class BackendUnavailable(EnergymeterError):
    """A backend was asked for by name but cannot run here; the message says why."""


class UnknownBackend(EnergymeterError):
    """A backend name that is not in the registry."""


class ProfileError(EnergymeterError):
    """A hardware profile that is missing, malformed or incomplete."""



class DomainConflict(EnergymeterError, ValueError):
    """Two sessions of one meter report the same domain name (one figure would replace the other)."""
