"""A negotiated codec as plain values: what a publisher sends and a subscriber must take."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Codec:
    mime_type: str
    clock_rate: int
    channels: int | None
    payload_type: int
    parameters: tuple[tuple[str, str], ...] = ()

    @property
    def name(self) -> str:
        return self.mime_type.split("/")[1].upper()

    @property
    def is_rtx(self) -> bool:
        return self.name == "RTX"

    def key(self) -> tuple[Any, ...]:
        """What must match for two payload types to carry the same bitstream format."""
        params = dict(self.parameters)
        if self.name == "H264":
            return (
                "H264",
                params.get("packetization-mode", "0"),
                params.get("profile-level-id", "42e01f").lower(),
            )
        return (self.name, self.clock_rate)
