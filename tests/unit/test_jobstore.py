from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pplex_desktop.core.errors import NotFoundError
from pplex_desktop.core.jobstore import (
    MAX_ATTEMPTS,
    PRIORITY_BATCH,
    PRIORITY_SYNC,
    JobState,
    JobStore,
    NewJob,
    new_job_id,
)


def _new(key_id: int, priority: int = PRIORITY_BATCH) -> NewJob:
    return NewJob(key_id, f"key{key_id}", priority, "stream", "a.wav", "p", "NATF2.pt", None, 3, 1)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[JobStore]:
    made = JobStore.in_folder(tmp_path)
    yield made
    made.close()


def _add(store: JobStore, key_id: int, priority: int = PRIORITY_BATCH) -> str:
    return store.create(_new(key_id, priority), job_id=new_job_id(), now=100.0).id


def test_one_key_cannot_starve_the_others(store: JobStore) -> None:
    a = [_add(store, 1) for _ in range(3)]
    b = [_add(store, 2) for _ in range(2)]
    order = []
    while (job := store.claim_next(200.0)) is not None:
        order.append(job.id)
        store.mark_done(job.id, now=201.0, output_s=4, transcript="")
    assert order == [a[0], b[0], a[1], b[1], a[2]]


def test_waiting_callers_and_interrupted_jobs_go_first(store: JobStore) -> None:
    batch = _add(store, 1)
    interrupted = _add(store, 2)
    assert [store.claim_next(1.0) is not None for _ in range(2)] == [True, True]
    assert store.recover(now=2.0) == ([batch, interrupted], [])
    sync = _add(store, 3, PRIORITY_SYNC)
    later = _add(store, 4)
    claimed = [store.claim_next(3.0) for _ in range(4)]
    assert [j.id for j in claimed if j] == [sync, batch, interrupted, later]
    assert [j.attempts for j in claimed if j] == [1, 2, 2, 1]


def test_a_job_that_keeps_killing_the_gateway_is_given_up(store: JobStore) -> None:
    job_id = _add(store, 1)
    for _ in range(MAX_ATTEMPTS - 1):
        store.claim_next(1.0)
        assert store.recover(now=2.0) == ([job_id], [])
    store.claim_next(1.0)
    assert store.recover(now=2.0) == ([], [job_id])
    job = store.get(job_id)
    assert job is not None
    assert (job.state, job.error_code, job.error_status) == (JobState.FAILED, "interrupted", 503)


def test_a_clean_shutdown_does_not_count_as_an_attempt(store: JobStore) -> None:
    job_id = _add(store, 1)
    store.claim_next(1.0)
    store.requeue(job_id)
    job = store.get(job_id)
    assert job is not None
    assert (job.state, job.attempts) == (JobState.QUEUED, 0)


def test_final_states_are_final(store: JobStore) -> None:
    job_id = _add(store, 1)
    assert store.mark_cancelled(job_id, now=5.0) is not None
    assert store.mark_done(job_id, now=6.0, output_s=1, transcript="x") is None
    assert store.mark_failed(job_id, now=6.0, code="x", status=502, message="x") is None
    job = store.get(job_id)
    assert job is not None
    assert job.state is JobState.CANCELLED


def test_other_keys_jobs_look_missing(store: JobStore) -> None:
    job_id = _add(store, 1)
    assert store.get_for_key(job_id, 1).id == job_id
    with pytest.raises(NotFoundError) as other:
        store.get_for_key(job_id, 2)
    with pytest.raises(NotFoundError) as missing:
        store.get_for_key("job_" + "0" * 20, 2)
    assert other.value.code == missing.value.code == "no_job"
    assert other.value.status == 404


def test_only_finished_jobs_expire(store: JobStore) -> None:
    done, queued = _add(store, 1), _add(store, 1)
    store.claim_next(1.0)
    store.mark_done(done, now=10.0, output_s=1, transcript="")
    assert store.expired(before=10.0) == []
    assert store.expired(before=10.5) == [done]
    assert queued not in store.expired(before=1e12)
    assert store.delete(done)
    assert store.ids() == {queued}


def test_reassign_moves_only_the_named_jobs_to_the_new_key(store: JobStore) -> None:
    mine = [_add(store, 1) for _ in range(2)]
    other = _add(store, 2)
    assert store.reassign([*mine, "job_" + "0" * 20], key_id=3, key_name="new owner") == mine
    assert [store.get_for_key(j, 3).key_name for j in mine] == ["new owner", "new owner"]
    with pytest.raises(NotFoundError):
        store.get_for_key(mine[0], 1)
    assert store.get_for_key(other, 2).key_id == 2
    # Already the new key's: nothing moves again.
    assert store.reassign(mine, key_id=3, key_name="new owner") == []
