"""Browser pages on a cluster: the page is served by one node, the room lives on another,
and that node goes away (SIGKILL, or SIGTERM with its drain). The pages reconnect by
themselves, the room moves to the live node, and media flows again without a reload."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from browser_support import (
    TIMEOUT_MS,
    chromium,
    chromium_available,
    new_page,
    peer_id,
    rejoined,
    wait_media_flowing,
)
from cluster_support import Cluster
from redis_support import RedisServer
from timing import scaled

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not chromium_available(), reason="needs Debian's chromium"),
    pytest.mark.timeout(180),
]


@pytest.fixture
async def cluster(redis: RedisServer, tmp_path: Path) -> AsyncIterator[Cluster]:
    # A short drain, so that the SIGTERM case is quick; the pages come back 1 s after.
    cluster = Cluster(
        redis,
        tmp_path / "nodes",
        2,
        KAAMOS_SERVER_DRAIN_SECONDS="1",
        KAAMOS_SERVER_SHUTDOWN_RETRY_AFTER_SECONDS="1",
    )
    try:
        await cluster.wait_ready()
        yield cluster
    finally:
        await cluster.close()


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
async def test_pages_follow_their_room_when_its_node_goes(
    cluster: Cluster, tmp_path: Path, how: signal.Signals
) -> None:
    entry, holder = cluster.nodes
    for _ in range(6):  # placement alternates between the two nodes
        room_id = await cluster.create_room(entry)
        if await cluster.holder(room_id) is holder:
            break
    assert await cluster.holder(room_id) is holder
    url = f"{entry.url}/room/{room_id}"
    async with chromium(tmp_path / "chromium") as browser:
        pages = []
        for name in ("Alice", "Bob"):
            page = await new_page(browser, f"{url}?name={name}")
            await page.wait_for_selector('body[data-state="connected"]')
            pages.append(page)
        a, b = pages
        await wait_media_flowing(a, b, "video/VP8")
        old_ids = [await peer_id(p) for p in pages]
        for page in pages:
            await page.evaluate("window.loadedOnce = true")  # gone if the page reloads

        holder.process.send_signal(how)
        holder.process.wait(scaled(15))
        for page, old_id in zip(pages, old_ids, strict=True):
            # The dead node's ttl, then the page's backoff.
            await rejoined(page, old_id, timeout_ms=TIMEOUT_MS * 2)
        assert await cluster.holder(room_id) is entry
        await wait_media_flowing(a, b, "video/VP8")
        for page in pages:
            assert await page.evaluate("window.loadedOnce") is True
            url_used = await page.evaluate("window.kaamos.client.session.url")
            assert url_used == f"ws://127.0.0.1:{entry.port}/ws/{room_id}"
