"""Many triggers, one list request per poll, against the devstack; the list answers as v1.9.3 does.

The devstack's ``GET /jobs`` follows ``listJobs`` (pkg/publicapi/endpoint/orchestrator/job.go) and
``BoltJobStore.getJobs`` (pkg/jobstore/boltdb/store.go): sort by created_at or modified_at, filter by
the label selector, then page; a ``next_token`` replaces the query's order and limit. Every answer is
checked against the swagger (tests/conftest.py) and decoded by Bacalhau's generated client.
"""

from __future__ import annotations

import asyncio
import socket
import time

import httpx
import pytest
from airflow_helpers import FakeTaskInstance, fake_context, record_logs
from bacalhau_apiclient.api_client import ApiClient
from devstack_helpers import JOBS, busybox_job, noop_job, submit, unique, wait_for

from airflow_provider_bacalhau.client.aio import (
    close_shared_http_clients,
    shared_http_client,
)
from airflow_provider_bacalhau.hooks.bacalhau import BacalhauHook
from airflow_provider_bacalhau.triggers.job import BacalhauJobTrigger
from airflow_provider_bacalhau.waiting import poller
from airflow_provider_bacalhau.waiting.list_scan import WATCH_LABEL, WATCH_LABEL_VALUE

LABELS = {WATCH_LABEL: WATCH_LABEL_VALUE}


@pytest.fixture
def anyio_backend():
    return "asyncio"


class _Answer:
    def __init__(self, body: bytes) -> None:
        self.data = body


def decoded(response) -> object:
    assert response.status_code == 200, response.text
    return ApiClient().deserialize(_Answer(response.content), "ApiListJobsResponse")


@pytest.fixture
def labelled_jobs(api):
    """Three finished noop jobs with a label of this test alone, modified in the order b, c, a."""
    tag = unique("list")
    ids, names = {}, {}
    for name in ("a", "b", "c"):
        names[name] = unique(name)
        ids[name] = submit(api, noop_job(names[name], Labels={"suite": tag}))["JobID"]
        wait_for(api, ids[name])
    for name in ("b", "c", "a"):  # a new version bumps ModifyTime (and not CreateTime)
        submit(api, noop_job(names[name], Labels={"suite": tag, "v": "2"}))
        wait_for(api, ids[name])
    return tag, ids


def test_list_orders_by_modified_at_newest_first_within_the_selector(api, labelled_jobs):
    tag, ids = labelled_jobs
    params = {"labels": f"suite={tag}", "order_by": "modified_at", "reverse": "true"}
    answer = api.get(JOBS, params=params)
    assert [j["ID"] for j in answer.json()["Items"]] == [ids["a"], ids["c"], ids["b"]]
    assert [j.id for j in decoded(answer).items] == [ids["a"], ids["c"], ids["b"]]
    by_creation = api.get(JOBS, params={"labels": f"suite={tag}"}).json()["Items"]
    assert [j["ID"] for j in by_creation] == [ids["a"], ids["b"], ids["c"]]
    both = api.get(JOBS, params=[("labels", f"suite={tag}"), ("labels", "v in (2)")]).json()["Items"]
    assert len(both) == 3  # repeated labels= are ANDed (parseLabels joins them with commas)
    assert api.get(JOBS, params=[("labels", f"suite={tag}"), ("labels", "v=1")]).json()["Items"] == []


def test_the_token_replaces_order_and_limit_but_not_the_selector(api, labelled_jobs):
    tag, ids = labelled_jobs
    first = api.get(
        JOBS, params={"labels": f"suite={tag}", "order_by": "modified_at", "reverse": "true", "limit": 2}
    ).json()
    assert [j["ID"] for j in first["Items"]] == [ids["a"], ids["c"]] and first["NextToken"]
    rest = api.get(
        JOBS,
        params={
            "labels": f"suite={tag}",
            "next_token": first["NextToken"],
            "order_by": "created_at",
            "limit": 50,
        },
    )
    assert [j["ID"] for j in rest.json()["Items"]] == [ids["b"]] and rest.json()["NextToken"] == ""
    decoded(rest)


@pytest.mark.parametrize("order", ["modify_time", "create_time", "id", "name"])
def test_orders_getjobs_does_not_know_are_a_bare_500(api, order):
    # modify_time/create_time are accepted for executions only (sortExecutions); "id" sorts in
    # getListSorter but getJobs' own switch refuses it. A fmt.Errorf: CustomHTTPErrorHandler's default.
    answer = api.get(JOBS, params={"order_by": order})
    assert answer.status_code == 500
    assert answer.json()["Message"] == "Internal server error" and answer.json()["Component"] == "Unknown"


def test_a_bad_selector_is_a_400(api):
    assert api.get(JOBS, params={"labels": "a in (b"}).status_code == 400


