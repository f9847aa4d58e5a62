"""A failed, cancelled or completed execution's output, as a v1.9.3 network gives it: RunOutput
only for completed runs, the container's output on the WebSocket logs endpoint while the node
keeps its log files (real devstack, real Docker)."""

from __future__ import annotations

import json
import time

import pytest
from devstack_helpers import JOBS, busybox_job, noop_job, submit, wait_execution_state, wait_for
from websockets.sync.client import connect

pytestmark = pytest.mark.docker


@pytest.fixture
def log_settings(api):
    """Change the node's log retention / file wait for one test, and put them back after."""
    before = api.get("/devstack/v1/logs").json()

    def change(**settings: float) -> dict:
        resp = api.put("/devstack/v1/logs", json=settings)
        assert resp.status_code == 200, resp.text
        return resp.json()

    yield change
    api.put("/devstack/v1/logs", json=before)


def read_frames(devstack, job_id: str, **query: str) -> tuple[list[dict], int | None, float]:
    url = devstack.api_url.replace("http://", "ws://") + f"{JOBS}/{job_id}/logs"
    if query:
        url += "?" + "&".join(f"{k}={v}" for k, v in query.items())
    started = time.monotonic()
    frames = []
    with connect(url, open_timeout=10) as ws:
        for message in ws:
            frames.append(json.loads(message))
    return frames, ws.close_code, time.monotonic() - started


def text_of(frames: list[dict], stream: int) -> str:
    return "".join(f["value"]["Line"] for f in frames if f["value"]["Type"] == stream)


def test_failed_execution_has_no_run_output_and_its_log_stays_readable_by_id(api, devstack):
    script = "echo 'out: loading'; echo 'err: model missing' >&2; sleep 30"
    job_id = submit(api, busybox_job(script, Timeouts={"ExecutionTimeout": 1}))["JobID"]
    body = wait_for(api, job_id, timeout=40)
    assert body["Job"]["State"]["StateType"] == "Failed"
    executions = body["Executions"]["Items"]
    assert [e["ComputeState"]["StateType"] for e in executions] == [10, 10]
    for execution in executions:
        # pkg/orchestrator/message_handler.go OnComputeFailure keeps only the compute message.
        assert execution["RunOutput"] is None
        assert execution["ComputeState"]["Message"] == "Execution timed out after 1s"
        frames, code, _ = read_frames(devstack, job_id, execution_id=execution["ID"])
        assert code == 1000
        assert text_of(frames, 1) == "out: loading\n"
        assert text_of(frames, 2).endswith("err: model missing\n")  # may start with the image-alias note
    # Without execution_id only non-discarded executions are candidates: here, none.
    frames, code, _ = read_frames(devstack, job_id)
    assert code == 1000
    assert frames == [
        {
            "value": {"Type": 0, "Line": ""},
            "error": f"failed to open log stream for job {job_id}: unable to find execution  "
            f"in job {job_id} and job version 1",
        }
    ]
    frames, _, _ = read_frames(devstack, job_id, execution_id="e-nope")
    assert frames[0]["error"].endswith(f"unable to find execution e-nope in job {job_id} and job version 1")


def test_cancelled_execution_has_no_run_output(api, devstack):
    job_id = submit(api, busybox_job("echo before-stop; sleep 30"))["JobID"]
    running = wait_execution_state(api, job_id, 6)
    deadline = time.monotonic() + 10
    while "before-stop" not in text_of(read_frames(devstack, job_id, execution_id=running["ID"])[0], 1):
        assert time.monotonic() < deadline, "no output while running"
        time.sleep(0.1)
    assert api.request("DELETE", f"{JOBS}/{job_id}", json={"reason": "enough"}).status_code == 200
    execution = wait_execution_state(api, job_id, 11)
    assert execution["RunOutput"] is None
    frames, code, _ = read_frames(devstack, job_id, execution_id=execution["ID"])
    assert code == 1000 and text_of(frames, 1) == "before-stop\n"


def test_completed_run_keeps_run_output_whatever_the_exit_code(api):
    body = wait_for(api, submit(api, busybox_job("echo done; exit 4"))["JobID"])
    (execution,) = body["Executions"]["Items"]
    assert execution["ComputeState"]["StateType"] == 9
    assert execution["RunOutput"]["ExitCode"] == 4 and execution["RunOutput"]["Stdout"] == "done\n"


