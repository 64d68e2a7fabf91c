"""Fake time for connector tests: nothing waits for real."""

from __future__ import annotations


class FakeTime:
    """A clock that moves only when something sleeps on it, or when told to (`advance`).

    Pass `fake.sleep` and `fake.clock` (or `fake` itself, a callable) wherever a connector or an
    `ApiClient` takes `sleep=` / `clock=`; `fake.sleeps` lists every wait that was asked for.
    """

    def __init__(self, start: float = 0.0) -> None:
        self.now = float(start)
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)

    def advance(self, seconds: float) -> None:
        self.now += seconds
