"""The devstack runs jobs like a one-node Bacalhau v1.9.3: states, retries, queueing, timeouts,
stop, results rewriting and WebSocket logs (real ComputeNode, real Docker, SeaweedFS S3)."""

from __future__ import annotations

import asyncio
import io
import json
import tarfile
import time

import httpx
import websockets
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


def test_execution_states_and_run_output(api):
    job_id = submit(api, busybox_job("echo out; echo err >&2; sleep 1; exit 3"))["JobID"]
    running = wait_execution_state(api, job_id, 6)
    assert running["DesiredState"]["StateType"] == 1
    assert get_job(api, job_id)["Job"]["State"]["StateType"] == "Running"
    body = wait_for(api, job_id)
    assert body["Job"]["State"]["StateType"] == "Completed"  # a non-zero exit code does not fail the job
    (execution,) = body["Executions"]["Items"]
    assert execution["ComputeState"]["StateType"] == 9 and execution["DesiredState"]["StateType"] == 2
    assert execution["RunOutput"] == {
        "Stdout": "out\n",
        "StdoutTruncated": False,
        "stderr": "err\n",
        "StderrTruncated": False,
        "ExitCode": 3,
        "ErrorMsg": "",
    }
    assert (
        execution["ID"].startswith("e-") and execution["Job"]["ID"] == job_id and execution["JobVersion"] == 1
    )


def test_concurrency_bound_keeps_extra_executions_bid_accepted(api, devstack):
    tag = unique("conc")
    # Long enough that two run while the third waits even when container starts are slow.
    ids = [submit(api, busybox_job("sleep 5", Meta={"t": tag}))["JobID"] for _ in range(3)]
    deadline = time.monotonic() + 30
    seen_waiting = False
    while time.monotonic() < deadline:
        states = [get_job(api, j)["Executions"]["Items"][0]["ComputeState"]["StateType"] for j in ids]
        assert states.count(6) <= 2  # the devstack fixture runs 2 executions at once
        if states.count(6) == 2 and 5 in states:
            seen_waiting = True
            break
        time.sleep(0.05)
    assert seen_waiting
    for job_id in ids:
        assert wait_for(api, job_id)["Job"]["State"]["StateType"] == "Completed"


def test_failed_execution_is_rerun_once_then_job_fails(api, devstack):
    job = busybox_job("true")
    job["Tasks"][0]["Engine"]["Params"]["Image"] = ""
    job_id = submit(api, job)["JobID"]
    body = wait_for(api, job_id)
    node_id = api.get("/api/v1/agent/node").json()["NodeID"]
    assert body["Job"]["State"]["StateType"] == "Failed"
    assert body["Job"]["State"]["Message"] == (
        "not enough nodes to run job. requested: 1, available: 1, suitable: 0.\n"
        f"• Node {node_id}: job already executed on this node more than once"
    )
    executions = sorted(body["Executions"]["Items"], key=lambda e: e["CreateTime"])
    assert [e["ComputeState"]["StateType"] for e in executions] == [10, 10]
    assert "'Image' cannot be empty" in executions[0]["ComputeState"]["Message"]
    assert executions[1]["PreviousExecution"] == executions[0]["ID"]


def test_unsupported_engine_fails_at_once_or_after_queue_timeout(api):
    job = noop_job()
    job["Tasks"][0]["Engine"] = {"Type": "vroomvroom"}
    body = wait_for(api, submit(api, job)["JobID"])
    assert body["Job"]["State"]["StateType"] == "Failed"
    assert body["Job"]["State"]["Message"].endswith(": does not support vroomvroom")
    assert body["Executions"]["Items"] == []
    job["Tasks"][0]["Timeouts"] = {"QueueTimeout": 1}
    job_id = submit(api, job)["JobID"]
    assert wait_for(api, job_id, ("Queued", "Failed"))["Job"]["State"]["StateType"] == "Queued"
    started = time.monotonic()
    assert wait_for(api, job_id)["Job"]["State"]["StateType"] == "Failed"
    assert time.monotonic() - started < 3


def test_total_timeout_fails_the_job(api):
    job_id = submit(api, busybox_job("sleep 30", Timeouts={"TotalTimeout": 1}))["JobID"]
    body = wait_for(api, job_id, timeout=15)
    assert body["Job"]["State"]["StateType"] == "Failed"
    assert body["Job"]["State"]["Message"].startswith("Job timed out. Job took longer than 1s")
    execution = wait_execution_state(api, job_id, 11)
    assert execution["DesiredState"]["StateType"] == 2


def test_stop_in_each_state(api):
    job_id = submit(api, busybox_job("sleep 30"))["JobID"]
    wait_execution_state(api, job_id, 6)
    resp = api.request("DELETE", f"{JOBS}/{job_id}", json={"reason": "enough"})
    assert resp.status_code == 200 and resp.json()["EvaluationID"]
    body = wait_for(api, job_id)
    assert body["Job"]["State"] == {"StateType": "Stopped", "Message": "enough"}
    execution = wait_execution_state(api, job_id, 11)
    assert execution["DesiredState"]["StateType"] == 2
    history = api.get(f"{JOBS}/{job_id}/history").json()["Items"]
    stop_event = next(
        h for h in history if h["Event"]["Message"] == "Job requested to stop before completion"
    )
    assert stop_event["Event"]["Details"]["Reason"] == "enough"
    assert api.delete(f"{JOBS}/{job_id}").json() == {"EvaluationID": ""}  # already stopped: no-op

    done = wait_for(api, submit(api, noop_job())["JobID"])["Job"]["ID"]
    resp = api.delete(f"{JOBS}/{done}")
    assert resp.status_code == 500 and resp.json()["Message"] == "cannot stop job in state Completed"

    bad = noop_job()
    bad["Tasks"][0]["Engine"] = {"Type": "vroomvroom"}
    failed = wait_for(api, submit(api, bad)["JobID"])["Job"]["ID"]
    resp = api.delete(f"{JOBS}/{failed}")
    assert (
        resp.status_code == 500
        and "terminal state Failed and cannot transition to Stopped" in resp.json()["Message"]
    )