def test_follow_streams_live_output_while_the_container_runs(api, devstack):
    job_id = submit(api, busybox_job("echo first; sleep 3; echo second"))["JobID"]
    wait_execution_state(api, job_id, 6)
    url = devstack.api_url.replace("http://", "ws://") + f"{JOBS}/{job_id}/logs?follow=true"
    started = time.monotonic()
    lines = []
    with connect(url, open_timeout=10) as ws:
        for message in ws:
            frame = json.loads(message)
            if frame["value"]["Type"] == 1:
                lines.append((frame["value"]["Line"], time.monotonic() - started))
    assert [line for line, _ in lines] == ["first\n", "second\n"]
    assert lines[0][1] < 2.5 < lines[1][1]  # the first line came while the container still ran
    assert ws.close_code == 1000


def test_tail_sends_only_output_written_after_the_request(api, devstack):
    job_id = submit(api, busybox_job("echo early; sleep 2; echo late"))["JobID"]
    running = wait_execution_state(api, job_id, 6)
    deadline = time.monotonic() + 10
    while "early" not in text_of(read_frames(devstack, job_id, execution_id=running["ID"])[0], 1):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    frames, code, _ = read_frames(devstack, job_id, follow="true", tail="true")
    assert code == 1000 and text_of(frames, 1) == "late\n"


def test_logs_are_gone_after_the_retention_and_missing_logs_are_waited_for(api, devstack, log_settings):
    log_settings(file_wait=1, retention=3600)
    job_id = submit(api, busybox_job("echo kept"))["JobID"]
    (execution,) = wait_for(api, job_id)["Executions"]["Items"]
    assert text_of(read_frames(devstack, job_id, execution_id=execution["ID"])[0], 1) == "kept\n"
    assert api.delete(f"/devstack/v1/logs/{execution['ID']}").json() == {"Removed": True}
    frames, code, took = read_frames(devstack, job_id, execution_id=execution["ID"])
    assert frames == [{"value": {"Type": 0, "Line": ""}, "error": "timeout while waiting for execution logs"}]
    assert code == 1000 and 0.9 < took < 5

    # The retention clock: logs of an execution that ended longer ago than it are removed.
    log_settings(retention=0.5)
    job_id = submit(api, busybox_job("echo short-lived"))["JobID"]
    (execution,) = wait_for(api, job_id)["Executions"]["Items"]
    time.sleep(1.5)
    frames, _, _ = read_frames(devstack, job_id, execution_id=execution["ID"])
    assert frames[0].get("error") == "timeout while waiting for execution logs"


def test_execution_that_never_started_a_container_has_no_log(api, devstack, log_settings):
    log_settings(file_wait=0.5)
    job = busybox_job("true")
    job["Tasks"][0]["Engine"]["Params"]["Image"] = ""
    job_id = submit(api, job)["JobID"]
    execution = wait_for(api, job_id)["Executions"]["Items"][0]
    assert execution["ComputeState"]["StateType"] == 10 and execution["RunOutput"] is None
    frames, code, took = read_frames(devstack, job_id, execution_id=execution["ID"])
    assert frames == [{"value": {"Type": 0, "Line": ""}, "error": "timeout while waiting for execution logs"}]
    assert code == 1000 and took >= 0.4


def test_job_without_executions(api, devstack):
    job = noop_job()
    job["Tasks"][0]["Engine"] = {"Type": "vroomvroom"}
    body = wait_for(api, submit(api, job)["JobID"])
    job_id, name = body["Job"]["ID"], body["Job"]["Name"]
    frames, code, _ = read_frames(devstack, job_id)
    assert code == 1000
    assert frames == [
        {
            "value": {"Type": 0, "Line": ""},
            "error": f"failed to open log stream for job {job_id}: no executions found for job "
            f"{name} with ID {job_id}, and version 0",
        }
    ]


def test_a_bad_job_version_is_an_error_frame(api, devstack):
    job_id = wait_for(api, submit(api, busybox_job("echo x"))["JobID"])["Job"]["ID"]
    frames, code, _ = read_frames(devstack, job_id, job_version="two")
    assert code == 1000 and len(frames) == 1 and "binding job_version" in frames[0]["error"]
    frames, _, _ = read_frames(devstack, job_id, job_version="1")
    assert text_of(frames, 1) == "x\n"


def test_log_settings_are_checked(api):
    resp = api.put("/devstack/v1/logs", json={"retention": -1})
    assert resp.status_code == 400 and "retention" in resp.json()["Message"]
    resp = api.put("/devstack/v1/logs", json={"retain": 5})
    assert resp.status_code == 400 and "retain" in resp.json()["Message"]
