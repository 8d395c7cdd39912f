"""One participant of the loaded run, in a process of its own (as each person has a phone of
their own): joins, publishes camera and microphone, and reports what it receives.

    python -m bench.loaded_client URL ROOM_ID NAME

Every half second it prints a JSON line: its peer_id, the packets it received from each
other participant, the peers it was told left, and its socket's close code. A line
`vanish` on its stdin makes it vanish (bench/loaded.py says how); stdin closing ends it.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter

from rtc_client import RtcClient

from kaamos_sfu.rtc_bridge import configure_ice

REPORT_SECONDS = 0.5


async def run(url: str, room_id: str, name: str) -> None:
    configure_ice(["127.0.0.1"])  # aioice skips loopback otherwise
    client = RtcClient(url, room_id, name, decode=False)
    commands = asyncio.ensure_future(_commands(client))
    try:
        reply = await client.join()
        if reply["type"] != "joined":
            raise SystemExit(f"{name}: {reply}")
        while not commands.done():
            _report(client)
            await asyncio.sleep(REPORT_SECONDS)
    finally:
        commands.cancel()
        await client.close()


async def _commands(client: RtcClient) -> None:
    while line := await asyncio.to_thread(sys.stdin.readline):
        if line.strip() == "vanish":
            client.vanish()


def _report(client: RtcClient) -> None:
    packets: Counter[str] = Counter()
    for mid, received in client.received.items():
        owner = client.offer_tracks.get(mid)
        if owner is not None and owner[0] != client.peer_id:
            packets[owner[0]] += received.packets
    left = [m["peer_id"] for m in client.messages if m["type"] == "peer-left"]
    status = {"peer_id": client.peer_id, "packets": packets, "left": left}
    print(json.dumps(status | {"close_code": client.close_code}), flush=True)


if __name__ == "__main__":
    asyncio.run(run(*sys.argv[1:4]))