def _download_tar(url: str) -> set[str]:
    data = httpx.get(url, timeout=30).content
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        return {m.name.lstrip("./") for m in archive.getmembers() if m.isfile()}


def test_results_rewriting(api, devstack):
    script = "mkdir -p /outputs && echo hi > /outputs/a.txt"
    out = [{"Name": "outputs", "Path": "/outputs"}]
    key = unique("res")
    jobs = {
        "gzip": busybox_job(
            script,
            ResultPaths=out,
            Publisher={
                "Type": "s3",
                "Params": {"Bucket": devstack.results_bucket, "Key": f"{key}/{{jobID}}/{{executionID}}"},
            },
        ),
        "plain": busybox_job(
            script,
            ResultPaths=out,
            Publisher={
                "Type": "s3",
                "Params": {
                    "Bucket": devstack.results_bucket,
                    "Key": f"{key}/plain/{{executionID}}",
                    "Encoding": "plain",
                },
            },
        ),
        "managed": busybox_job(script, ResultPaths=out, Publisher={"Type": "s3managed"}),
        "local": busybox_job(script, ResultPaths=out, Publisher={"Type": "local"}),
    }
    ids = {kind: submit(api, job)["JobID"] for kind, job in jobs.items()}
    results = {}
    for kind, job_id in ids.items():
        assert wait_for(api, job_id)["Job"]["State"]["StateType"] == "Completed", kind
        results[kind] = api.get(f"{JOBS}/{job_id}/results").json()
    gzip = results["gzip"]["Items"][0]
    assert gzip["Type"] == "s3PreSigned" and gzip["Params"]["Managed"] is False
    assert (
        gzip["Params"]["SourceSpec"]["Key"].endswith(".tar.gz")
        and "X-Amz-Signature=" in gzip["Params"]["PreSignedURL"]
    )
    assert "outputs/a.txt" in _download_tar(gzip["Params"]["PreSignedURL"])
    plain = results["plain"]["Items"][0]
    assert plain["Type"] == "s3" and plain["Params"]["Key"].endswith("/")
    managed = results["managed"]["Items"][0]
    assert managed["Type"] == "s3PreSigned" and managed["Params"]["Managed"] is True
    assert (
        managed["Params"]["SourceSpec"]["Bucket"] == ""
        and f"/{devstack.managed_bucket}/" in managed["Params"]["PreSignedURL"]
    )
    assert "outputs/a.txt" in _download_tar(managed["Params"]["PreSignedURL"])
    raw = get_job(api, ids["managed"])["Executions"]["Items"][0]["PublishedResult"]
    assert raw["Type"] == "s3managed" and raw["Params"]["JobID"] == ids["managed"]
    local = results["local"]["Items"][0]
    assert local["Type"] == "urlDownload" and "outputs/a.txt" in _download_tar(local["Params"]["URL"])
    assert all(r["NextToken"] == "" for r in results.values())

    service = noop_job(Type="service")
    resp = api.get(f"{JOBS}/{submit(api, service)['JobID']}/results")
    assert resp.status_code == 500 and resp.json()["Message"] == "Internal server error"


async def _read_frames(url: str) -> tuple[list[dict], int]:
    frames = []
    async with websockets.connect(url) as ws:
        async for message in ws:
            frames.append(json.loads(message))
        return frames, ws.close_code


def test_websocket_logs_frames(api, devstack):
    job_id = submit(api, busybox_job("echo one; sleep 0.5; echo two >&2; sleep 0.5; echo three"))["JobID"]
    wait_execution_state(api, job_id, 6)
    ws_url = devstack.api_url.replace("http://", "ws://") + f"{JOBS}/{job_id}/logs?follow=true"
    frames, code = asyncio.run(_read_frames(ws_url))
    assert code == 1000
    assert all(set(f) == {"value"} and set(f["value"]) == {"Type", "Line"} for f in frames)
    stdout = "".join(f["value"]["Line"] for f in frames if f["value"]["Type"] == 1)
    stderr = "".join(f["value"]["Line"] for f in frames if f["value"]["Type"] == 2)
    assert stdout == "one\nthree\n" and stderr.endswith("two\n")  # stderr may start with the image-alias note
    execution_id = wait_for(api, job_id)["Executions"]["Items"][0]["ID"]
    by_id = devstack.api_url.replace("http://", "ws://") + f"{JOBS}/{job_id}/logs?execution_id={execution_id}"
    replay, code = asyncio.run(_read_frames(by_id))
    assert (
        code == 1000
        and "".join(f["value"]["Line"] for f in replay if f["value"]["Type"] == 1) == "one\nthree\n"
    )

    missing = devstack.api_url.replace("http://", "ws://") + f"{JOBS}/j-nope/logs"
    frames, code = asyncio.run(_read_frames(missing))
    assert frames == [{"value": {"Type": 0, "Line": ""}, "error": "job not found: j-nope"}] and code == 1000
