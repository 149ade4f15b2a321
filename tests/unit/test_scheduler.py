"""The queue's order: fair across keys, live before offline, voices respected."""

from __future__ import annotations

import pytest

from pplex_desktop.core.clock import SystemClock
from pplex_desktop.core.errors import UnavailableError
from pplex_desktop.core.settings import BackendConfig
from pplex_desktop.gateway.pool.backends import BackendPool
from pplex_desktop.gateway.pool.scheduler import Priority, QueueTimeoutError, QueueUpdate, Scheduler


def make(n: int = 1, max_queue: int = 10, voices: tuple[str, ...] | None = None) -> Scheduler:
    configs = tuple(
        BackendConfig(f"ws://127.0.0.1:{9000 + i}", voices)
        if voices
        else BackendConfig(f"ws://127.0.0.1:{9000 + i}")
        for i in range(n)
    )
    return Scheduler(BackendPool(configs, SystemClock()), max_queue=max_queue)


async def test_fair_rounds_across_keys() -> None:
    s = make()
    busy = s.enqueue(key_id=0, key_name="busy", client="c", priority=Priority.LIVE, voice=None)
    assert busy.future.done()
    a1, a2, a3 = (
        s.enqueue(key_id=1, key_name="A", client="c", priority=Priority.LIVE, voice=None)
        for _ in range(3)
    )
    b1 = s.enqueue(key_id=2, key_name="B", client="c", priority=Priority.LIVE, voice=None)
    assert [t.key_name for t in s.waiting()] == ["A", "B", "A", "A"]
    assert (a1.position, b1.position, a2.position, a3.position) == (1, 2, 3, 4)
    s.release(busy.future.result())
    assert a1.future.done() and not b1.future.done()
    s.release(a1.future.result())
    assert b1.future.done(), "B's first request beats A's second"


async def test_live_goes_before_offline() -> None:
    s = make()
    busy = s.enqueue(key_id=0, key_name="x", client="c", priority=Priority.LIVE, voice=None)
    job = s.enqueue(key_id=1, key_name="job", client="c", priority=Priority.OFFLINE, voice=None)
    live = s.enqueue(key_id=2, key_name="live", client="c", priority=Priority.LIVE, voice=None)
    assert [t.key_name for t in s.waiting()] == ["live", "job"]
    s.release(busy.future.result())
    assert live.future.done() and not job.future.done()


async def test_updates_reach_waiting_tickets() -> None:
    s = make()
    updates: list[QueueUpdate] = []
    busy = s.enqueue(key_id=0, key_name="x", client="c", priority=Priority.LIVE, voice=None)
    first = s.enqueue(key_id=1, key_name="y", client="c", priority=Priority.LIVE, voice=None)
    s.enqueue(
        key_id=2,
        key_name="z",
        client="c",
        priority=Priority.LIVE,
        voice=None,
        on_update=updates.append,
    )
    assert updates[-1].position == 2
    s.cancel(first)
    assert updates[-1].position == 1 and updates[-1].eta_s > 0
    s.release(busy.future.result())
    assert len(updates) == 2


async def test_voices_route_to_capable_backends() -> None:
    s = Scheduler(
        BackendPool(
            (
                BackendConfig("ws://127.0.0.1:1", ("NATF0",)),
                BackendConfig("ws://127.0.0.1:2", ("MINE.wav",)),
            ),
            SystemClock(),
        ),
        max_queue=5,
    )
    t = s.enqueue(key_id=1, key_name="a", client="c", priority=Priority.LIVE, voice="MINE.wav")
    assert t.future.result().backend.index == 1
    with pytest.raises(UnavailableError, match="offers the voice"):
        s.check_admission("OTHER.pt")


async def test_queue_full_and_unhealthy_are_refused_up_front() -> None:
    s = make(max_queue=1)
    s.enqueue(key_id=0, key_name="x", client="c", priority=Priority.LIVE, voice=None)
    s.enqueue(key_id=1, key_name="y", client="c", priority=Priority.LIVE, voice=None)
    with pytest.raises(UnavailableError) as info:
        s.check_admission(None)
    assert info.value.code == "queue_full" and info.value.retry_after_s
    down = make()
    down.pool.mark_failed(down.pool.backends[0], "refused")
    with pytest.raises(UnavailableError) as info:
        down.check_admission(None)
    assert info.value.code == "backend_unavailable"


async def test_waiting_too_long_times_out() -> None:
    s = make()
    s.enqueue(key_id=0, key_name="x", client="c", priority=Priority.LIVE, voice=None)
    t = s.enqueue(key_id=1, key_name="y", client="c", priority=Priority.LIVE, voice=None)
    with pytest.raises(QueueTimeoutError, match=r"within 0\.05 s"):
        await s.acquire(t, 0.05)
    assert s.waiting() == []


async def test_failed_backend_is_skipped_and_caller_requeued_first() -> None:
    s = make(n=2)
    t = s.enqueue(key_id=1, key_name="a", client="c", priority=Priority.LIVE, voice=None)
    lease = t.future.result()
    other = s.enqueue(key_id=2, key_name="b", client="c", priority=Priority.LIVE, voice=None)
    assert other.future.result().backend is not lease.backend
    later = s.enqueue(key_id=3, key_name="c", client="c", priority=Priority.LIVE, voice=None)
    s.release(lease, failed="connection refused")
    again = s.requeue(t)
    assert [x.key_name for x in s.waiting()] == ["a", "c"], "the requeued caller keeps its place"
    assert not again.future.done() and not later.future.done()
