"""The shared poller's logic without a server: the sans-IO scan, coverage, wake-ups, fallbacks.

The same behaviour against the devstack is in tests/test_trigger_shared_poll.py.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from airflow_provider_bacalhau.errors import BacalhauApiError
from airflow_provider_bacalhau.waiting import poller
from airflow_provider_bacalhau.waiting.list_scan import (
    MAX_PAGE,
    MIN_PAGE,
    WATCH_LABEL,
    WATCH_SELECTOR,
    ListUnusable,
    page_limit,
    scan_changes,
)
from airflow_provider_bacalhau.waiting.poller import SharedPoller


@pytest.fixture
def anyio_backend():
    return "asyncio"


def job(job_id: str, stamp: int) -> dict:
    return {"ID": job_id, "ModifyTime": stamp, "Labels": {WATCH_LABEL: "true"}}


def drive(scan, pages: list[dict]) -> tuple[list[dict], object]:
    """Feed ``pages`` to a scan; returns the queries it made and its result."""
    queries = [next(scan)]
    try:
        for page in pages:
            queries.append(scan.send(page))
    except StopIteration as done:
        return queries, done.value
    raise AssertionError("the scan wanted more pages than given")


def test_the_first_query_lists_labelled_jobs_newest_change_first():
    query = next(scan_changes(None, 20))
    assert query == {"labels": WATCH_SELECTOR, "order_by": "modified_at", "reverse": "true", "limit": 20}


def test_a_scan_stops_at_the_watermark_in_one_request():
    page = {"Items": [job("a", 30), job("b", 20), job("c", 10), job("d", 5)], "NextToken": "more"}
    queries, found = drive(scan_changes(20, 20), [page])
    assert len(queries) == 1 and found.complete
    assert found.listed == {"a": 30, "b": 20} and found.newest == 30  # the watermark itself: read again


def test_a_scan_pages_with_the_token_and_keeps_the_label_selector():
    pages = [
        {"Items": [job("a", 50), job("b", 40)], "NextToken": "t1"},
        {"Items": [job("c", 30), job("d", 5)], "NextToken": "t2"},
    ]
    queries, found = drive(scan_changes(10, 2), pages)
    assert queries[1] == {"labels": WATCH_SELECTOR, "next_token": "t1"}  # labels are not in the token
    assert found.listed == {"a": 50, "b": 40, "c": 30} and found.requests == 2


def test_without_a_watermark_one_page_is_read():
    queries, found = drive(scan_changes(None, 2), [{"Items": [job("a", 9), job("b", 8)], "NextToken": "t"}])
    assert len(queries) == 1 and found.newest == 9 and found.complete


def test_jobs_pushed_into_the_next_page_are_not_a_disorder():
    # Two jobs changed between the requests: the last two of page 1 come again at the top of page 2.
    pages = [
        {"Items": [job("a", 50), job("b", 40), job("c", 30)], "NextToken": "t1"},
        {"Items": [job("b", 40), job("c", 30), job("d", 20)], "NextToken": ""},
    ]
    _, found = drive(scan_changes(0, 3), pages)
    assert found.listed == {"a": 50, "b": 40, "c": 30, "d": 20}


@pytest.mark.parametrize(
    "items, why",
    [
        ([job("a", 10), job("b", 20)], "not ordered"),  # a server that ignores order_by=modified_at
        ([{"ID": "a"}], "ModifyTime"),
        ([{"ModifyTime": 3}], "no ID"),
    ],
)
def test_an_answer_that_cannot_be_trusted_is_refused(items, why):
    scan = scan_changes(0, 20)
    next(scan)
    with pytest.raises(ListUnusable, match=why):
        scan.send({"Items": items, "NextToken": ""})


def test_a_scan_past_its_page_budget_is_incomplete():
    pages = [{"Items": [job(f"j{i}", 100 - i)], "NextToken": f"t{i}"} for i in range(3)]
    _, found = drive(scan_changes(0, 1, max_pages=3), pages)
    assert not found.complete and len(found.listed) == 3


def test_page_size_follows_what_changed_last_time():
    assert page_limit(0) == MIN_PAGE
    assert page_limit(100) == 210
    assert page_limit(10_000) == MAX_PAGE


class ScriptedList:
    """Stands in for the poller's client: answers list requests and job reads from a mutable table."""

    def __init__(self) -> None:
        self.jobs: dict[str, int] = {}
        self.error: Exception | None = None
        self.calls = 0
        self.read_error: Exception | None = None
        self.read_seconds = 0.0
        self.reads: list[str] = []  # job IDs in the order they were read
        self.in_flight = self.max_in_flight = 0

    def touch(self, job_id: str) -> int:
        self.jobs[job_id] = time.time_ns()
        return self.jobs[job_id]

    async def list_jobs(self, **query) -> dict:
        self.calls += 1
        if self.error is not None:
            raise self.error
        items = sorted((job(j, t) for j, t in self.jobs.items()), key=lambda i: -i["ModifyTime"])
        return {"Items": items[: int(query.get("limit") or 1000)], "NextToken": ""}

    async def get_job(self, job_id: str) -> dict:
        self.reads.append(job_id)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.read_seconds)
            if self.read_error is not None:
                raise self.read_error
            return read(self, job_id)
        finally:
            self.in_flight -= 1

    async def close(self) -> None:
        pass


