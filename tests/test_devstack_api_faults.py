"""The devstack's auth modes, injected faults and restart (state kept in the data dir)."""

from __future__ import annotations

import base64
import time
from collections import Counter

import httpx
import pytest
from devstack_helpers import (
    JOBS,
    busybox_job,
    get_job,
    noop_job,
    submit,
    unique,
    wait_execution_state,
    wait_for,
)

API_KEY = "devstack-test-api-key-0001"
JOB_ROUTE = "GET /api/v1/orchestrator/jobs/{id}"


@pytest.fixture
def faults(devstack):
    yield devstack
    devstack.clear_faults()


@pytest.fixture
def auth(devstack):
    devstack.set_auth(
        [
            {"api_key": API_KEY, "capabilities": ["*"]},
            {
                "username": "reader",
                "password": "reader-password",
                "capabilities": [{"Actions": ["read:job"]}],
            },
        ]
    )
    yield devstack
    devstack.clear_auth()


def test_auth_401_403_and_open_paths(api, auth):
    resp = api.get(JOBS)
    assert resp.status_code == 401
    body = resp.json()
    assert (body["Code"], body["Component"], body["Status"]) == ("Unauthorized", "Authorizer", 401)
    assert body["Details"]["reason"]
    assert api.get(JOBS, headers={"Authorization": "Bearer wrong-key-wrong-key-wrong"}).status_code == 401
    assert api.get(JOBS, headers={"Authorization": f"Bearer {API_KEY}"}).status_code == 200
    basic = "Basic " + base64.b64encode(b"reader:reader-password").decode()
    assert api.get(JOBS, headers={"Authorization": basic}).status_code == 200
    denied = api.put(JOBS, json={"Job": noop_job()}, headers={"Authorization": basic})
    assert (
        denied.status_code == 403
        and denied.json()["Code"] == "Forbidden"
        and denied.json()["Component"] == "Authorizer"
    )
    assert (
        api.get("/api/v1/agent/node", headers={"Authorization": basic}).status_code == 403
    )  # needs read:agent
    for open_path in ("/api/v1/agent/alive", "/api/v1/agent/version"):
        assert api.get(open_path).status_code == 200
    wrong_password = "Basic " + base64.b64encode(b"reader:nope-nope-nope").decode()
    assert api.get(JOBS, headers={"Authorization": wrong_password}).status_code == 401


def test_error_rate_is_seeded_and_per_route(api, faults):
    job_id = submit(api, noop_job())["JobID"]

    def statuses() -> list[int]:
        return [api.get(f"{JOBS}/{job_id}").status_code for _ in range(24)]

    faults.set_faults(seed=7, routes={JOB_ROUTE: {"error_rate": 0.5, "status": 503}})
    first = statuses()
    assert set(first) == {200, 503} and 4 <= first.count(503) <= 20
    assert api.get("/api/v1/agent/alive").status_code == 200  # other routes untouched
    failed = api.get(f"{JOBS}/{job_id}", headers={"X-Request-ID": "r-1"})
    while failed.status_code != 503:
        failed = api.get(f"{JOBS}/{job_id}", headers={"X-Request-ID": "r-1"})
    assert failed.json()["Code"] == "ServiceUnavailable" and failed.json()["RequestID"] == "r-1"
    faults.set_faults(seed=7, routes={JOB_ROUTE: {"error_rate": 0.5, "status": 503}})
    assert statuses() == first  # same seed, same faults


def test_every_nth_and_times(api, faults):
    faults.set_faults(routes={"GET /api/v1/agent/alive": {"every": 3, "status": 502, "times": 2}})
    codes = [api.get("/api/v1/agent/alive").status_code for _ in range(9)]
    assert codes == [200, 200, 502, 200, 200, 502, 200, 200, 200]


def test_latency_is_added(api, faults):
    faults.set_faults(routes={"GET /api/v1/agent/alive": {"latency": 1.0}})
    started = time.monotonic()
    assert api.get("/api/v1/agent/alive").status_code == 200
    delayed = time.monotonic() - started
    assert delayed >= 1.0
    started = time.monotonic()
    api.get("/api/v1/agent/version")
    # Relative to the delayed call, not an absolute bound: a loaded machine slows both alike
    # (lane airflow-3.0 beside another lane took 0.82 s for the plain call).
    assert time.monotonic() - started < delayed - 0.5


def test_dropped_connection_without_response(api, faults):
    faults.set_faults(routes={"GET /api/v1/agent/alive": {"drop_rate": 1.0, "times": 1}})
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        api.get("/api/v1/agent/alive")
    assert api.get("/api/v1/agent/alive").status_code == 200


def test_drop_after_handling_creates_the_job_once(api, faults):
    name = unique("dropped-submit")
    faults.set_faults(
        routes={
            "PUT /api/v1/orchestrator/jobs": {"every": 1, "action": "drop", "drop_after": True, "times": 1}
        }
    )
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        api.put(JOBS, json={"Job": noop_job(name)})
    assert [j["Name"] for j in faults.jobs()].count(name) == 1
    again = api.put(JOBS, json={"Job": noop_job(name)})
    assert again.status_code == 500 and "no changes detected" in again.json()["Message"]


