"""Small helpers shared by the tests that run jobs on the devstack (not a test module)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx

JOBS = "/api/v1/orchestrator/jobs"


def busybox_job(
    script: str,
    name: str | None = None,
    *,
    publisher: dict | None = None,
    result_paths: dict | None = None,
    **task_extra: Any,
) -> dict:
    """A one-task Docker job running ``sh -c script`` on busybox (the devstack's local image).

    A ``publisher`` comes with ``result_paths`` (default ``{"outputs": "/outputs"}``);
    ``task_extra`` keys are set on the task as given.
    """
    task: dict[str, Any] = {
        "Name": "main",
        "Engine": {
            "Type": "docker",
            "Params": {"Image": "busybox:1.36", "Entrypoint": ["sh", "-c"], "Parameters": [script]},
        },
    }
    if publisher is not None:
        task["Publisher"] = publisher
        task["ResultPaths"] = [
            {"Name": k, "Path": v} for k, v in (result_paths or {"outputs": "/outputs"}).items()
        ]
    task.update(task_extra)
    job: dict[str, Any] = {"Type": "batch", "Count": 1, "Tasks": [task]}
    if name:
        job["Name"] = name
    return job


def noop_job(name: str | None = None, **job_extra: Any) -> dict:
    job = {"Type": "batch", "Tasks": [{"Name": "main", "Engine": {"Type": "noop"}}], **job_extra}
    if name:
        job["Name"] = name
    return job


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def submit(api: httpx.Client, job: dict, force: bool = False) -> dict:
    resp = api.put(JOBS, json={"Job": job, "Force": force})
    assert resp.status_code == 200, resp.text
    return resp.json()


def get_job(api: httpx.Client, job_id: str) -> dict:
    resp = api.get(f"{JOBS}/{job_id}", params={"include": "executions"})
    assert resp.status_code == 200, resp.text
    return resp.json()


def wait_for(
    api: httpx.Client,
    job_id: str,
    states: tuple[str, ...] = ("Completed", "Failed", "Stopped"),
    timeout: float = 30,
) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = get_job(api, job_id)
        if body["Job"]["State"]["StateType"] in states:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {body['Job']['State']} after {timeout}s")
        time.sleep(0.1)


def wait_execution_state(api: httpx.Client, job_id: str, compute_state: int, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        items = get_job(api, job_id)["Executions"]["Items"]
        if any(e["ComputeState"]["StateType"] == compute_state for e in items):
            return next(e for e in items if e["ComputeState"]["StateType"] == compute_state)
        if time.monotonic() > deadline:
            raise AssertionError(
                f"no execution of {job_id} reached {compute_state}: {[e['ComputeState'] for e in items]}"
            )
        time.sleep(0.05)
