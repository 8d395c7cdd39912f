"""Where the server is in its life: starting, ready, or draining before it stops.

/health answers 503 with the reason unless ready, so a load balancer stops sending new
callers to a node that is about to go away while its calls finish.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Phase(StrEnum):
    STARTING = "starting"
    READY = "ready"
    DRAINING = "draining"


@dataclass
class Lifecycle:
    phase: Phase = Phase.STARTING
    reason: str = "starting up"

    def ready(self) -> None:
        self.phase = Phase.READY
        self.reason = ""

    def drain(self, reason: str) -> None:
        self.phase = Phase.DRAINING
        self.reason = reason

    @property
    def is_ready(self) -> bool:
        return self.phase is Phase.READY