@pytest.mark.docker
def test_a_log_stream_dropped_after_its_first_frame(api, faults):
    """``drop_after`` on the logs route: the upgrade and one frame go through, then the connection
    is cut without a close frame, as a log stream that breaks while the container runs."""
    import json

    from websockets.exceptions import ConnectionClosedError
    from websockets.sync.client import connect

    job_id = submit(api, busybox_job("echo one; echo two; sleep 1; echo three"))["JobID"]
    wait_for(api, job_id)
    faults.set_faults(
        routes={"GET /api/v1/orchestrator/jobs/{id}/logs": {"every": 1, "action": "drop", "drop_after": True}}
    )
    url = faults.api_url.replace("http://", "ws://") + f"{JOBS}/{job_id}/logs?follow=true"
    frames = []
    with pytest.raises(ConnectionClosedError), connect(url, open_timeout=10) as ws:
        for message in ws:
            frames.append(json.loads(message))
    assert len(frames) == 1 and frames[0]["value"]["Line"]
    assert ws.close_code is None or ws.close_code == 1006  # no close frame was sent


MIXED = {"error_rate": 0.05, "drop_rate": 0.05, "drop_after_rate": 0.05, "stall_rate": 0.05, "stall": 1.0}


def _mixed_calls(api: httpx.Client, job_id: str, calls: int) -> Counter:
    """``calls`` requests over three routes, each classified by what the client saw."""
    seen: Counter = Counter()
    paths = ("/api/v1/agent/alive", f"{JOBS}/{job_id}", JOBS)
    for i in range(calls):
        started = time.monotonic()
        try:
            status = api.get(paths[i % len(paths)]).status_code
        except (httpx.RemoteProtocolError, httpx.ReadError):
            seen["dropped"] += 1
            continue
        if status == 503:
            seen["error"] += 1
        elif time.monotonic() - started >= MIXED["stall"]:
            seen["stall"] += 1
        else:
            seen["ok" if status == 200 else status] += 1
    return seen


def test_a_mixed_rule_faults_a_fifth_of_all_calls_with_every_kind(api, faults):
    job_id = submit(api, noop_job())["JobID"]
    faults.set_faults(seed=12, routes={"*": MIXED})
    seen = _mixed_calls(api, job_id, 200)
    rule = api.get("/devstack/v1/faults").json()["routes"]["*"]
    kinds = rule["kinds"]
    assert rule["seen"] == 200
    assert seen["error"] == kinds["error"]
    assert seen["dropped"] == kinds["drop"] + kinds["drop_after"]
    # A loaded machine can make an ordinary call slow too: every stalled call is slow, and the
    # slow and ordinary calls together are exactly the ones not failed.
    assert seen["stall"] >= kinds["stall"]
    assert seen["ok"] + seen["stall"] == 200 - rule["injected"] + kinds["stall"]
    assert 25 <= rule["injected"] <= 55, rule  # 20% of 200, about 2.5 standard deviations either way
    assert all(kinds[k] >= 3 for k in ("error", "drop", "drop_after", "stall")), kinds
    faults.set_faults(seed=12, routes={"*": MIXED})
    again = _mixed_calls(api, job_id, 200)  # same seed, same faults
    assert (again["error"], again["dropped"]) == (seen["error"], seen["dropped"])
    assert api.get("/devstack/v1/faults").json()["routes"]["*"]["kinds"] == kinds


@pytest.mark.parametrize(("kind", "created"), [("drop_rate", 0), ("drop_after_rate", 1)])
def test_a_drop_before_handling_loses_the_submit_and_one_after_keeps_it(api, faults, kind, created):
    name = unique(f"mixed-{kind}")
    faults.set_faults(routes={"PUT /api/v1/orchestrator/jobs": {kind: 1.0, "times": 1}})
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        api.put(JOBS, json={"Job": noop_job(name)})
    assert [j["Name"] for j in faults.jobs()].count(name) == created


def test_bad_fault_config_is_rejected(api, devstack):
    resp = api.put("/devstack/v1/faults", json={"routes": {"GET /nowhere": {"error_rate": 1}}})
    assert resp.status_code == 400 and "unknown route" in resp.json()["Message"]
    too_much = {"routes": {"*": {"error_rate": 0.6, "stall_rate": 0.6}}}
    resp = api.put("/devstack/v1/faults", json=too_much)
    assert resp.status_code == 400 and "sum <= 1" in resp.json()["Message"]


def test_restart_keeps_jobs_and_fails_lost_executions(api, devstack):
    done_id = wait_for(api, submit(api, noop_job(unique("before-restart")))["JobID"])["Job"]["ID"]
    running_id = submit(api, busybox_job("sleep 30"))["JobID"]
    lost = wait_execution_state(api, running_id, 6)
    devstack.restart()
    assert get_job(api, done_id)["Job"]["State"]["StateType"] == "Completed"
    executions = {e["ID"]: e for e in get_job(api, running_id)["Executions"]["Items"]}
    assert executions[lost["ID"]]["ComputeState"]["StateType"] == 10
    assert "execution lost" in executions[lost["ID"]]["ComputeState"]["Message"]
    rerun = wait_execution_state(api, running_id, 6)  # re-scheduled, as after a lost compute node
    assert rerun["ID"] != lost["ID"] and rerun["PreviousExecution"] == lost["ID"]
    assert api.delete(f"{JOBS}/{running_id}").status_code == 200
    assert wait_for(api, running_id)["Job"]["State"]["StateType"] == "Stopped"
