"""A clock that moves only when a test moves it, for code that reads the time."""

from __future__ import annotations


class FakeClock:
    """Time that passes only when told: `clock.now += 10`, or `await clock.sleep(10)`.

    Call it where code takes a clock function (the registries' `clock`), or put it where a
    module under test has the `time` module (`monkeypatch.setattr(module, "time", clock)`):
    `monotonic()` is `now`, and `time()` is `wall` when it is set, else `now`.
    """

    def __init__(self, now: float = 1_800_000_000.0, wall: float | None = None) -> None:
        self.now = now
        self.wall = wall

    def __call__(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now if self.wall is None else self.wall

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
