"""The claim registry: every claim an analysis makes is one function ``(figures, tables) -> list[Claim]``.

A new claim is one function and one decorator line::

    @claim("my_claim")
    def my_claim(figures: Figures, tables: Tables) -> list[Claim]:
        ...

``analyse`` calls every registered function once, in registration order, on the sweep's figures and
tables (both computed before any claim runs), and reports their claims in that order. Registering a second
function under a name already taken is refused (``ClaimRegistryError``), never a silent overwrite.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from energymeter.errors import EnergymeterError

if TYPE_CHECKING:
    from .claims import Claim
    from .figures import Figures
    from .tables import Tables

ClaimFunction = Callable[["Figures", "Tables"], "list[Claim]"]

#: Name -> claim function, in registration order.
CLAIMS: dict[str, ClaimFunction] = {}


class ClaimRegistryError(EnergymeterError):
    """A claim registered under a name that is already taken, or a name that is not registered."""


def claim(name: str) -> Callable[[ClaimFunction], ClaimFunction]:
    """Decorator: register ``function`` as the claim ``name``.

    Raises:
        ClaimRegistryError: ``name`` is already registered.
    """
    def register(function: ClaimFunction) -> ClaimFunction:
        if name in CLAIMS:
            raise ClaimRegistryError(f"claim {name!r} is already registered (by {CLAIMS[name].__module__}."
                                     f"{CLAIMS[name].__qualname__}); choose another name")
        CLAIMS[name] = function
        return function
    return register


def unregister(name: str) -> ClaimFunction:
    """Remove a claim (for tests that register their own).

    Raises:
        ClaimRegistryError: ``name`` is not registered.
    """
    if name not in CLAIMS:
        raise ClaimRegistryError(f"no claim {name!r} is registered; known: {', '.join(CLAIMS)}")
    return CLAIMS.pop(name)


def evaluate(figures: "Figures", tables: "Tables", failures: "list[str] | None" = None) -> list["Claim"]:
    """Every registered claim on one sweep, in registration order.

    Args:
        failures: Where given, a claim function that raises is recorded here (its name and the error) and the
            others still run: one claim that cannot be computed never takes the report down. Without it, the
            error propagates (for tests of a single claim).
    """
    out: list[Claim] = []
    for name, function in list(CLAIMS.items()):
        try:
            out.extend(function(figures, tables))
        except Exception as exc:  # noqa: BLE001 - recorded with its reason when the caller asked
            if failures is None:
                raise
            failures.append(f"the {name} claims could not be computed ({type(exc).__name__}: {exc})")
    return out
