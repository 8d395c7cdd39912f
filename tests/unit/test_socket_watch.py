"""SocketWatch, the signaling socket's liveness rules, without a socket."""

from __future__ import annotations

from kaamos_sfu.signaling.socket_watch import SocketWatch, Step, Verdict


def watch(join: float = 10.0, interval: float = 5.0, timeout: float = 20.0) -> SocketWatch:
    return SocketWatch(0.0, join, interval, timeout)


def test_a_socket_must_join_in_time_whatever_else_it_sends() -> None:
    """Frames other than a join (pongs) do not move the join deadline."""
    w = watch(join=10.0, interval=50.0, timeout=100.0)
    w.heard(9.0)
    assert w.step(9.5) == Step(Verdict.WAIT, 10.0)
    assert w.step(10.0).verdict is Verdict.NO_JOIN


def test_a_joined_socket_is_pinged_every_interval() -> None:
    """Once joined, a ping is due every ping_interval, each one once."""
    w = watch()
    w.joined()
    assert w.step(1.0) == Step(Verdict.WAIT, 5.0)
    assert w.step(5.0).verdict is Verdict.PING
    w.heard(5.2)
    assert w.step(5.0) == Step(Verdict.WAIT, 10.0)
    assert w.step(10.1).verdict is Verdict.PING


def test_silence_is_judged_from_the_last_frame_not_the_last_ping() -> None:
    """Late pongs are fine; only ping_timeout without any frame is death."""
    w = watch()
    w.joined()
    for now in (5.0, 10.0, 15.0):
        assert w.step(now).verdict is Verdict.PING  # no answer yet: still alive
    w.heard(18.0)  # the first pong, 13 s late
    assert w.step(20.0).verdict is Verdict.PING
    assert w.step(37.9).verdict is Verdict.PING
    assert w.step(38.0).verdict is Verdict.SILENT


def test_wait_never_sleeps_past_a_deadline() -> None:
    """The next step is at the earliest of the next ping, the join deadline and silence."""
    assert watch(join=2.0).step(0.0) == Step(Verdict.WAIT, 2.0)
    w = watch(interval=100.0, timeout=200.0)
    w.joined()
    assert w.step(0.0) == Step(Verdict.WAIT, 100.0)
    w = watch(interval=5.0, timeout=12.0)
    w.joined()
    w.next_ping = 50.0
    assert w.step(11.0) == Step(Verdict.WAIT, 12.0)
