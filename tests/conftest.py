"""Shared fixtures: fake clocks and fake hardware trees."""

from __future__ import annotations

import pytest

from energymeter.testing import FakePowercap


class FakeClock:
    """A monotonic clock the test advances by hand (seconds)."""

    def __init__(self, start_s: float = 1000.0) -> None:
        self.now_s = start_s

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def powercap(tmp_path) -> FakePowercap:
    return FakePowercap(tmp_path / "powercap")
