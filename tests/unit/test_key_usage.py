"""Usage accounting: summed in memory, shown before the flush, flushed into per-day rows."""

from __future__ import annotations

from pplex_desktop.core.clock import FakeClock
from pplex_desktop.core.keystore import KeyStore


def test_usage_flushes_into_daily_rows(key_store: KeyStore) -> None:
    made = key_store.create("usage")
    key_store.record_usage(made.record.id, requests=2, audio_in_s=1.5, audio_out_s=2.5)
    assert key_store.get(made.record.id).requests == 2, "pending usage shows before the flush"
    assert key_store.flush_usage() == 1
    record = key_store.get(made.record.id)
    assert (record.requests, record.audio_in_s, record.audio_out_s) == (2, 1.5, 2.5)
    (day,) = key_store.daily_usage(made.record.id)
    assert day.requests == 2 and day.audio_out_s == 2.5


def test_usage_of_a_deleted_key_is_dropped(key_store: KeyStore) -> None:
    made = key_store.create("gone")
    key_store.record_usage(made.record.id, requests=1)
    key_store.delete(made.record.id)
    key_store.flush_usage()
    assert key_store.daily_usage() == []


def test_usage_of_two_days_and_two_keys(key_store: KeyStore, clock: FakeClock) -> None:
    one, two = key_store.create("one"), key_store.create("two")
    key_store.record_usage(one.record.id, requests=1, audio_in_s=1.0)
    key_store.record_usage(two.record.id, requests=3, audio_out_s=0.5)
    assert key_store.flush_usage() == 2
    assert key_store.flush_usage() == 0, "nothing is written twice"
    clock.advance(86_400)
    key_store.record_usage(one.record.id, requests=4)
    key_store.flush_usage()
    later, earlier = key_store.daily_usage()
    assert later.day > earlier.day
    assert (earlier.requests, earlier.audio_in_s, earlier.audio_out_s) == (4, 1.0, 0.5)
    assert later.requests == 4
    assert [d.requests for d in key_store.daily_usage(two.record.id)] == [3]
    assert len(key_store.daily_usage(days=1)) == 1
    assert key_store.get(one.record.id).last_used_at == clock.wall()
