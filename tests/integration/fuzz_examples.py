"""Hypothesis examples for tests/integration/test_fuzz.py, drawn in a child process.

Hypothesis runs only synchronous test functions, while the server and its clients live on
the test's event loop, whose media must keep flowing while examples are made. So
`Examples` runs a `@given` function that only collects the examples (`draw_examples`) in a
child process, from the start of the test, chunk after chunk; the test plays them on the
loop at its own pace as they come and judges each one itself (no shrinking: the server
under test is stateful). A process rather than a thread: hypothesis reseeds the global
`random` while it draws, which must not happen under the server's feet, and drawing takes
seconds of CPU that the other core can spend. The seeds are fixed: the same examples on
every run, unless KAAMOS_FUZZ_SEED is set.

The strategies: signaling frames and SDP answer mutations (fuzz_frames.py), crafted RTP
and RTCP (fuzz_media.py). What depends on the running call (the answer to the current
offer, the SSRCs and sequence numbers of its streams) is drawn as a *plan* (which line to
edit and how, how far to jump a sequence number) and made concrete when it is sent; every
frame or packet prints as a short label. Strategies are flat composites of integer, sampled
and binary draws: each draw costs tens of microseconds, and nested one_of/tuples trees made
generation slower than the fuzz.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Self

from fuzz_frames import signaling_frames
from fuzz_media import rtcp_plans, rtp_plans
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

# Frames or packets per fuzz test; raise it for a longer local run.
FUZZ_EXAMPLES = int(os.environ.get("KAAMOS_FUZZ_EXAMPLES", "3000"))
FUZZ_SEED = int(os.environ.get("KAAMOS_FUZZ_SEED", "0"))  # another one: other examples


class Examples:
    """`count` examples of STRATEGIES[strategy], drawn in a child process in chunks, ahead
    of their use: iterate (the first ones come while the rest are drawn), or await `all()`.
    Chunk i is drawn from seed i (KAAMOS_FUZZ_SEED shifts them): the same on every run."""

    CHUNK = 500

    def __init__(self, strategy: str, count: int) -> None:
        self.count = count
        context = multiprocessing.get_context("spawn")  # a fork would copy the running loop
        self._pool = ProcessPoolExecutor(max_workers=1, mp_context=context)
        loop = asyncio.get_running_loop()
        self._chunks = [
            loop.run_in_executor(
                self._pool, draw_examples, strategy, min(self.CHUNK, count - start),
                FUZZ_SEED + start // self.CHUNK,
            )
            for start in range(0, count, self.CHUNK)
        ]

    async def __aiter__(self) -> AsyncIterator[Any]:
        for chunk in self._chunks:
            for example in await chunk:
                yield example

    async def all(self) -> list[Any]:
        return [example async for example in self]

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)  # a failed test stops drawing


def draw_examples(strategy: str, count: int, seed_value: int) -> list[Any]:
    """`count` examples of STRATEGIES[strategy], in hypothesis examples of 50 (its
    per-example overhead is large). No shrinking and no database: they are only collected."""
    drawn: list[Any] = []
    batch = 50

    @seed(seed_value)
    @settings(
        max_examples=max(1, -(-count // batch)),
        deadline=None,
        database=None,
        phases=(Phase.explicit, Phase.generate),
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(STRATEGIES[strategy](), min_size=batch, max_size=batch))
    def collect(examples: list[Any]) -> None:
        drawn.extend(examples)

    collect()
    return drawn[:count]


STRATEGIES: dict[str, Callable[[], st.SearchStrategy[Any]]] = {
    "signaling": signaling_frames,
    "rtp": rtp_plans,
    "rtcp": rtcp_plans,
}