def test_operators_label_the_jobs_they_submit(devstack_env, devstack):
    from airflow_provider_bacalhau.operators import BacalhauJobOperator

    job = busybox_job("true")
    job["Labels"] = {"team": "data"}
    ti = FakeTaskInstance(dag_id="pollertest", task_id="run", run_id=f"run-{time.time_ns()}")
    BacalhauJobOperator(task_id="run", job=job, deferrable=False, poll_interval=0.2).execute(fake_context(ti))
    [stored] = [j for j in devstack.jobs() if j["ID"] == ti.xcoms["bacalhau_job_id"]]
    assert stored["Labels"] == {"team": "data", WATCH_LABEL: WATCH_LABEL_VALUE}


async def watch_all(job_ids: list[str], poll_interval: float) -> tuple[list[dict], int, int, int]:
    """Run one trigger per job on this loop; returns the events, the triggers' own job reads, the
    poller's list requests and the job reads the poller made for the triggers."""
    http = shared_http_client(await BacalhauHook().async_client_config())
    reads = 0

    async def count(request) -> None:
        nonlocal reads
        reads += request.url.path != JOBS

    http.event_hooks = {"request": [count], "response": []}

    def poller_requests() -> tuple[int, int]:
        pollers = poller._POLLERS.get(asyncio.get_running_loop(), {}).values()
        return sum(p.requests for p in pollers), sum(p.reads for p in pollers)

    before = poller_requests()
    triggers = [
        BacalhauJobTrigger(j, poll_interval=poll_interval, deadline=time.time() + 90) for j in job_ids
    ]
    try:

        async def events_of(trigger: BacalhauJobTrigger) -> list[dict]:
            return [e.payload async for e in trigger.run()]

        events = await asyncio.gather(*(events_of(t) for t in triggers))
        after = poller_requests()
    finally:
        await close_shared_http_clients()
    lists, poller_reads = after[0] - before[0], after[1] - before[1]
    return [e for batch in events for e in batch], reads, lists, poller_reads


@pytest.mark.anyio
async def test_labelled_jobs_are_read_only_when_they_change(devstack_env, api):
    job_ids = [submit(api, {**busybox_job("sleep 3"), "Labels": LABELS})["JobID"] for _ in range(4)]
    started = time.monotonic()
    events, reads, lists, poller_reads = await watch_all(job_ids, poll_interval=0.25)
    polls = (time.monotonic() - started) / 0.25
    assert [e["status"] for e in events] == ["success"] * 4
    # Each trigger reads its job once, at the start. The poller reads a job after each of its state
    # changes (Running, Completed) and hands the answer over: per-job polling would have made
    # about `polls` reads per job, and woken triggers would each read again.
    assert polls > 10 and reads == len(job_ids), (reads, polls)
    assert lists >= polls / 2  # about one list request per poll, for all of them
    assert len(job_ids) <= poller_reads <= 3 * len(job_ids)


@pytest.mark.anyio
async def test_a_job_without_the_label_is_polled_by_its_trigger(devstack_env, api):
    job_id = submit(api, busybox_job("sleep 3"))["JobID"]  # e.g. submitted by another tool
    events, reads, _, poller_reads = await watch_all([job_id], poll_interval=0.25)
    assert events[0]["status"] == "success"
    assert reads >= 6 and poller_reads == 0  # its own read every poll (a labelled job: one)


@pytest.mark.anyio
async def test_a_server_that_cannot_list_falls_back_to_reads(devstack_env, devstack, api):
    job_ids = [submit(api, {**busybox_job("sleep 3"), "Labels": LABELS})["JobID"] for _ in range(2)]
    devstack.set_faults(routes={f"GET {JOBS}": {"every": 1, "status": 500}})  # e.g. an older server
    try:
        with record_logs(poller.__name__) as logs:
            events, reads, lists, _ = await watch_all(job_ids, poll_interval=0.25)
    finally:
        devstack.clear_faults()
    assert [e["status"] for e in events] == ["success", "success"]
    assert lists >= 1 and reads >= 2 * 6  # each trigger reads every poll again
    assert any("cannot be used" in m for m in logs.messages("warning"))


def test_an_idle_connection_stays_open_between_two_polls(devstack):
    # v1.9.3 keeps an idle connection 20 s (ReadTimeout, no IdleTimeout: pkg/publicapi/config.go),
    # so a poller's connection lives from one 5 s poll to the next; uvicorn's default closed it at 5 s.
    url = httpx.URL(devstack.api_url)
    with socket.create_connection((url.host, url.port), timeout=10) as sock:
        sock.sendall(f"GET /api/v1/agent/alive HTTP/1.1\r\nHost: {url.host}\r\n\r\n".encode())
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        time.sleep(6.5)
        sock.setblocking(False)
        closed = False
        try:
            while chunk := sock.recv(65536):  # the rest of the answer, if it came in two parts
                assert b"HTTP/1.1" not in chunk
            closed = True  # end of stream
        except BlockingIOError:
            pass  # nothing more to read and no end of stream: still open
        assert not closed, "the server closed an idle keep-alive connection within 6.5 s"
