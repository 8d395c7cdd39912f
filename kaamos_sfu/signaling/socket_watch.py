"""Liveness of one signaling socket, without I/O: the join deadline, then the heartbeat.

A socket must send `join` within the join timeout, counted from the upgrade whatever else
it sends (pongs included: a client that only answers pings is idle, and is closed). Once
joined, the server pings every `ping_interval`; any frame from the client (a pong or a
message) shows it is there, and a socket silent for `ping_timeout` is dead. The timeout
spans several pings, so one or two late pongs from a busy phone never cost its call.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Verdict(Enum):
    WAIT = "wait"  # nothing to do before `at`
    PING = "ping"
    NO_JOIN = "no join"  # close: no join in time
    SILENT = "silent"  # close: nothing heard for ping_timeout


@dataclass(frozen=True)
class Step:
    verdict: Verdict
    at: float  # for WAIT: when to ask again


class SocketWatch:
    def __init__(
        self, now: float, join_timeout: float, ping_interval: float, ping_timeout: float
    ) -> None:
        self.join_deadline: float | None = now + join_timeout
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.last_heard = now
        self.next_ping = now + ping_interval

    def heard(self, now: float) -> None:
        """A frame of any kind arrived."""
        self.last_heard = now

    def joined(self) -> None:
        self.join_deadline = None

    def step(self, now: float) -> Step:
        """What to do at `now`; after a PING, call again for the next step."""
        if self.join_deadline is not None and now >= self.join_deadline:
            return Step(Verdict.NO_JOIN, now)
        silent_until = self.last_heard + self.ping_timeout
        if now >= silent_until:
            return Step(Verdict.SILENT, now)
        if now >= self.next_ping:
            self.next_ping = now + self.ping_interval
            return Step(Verdict.PING, now)
        at = min(self.next_ping, silent_until)
        if self.join_deadline is not None:
            at = min(at, self.join_deadline)
        return Step(Verdict.WAIT, at)