def read(server: ScriptedList, job_id: str, labelled: bool = True) -> dict:
    """What GET /jobs/{id} would answer."""
    return {
        "Job": {
            "ID": job_id,
            "ModifyTime": server.jobs[job_id],
            "Labels": {WATCH_LABEL: "true"} if labelled else {},
        }
    }


def scripted_poller(server: ScriptedList) -> SharedPoller:
    return SharedPoller(config=None, client=server)  # no scanning task: the test calls poll_once


@pytest.mark.anyio
async def test_a_read_after_the_watermark_is_covered_and_a_change_wakes_it():
    server = ScriptedList()
    server.touch("a"), server.touch("b")
    shared = scripted_poller(server)
    watch = shared.register(5.0)
    await shared.poll_once()  # sets the watermark
    watch.read_epoch = shared.epoch  # what ready() records
    watch.saw(read(server, "a"))
    assert watch.batched
    waiting = asyncio.create_task(watch.wait(5.0, time.time() + 60))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    await shared.poll_once()
    await asyncio.sleep(0.01)
    assert not waiting.done(), "nothing changed: no wake-up"
    server.touch("a")
    await shared.poll_once()
    await asyncio.wait_for(waiting, 1)  # woken long before its 5 s
    shared.unregister(watch)


@pytest.mark.anyio
async def test_a_read_before_the_watermark_is_not_covered():
    server = ScriptedList()
    server.touch("a")
    shared = scripted_poller(server)
    watch = shared.register(5.0)
    watch.saw(read(server, "a"))  # read at epoch 0, before any list
    await shared.poll_once()
    assert not watch.batched  # a change between that read and the list could be older than the watermark
    started = time.monotonic()
    await watch.wait(0.2, time.time() + 60)  # a plain sleep of the trigger's own interval
    assert 0.15 < time.monotonic() - started < 1
    watch.saw(read(server, "a"))
    assert watch.batched
    shared.unregister(watch)


@pytest.mark.anyio
async def test_an_unlabelled_job_or_a_failed_read_polls_on_its_own():
    server = ScriptedList()
    server.touch("a")
    shared = scripted_poller(server)
    await shared.poll_once()
    other = shared.register(5.0)
    other.saw(read(server, "a", labelled=False))  # submitted by someone else, without the label
    assert not other.batched
    mine = shared.register(5.0)
    mine.saw(read(server, "a"))
    assert mine.batched
    mine.saw(BacalhauApiError("boom", status=503))
    assert not mine.batched  # the waiting loop retries on its own schedule
    shared.unregister(other), shared.unregister(mine)


