"""Live rooms on this node (INTERFACE DRAFT — the media core fills this in)."""

from __future__ import annotations

from .config import Config
from .registry import RoomRegistry


class RoomManager:
    def __init__(self, config: Config, registry: RoomRegistry) -> None:
        self.config = config
        self.registry = registry

    @property
    def room_count(self) -> int:
        """Rooms with at least one connected peer on this node."""
        return 0

    @property
    def peer_count(self) -> int:
        return 0

    def participants(self, room_id: str) -> int:
        """Peers currently in the room (0 when it has none on this node)."""
        return 0

    async def end_room(self, room_id: str) -> None:
        """Send room-ended to every peer of the room and disconnect them (close 4001)."""

    async def close(self) -> None:
        """Disconnect every peer (server shutdown)."""
