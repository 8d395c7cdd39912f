"""WebSocket signaling at /ws/{room_id} (docs/protocol.md): frames in, room commands and
negotiation out, typed messages back.

`handler` runs one socket (upgrade, frames, flood guards, liveness), `session` turns a
client's messages into room commands, `connection` queues what goes back, `socket_watch`
decides the join deadline and the heartbeat, `lingering_close` closes cleanly after a frame
too big to read.
"""

from .handler import add_routes

__all__ = ["add_routes"]
