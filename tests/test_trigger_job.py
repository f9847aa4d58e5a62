"""BacalhauJobTrigger against the devstack: events, deadlines, transient errors, one pool, on_kill."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from airflow_helpers import record_logs
from devstack_helpers import busybox_job

from airflow_provider_bacalhau.client import BacalhauClient
from airflow_provider_bacalhau.client.aio import _POOLS, close_shared_http_clients
from airflow_provider_bacalhau.spec import JobStatus
from airflow_provider_bacalhau.triggers.job import BacalhauJobTrigger

GET_JOB = "GET /api/v1/orchestrator/jobs/{id}"


@pytest.fixture
def anyio_backend():
    return "asyncio"


def submit(client: BacalhauClient, script: str) -> str:
    return client.submit_job(busybox_job(script))["JobID"]


def wait_state(client: BacalhauClient, job_id: str, states: set[str], timeout: float = 30) -> JobStatus:
    end = time.time() + timeout
    while True:
        status = JobStatus.from_api(client.get_job(job_id))
        if status.state.value in states or time.time() > end:
            return status
        time.sleep(0.2)


async def events_of(trigger: BacalhauJobTrigger) -> list[dict]:
    try:
        return [event.payload async for event in trigger.run()]
    finally:
        await close_shared_http_clients()


def test_serialize_is_pinned_and_round_trips():
    trigger = BacalhauJobTrigger(
        "j-1",
        bacalhau_conn_id="c",
        namespace="team-a",
        poll_interval=2,
        deadline=1700000000.5,
        stop_on_kill=False,
        stop_reason="why",
        stream_logs=True,
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_bacalhau.triggers.job.BacalhauJobTrigger"
    assert kwargs == {
        "job_id": "j-1",
        "bacalhau_conn_id": "c",
        "namespace": "team-a",
        "poll_interval": 2.0,
        "deadline": 1700000000.5,
        "stop_on_kill": False,
        "stop_reason": "why",
        "stream_logs": True,
    }
    import importlib
    import json

    module, _, name = classpath.rpartition(".")
    again = getattr(importlib.import_module(module), name)(**json.loads(json.dumps(kwargs)))
    assert again.serialize() == (classpath, kwargs)


def test_a_trigger_serialized_before_live_logs_still_loads_and_does_not_stream():
    older = {
        "job_id": "j-1",
        "bacalhau_conn_id": "c",
        "namespace": None,
        "poll_interval": 2.0,
        "deadline": 1700000000.5,
        "stop_on_kill": True,
        "stop_reason": "",
    }
    trigger = BacalhauJobTrigger(**older)
    assert trigger.stream_logs is False and trigger.serialize()[1] == {**older, "stream_logs": False}


def test_default_deadline_is_fixed_at_construction():
    before = time.time()
    trigger = BacalhauJobTrigger("j-1")
    assert before + 23 * 3600 < trigger.deadline < time.time() + 25 * 3600
    assert trigger.serialize()[1]["deadline"] == trigger.deadline  # survives a triggerer restart


@pytest.mark.parametrize("kwargs", [{"job_id": ""}, {"job_id": "j", "poll_interval": 0}])
def test_bad_arguments_name_the_field(kwargs):
    with pytest.raises(ValueError, match=next(k for k in ("poll_interval", "job_id") if k in str(kwargs))):
        BacalhauJobTrigger(**kwargs)


@pytest.mark.anyio
async def test_success_event_carries_the_job(devstack_env, client):
    job_id = submit(client, "echo hello; echo oops >&2")
    events = await events_of(BacalhauJobTrigger(job_id, poll_interval=0.2, deadline=time.time() + 60))
    assert len(events) == 1
    event = events[0]
    assert event["status"] == "success" and event["job_id"] == job_id
    status = JobStatus.from_api(event["job"])
    assert status.succeeded
    assert status.executions[0].run_output.stdout.strip() == "hello"
    assert "Job" not in event["job"]["Executions"]["Items"][0]  # spec copies dropped


@pytest.mark.anyio
async def test_nonzero_exit_is_a_failed_event(devstack_env, client):
    job_id = submit(client, "echo bad >&2; exit 3")
    [event] = await events_of(BacalhauJobTrigger(job_id, poll_interval=0.2, deadline=time.time() + 60))
    assert event["status"] == "failed"
    status = JobStatus.from_api(event["job"])
    assert status.state.value == "Completed" and status.executions[0].run_output.exit_code == 3


@pytest.mark.anyio
async def test_deadline_gives_a_timeout_event(devstack_env, client):
    job_id = submit(client, "sleep 30")
    started = time.time()
    try:
        [event] = await events_of(BacalhauJobTrigger(job_id, poll_interval=0.3, deadline=time.time() + 1.5))
        assert event["status"] == "timeout" and event["job_id"] == job_id
        assert 1.4 < time.time() - started < 10
        assert JobStatus.from_api(event["job"]).state.value in ("Pending", "Queued", "Running")
    finally:
        client.stop_job(job_id, reason="test cleanup")


@pytest.mark.anyio
async def test_unknown_connection_gives_an_error_event(devstack_env):
    [event] = await events_of(
        BacalhauJobTrigger("j-x", bacalhau_conn_id="no_such_connection", deadline=time.time() + 30)
    )
    assert event["status"] == "error" and "no_such_connection" in event["message"]


@pytest.mark.anyio
async def test_unknown_job_gives_an_error_event_at_once(devstack_env):
    started = time.time()
    [event] = await events_of(BacalhauJobTrigger("j-00000000-does-not-exist", deadline=time.time() + 30))
    assert event["status"] == "error" and "404" in event["message"]
    assert time.time() - started < 10


@pytest.mark.anyio
async def test_transient_api_errors_are_retried_without_ending_the_wait(
    devstack_env, devstack, client, monkeypatch
):
    # No client-level retries: every fault reaches the trigger, which must keep waiting.
    monkeypatch.setenv("AIRFLOW_CONN_BACALHAU_NORETRY", devstack.bacalhau_conn_json(max_retries=0))
    job_id = submit(client, "sleep 1; echo done")
    devstack.set_faults(routes={GET_JOB: {"every": 1, "status": 503, "times": 3}})
    try:
        with record_logs() as logs:
            [event] = await events_of(
                BacalhauJobTrigger(
                    job_id, bacalhau_conn_id="bacalhau_noretry", poll_interval=0.3, deadline=time.time() + 60
                )
            )
    finally:
        devstack.clear_faults()
    assert event["status"] == "success", event["message"]
    retries = [m for m in logs.messages("warning") if "transient API error" in m]
    assert len(retries) == 3 and "503" in retries[0]


@pytest.mark.anyio
async def test_dropped_connections_are_retried_too(devstack_env, devstack, client, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_BACALHAU_NORETRY", devstack.bacalhau_conn_json(max_retries=0))
    job_id = submit(client, "echo fine")
    wait_state(client, job_id, {"Completed"})
    devstack.set_faults(routes={GET_JOB: {"every": 1, "action": "drop", "times": 2}})
    try:
        [event] = await events_of(
            BacalhauJobTrigger(
                job_id, bacalhau_conn_id="bacalhau_noretry", poll_interval=0.5, deadline=time.time() + 30
            )
        )
    finally:
        devstack.clear_faults()
    assert event["status"] == "success", event["message"]


@pytest.mark.anyio
async def test_many_triggers_share_one_connection_pool(devstack_env, client, monkeypatch):
    job_ids = [submit(client, f"echo {i}") for i in range(3)]
    used = []
    original = BacalhauJobTrigger._client

    async def recording_client(self, max_retries):
        api = await original(self, max_retries)
        used.append(api._http)
        return api

    monkeypatch.setattr(BacalhauJobTrigger, "_client", recording_client)
    triggers = [
        BacalhauJobTrigger(job_ids[i % 3], poll_interval=0.2, deadline=time.time() + 60) for i in range(30)
    ]

    async def first(trigger):
        return [e.payload async for e in trigger.run()][0]

    try:
        events = await asyncio.gather(*(first(t) for t in triggers))
        loop_pools = _POOLS[asyncio.get_running_loop()]
        assert len(loop_pools) == 1
        pool = next(iter(loop_pools.values()))
        assert not pool.is_closed  # no trigger closed the shared pool
    finally:
        await close_shared_http_clients()
    assert {e["status"] for e in events} == {"success"}
    assert len(used) == 30 and all(http is pool for http in used)


@pytest.mark.anyio
async def test_on_kill_stops_the_job_while_deferred(devstack_env, client):
    job_id = submit(client, "sleep 30")
    wait_state(client, job_id, {"Running"})
    trigger = BacalhauJobTrigger(
        job_id,
        poll_interval=0.2,
        deadline=time.time() + 60,
        stop_reason="Airflow task d.t (run r) was killed while deferred",
    )

    async def consume():
        return [e async for e in trigger.run()]

    try:
        watcher = asyncio.ensure_future(consume())
        await asyncio.sleep(0.5)
        watcher.cancel()  # what the triggerer does on a user kill, before calling on_kill()
        with pytest.raises(asyncio.CancelledError):
            await watcher
        await trigger.on_kill()
    finally:
        await close_shared_http_clients()
    status = wait_state(client, job_id, {"Stopped"}, timeout=10)
    assert status.state.value == "Stopped"
    assert "killed while deferred" in status.message


@pytest.mark.anyio
async def test_on_kill_after_the_event_leaves_the_job_alone(devstack_env, client):
    job_id = submit(client, "echo quick")
    trigger = BacalhauJobTrigger(job_id, poll_interval=0.2, deadline=time.time() + 60)
    [event] = await events_of(trigger)
    assert event["status"] == "success"
    await trigger.on_kill()  # would be a 500 "cannot stop job in state Completed" if it tried
    await close_shared_http_clients()
    assert JobStatus.from_api(client.get_job(job_id)).state.value == "Completed"


def _job(state: str, env_secret: str = "") -> dict:
    task = {"Name": "main", "Env": {"TOKEN": env_secret}} if env_secret else {"Name": "main"}
    return {
        "Job": {
            "ID": "j-1",
            "Name": "n",
            "Type": "batch",
            "Version": 1,
            "State": {"StateType": state},
            "Tasks": [task],
        },
        "Executions": {
            "Items": [
                {
                    "ID": "e-1",
                    "JobVersion": 1,
                    "Job": {"Tasks": [task]},
                    "ComputeState": {"StateType": 9},
                    "RunOutput": {"ExitCode": 0},
                }
            ]
        },
    }


def _drive(answers, poll_interval=1.0, deadline_in=60.0):
    """Run the waiting loop on scripted answers; return (event, pauses)."""
    import logging

    from airflow_provider_bacalhau.waiting import Sleep, watch_job

    watch = watch_job("j-1", poll_interval, time.time() + deadline_in, logging.getLogger("t"))
    pauses, step, answers = [], next(watch), list(answers)
    try:
        while True:
            if isinstance(step, Sleep):
                pauses.append(step.seconds)
                step = watch.send(None)
            else:
                step = watch.send(answers.pop(0))
    except StopIteration as done:
        return done.value, pauses


def test_watch_loop_retries_transient_errors_then_finishes():
    from airflow_provider_bacalhau.errors import BacalhauApiError

    busy = BacalhauApiError("busy", status=503)
    event, pauses = _drive([_job("Running"), busy, busy, _job("Completed")], poll_interval=5.0)
    assert event["status"] == "success"
    # Poll interval, then the client's backoff from 1 s, doubling, jittered over its upper half.
    assert pauses[0] == 5.0 and 0.5 <= pauses[1] <= 1.0 and 1.0 <= pauses[2] <= 2.0


def test_watch_loop_ends_with_error_on_a_lasting_api_error():
    from airflow_provider_bacalhau.errors import BacalhauApiError

    event, _ = _drive([BacalhauApiError("job not found: j-1", status=404)])
    assert event["status"] == "error" and "job not found" in event["message"]


def test_watch_loop_times_out_at_the_deadline():
    event, pauses = _drive([_job("Running")] * 3, poll_interval=1.0, deadline_in=0.0)
    assert event["status"] == "timeout" and "still Running" in event["message"]
    assert pauses == []


def test_events_carry_no_job_spec():
    """Events are stored by Airflow: the spec (with env values) must not travel in them."""
    from airflow_provider_bacalhau.waiting import event_from_response

    event = event_from_response(_job("Completed", env_secret="s3cr3t-value"))
    assert "s3cr3t-value" not in json.dumps(event)
    assert event["job"]["Job"]["State"] == {"StateType": "Completed"}