async def batched_watch(server: ScriptedList) -> tuple[SharedPoller, poller.JobWatch]:
    """A poller with a watermark and one watch of job ``a``, read after it: batched."""
    server.touch("a")
    shared = scripted_poller(server)
    await shared.poll_once()
    watch = shared.register(5.0)
    watch.saw(read(server, "a"))
    assert watch.batched
    return shared, watch


async def waiting_on(watch: poller.JobWatch) -> asyncio.Task:
    waiting = asyncio.create_task(watch.wait(5.0, time.time() + 60))
    await asyncio.sleep(0.01)  # it waits before the poller wakes it
    return waiting


@pytest.mark.anyio
async def test_a_list_the_server_cannot_answer_sends_every_trigger_back_to_its_own_polling():
    server = ScriptedList()
    shared, watch = await batched_watch(server)
    waiting = await waiting_on(watch)
    server.error = BacalhauApiError("OrderBy modified_at not supported", status=500)
    await shared.poll_once()
    await asyncio.wait_for(waiting, 1)  # reads at once, then polls itself
    assert not shared.healthy and not watch.batched
    server.error = None
    await shared.poll_once()
    assert shared.healthy and shared.watermark is not None
    watch.read_epoch = shared.epoch
    watch.saw(read(server, "a"))
    assert watch.batched  # its next read after the recovery is covered again
    shared.unregister(watch)


@pytest.mark.anyio
async def test_a_transient_list_error_keeps_the_watermark():
    server = ScriptedList()
    shared, watch = await batched_watch(server)
    server.error = BacalhauApiError("unavailable", status=503)
    for _ in range(5):  # a count of errors does not end it: a slow server is not polled 10,000 times
        await shared.poll_once()
    assert shared.healthy and watch.batched  # the next scan reads back to the same watermark
    server.error = None
    server.touch("a")
    await shared.poll_once()
    await asyncio.wait_for(watch.wait(5.0, time.time() + 60), 1)  # the change made while the list
    assert watch.take_answer() == read(server, "a")  # failed is still seen, and read
    shared.unregister(watch)


@pytest.mark.anyio
async def test_transient_list_errors_past_the_outage_limit_send_every_trigger_back():
    server = ScriptedList()
    shared, watch = await batched_watch(server)
    waiting = await waiting_on(watch)
    server.error = BacalhauApiError("unavailable", status=503)
    shared.answered_at -= poller.LIST_OUTAGE_SECONDS - 1  # the last answer 59 s ago
    await shared.poll_once()
    assert shared.healthy and watch.batched and not waiting.done()
    shared.answered_at -= 1  # 60 s without an answer: its job may have ended unseen
    await shared.poll_once()
    await asyncio.wait_for(waiting, 1)  # reads at once, then polls itself
    assert not shared.healthy and not watch.batched
    shared.unregister(watch)


@pytest.mark.anyio
async def test_disabled_means_every_trigger_polls_on_its_own(monkeypatch):
    monkeypatch.setattr(poller, "ENABLED", False)
    server = ScriptedList()
    server.touch("a")
    shared = scripted_poller(server)
    watch = shared.register(5.0)
    shared.start()
    assert shared._task is None  # no list requests at all
    watch.saw(read(server, "a"))
    assert not watch.batched
    shared.unregister(watch)


async def covered_watches(server: ScriptedList, shared: SharedPoller, job_ids: list[str]) -> list:
    """One watch per job, each read once after the watermark (what a trigger's first read does)."""
    watches = []
    for job_id in job_ids:
        watch = shared.register(5.0)
        await watch.ready(1)
        watch.saw(read(server, job_id))
        assert watch.batched
        watches.append(watch)
    return watches


@pytest.mark.anyio
async def test_the_poller_reads_a_changed_job_and_hands_its_trigger_the_answer():
    server = ScriptedList()
    server.touch("a"), server.touch("b")
    shared = scripted_poller(server)
    await shared.poll_once()
    a, b = await covered_watches(server, shared, ["a", "b"])
    stamp = server.touch("a")
    await shared.poll_once()
    await asyncio.wait_for(a.wait(5.0, time.time() + 60), 1)  # woken by the poller's read
    assert server.reads == ["a"] and shared.reads == 1  # not b: it did not change
    answer = a.take_answer()
    assert answer == read(server, "a") and answer["Job"]["ModifyTime"] == stamp
    assert a.take_answer() is None  # once: a later wake-up reads again
    assert b.take_answer() is None
    a.saw(answer)  # the trigger judges it as its own read; nothing left to read
    assert a.batched and not a._changed
    await shared.poll_once()
    await asyncio.sleep(0.05)
    assert server.reads == ["a"]
    a.close(), b.close()


@pytest.mark.anyio
async def test_changed_jobs_are_read_oldest_change_first_a_few_at_a_time():
    server = ScriptedList()
    job_ids = [f"j{i}" for i in range(12)]
    for job_id in job_ids:
        server.touch(job_id)
    shared = scripted_poller(server)
    await shared.poll_once()
    watches = await covered_watches(server, shared, job_ids)
    order = list(reversed(job_ids))  # they change in this order: j11 first
    for job_id in order:
        server.touch(job_id)
        await asyncio.sleep(0.001)
    server.read_seconds = 0.02
    await shared.poll_once()
    await asyncio.wait_for(asyncio.gather(*(w.wait(5.0, time.time() + 60) for w in watches)), 5)
    assert server.reads == order, "the list is newest first; the reads go oldest first"
    assert server.max_in_flight == poller.READERS
    assert all(w.take_answer() is not None for w in watches)
    for watch in watches:
        watch.close()
    assert not shared._readers


@pytest.mark.anyio
async def test_a_read_the_poller_cannot_make_is_left_to_the_trigger():
    server = ScriptedList()
    server.touch("a")
    shared = scripted_poller(server)
    await shared.poll_once()
    [watch] = await covered_watches(server, shared, ["a"])
    server.touch("a")
    server.read_error = BacalhauApiError("unavailable", status=503)
    await shared.poll_once()
    await asyncio.wait_for(watch.wait(5.0, time.time() + 60), 1)  # woken all the same
    assert server.reads == ["a"]
    assert watch.take_answer() is None  # so the trigger reads, and its loop judges any error
    watch.close()


@pytest.mark.anyio
async def test_an_answer_older_than_the_triggers_own_read_is_dropped():
    server = ScriptedList()
    server.touch("a")
    shared = scripted_poller(server)
    await shared.poll_once()
    [watch] = await covered_watches(server, shared, ["a"])
    server.touch("a")
    server.read_seconds = 0.2
    await shared.poll_once()
    await asyncio.sleep(0.05)  # the poller's read is in flight...
    server.touch("a")
    watch.saw(read(server, "a"))  # ...when the trigger reads on its own (e.g. its 15-minute read)
    await asyncio.sleep(0.3)
    assert server.reads == ["a"] and watch.take_answer() is None
    watch.close()


@pytest.mark.anyio
async def test_the_first_wait_for_a_watermark_is_long_but_ends_at_the_deadline(monkeypatch):
    class Config:  # a hashable stand-in: it picks the poller
        pass

    class Client:
        config = Config()

    slow = asyncio.Event()

    async def no_scan(self):  # the first list request does not answer
        await slow.wait()

    monkeypatch.setattr(SharedPoller, "_run", no_scan)
    started = time.monotonic()
    watch = await poller.watch(Client(), 0.1, deadline=time.time() + 0.5)
    waited = time.monotonic() - started
    assert 0.4 < waited < 2, "not one poll interval (0.1 s): up to the deadline"
    assert poller.FIRST_WATERMARK_SECONDS >= 60
    watch.close()
