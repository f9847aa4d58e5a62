"""The devstack's logs route, ``GET /api/v1/orchestrator/jobs/{id}/logs`` (WebSocket), as v1.9.3
serves it (reference §2.11), and devstack-only knobs for the node's log files.

The orchestrator picks the execution (pkg/orchestrator/endpoint.go ``ReadLogs``), the compute
node reads that execution's log file (pkg/compute/logstream), and every message is one text frame
``{"value": {"Type": 1|2, "Line": ...}}`` or ``{"value": {"Type": 0, "Line": ""}, "error": ...}``,
followed by a normal close (pkg/publicapi/endpoint/orchestrator/job.go ``logs``).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import FastAPI, Request, WebSocket
from starlette.websockets import WebSocketDisconnect

from airflow_provider_bacalhau.devstack import store as st
from airflow_provider_bacalhau.devstack.store import ApiError

JOBS = "/api/v1/orchestrator/jobs"
_DISCARDED = (st.EXEC_FAILED, st.EXEC_CANCELLED, 4, 8)  # models.Execution IsDiscarded (4, 8: rejected)


def error_frame(message: str) -> str:
    # concurrency.AsyncResult's JSON: a zero ExecutionLog value beside the error text.
    return json.dumps({"value": {"Type": 0, "Line": ""}, "error": message})


def pick_execution(store: st.Store, job_id: str, execution_id: str, job_version: int) -> str:
    """The execution whose logs are read, as ``ReadLogs`` picks it.

    Every version is searched unless ``job_version`` is given (GetExecutions with AllJobVersions);
    an explicit ID must match exactly; without one, the most recently modified execution that is
    not discarded, so a job whose executions all failed answers with an error.
    """
    job = store.jobs[job_id]
    executions = store.executions_of(job_id, job_version or None)
    prefix = f"failed to open log stream for job {job_id}: "  # logsWS wraps ReadLogs errors so
    if not executions:
        raise ApiError(
            500,
            f"{prefix}no executions found for job {job['Name']} with ID {job_id}, and version {job_version}",
            "",
            "Orchestrator",
        )
    if execution_id:
        chosen = next((e for e in executions if e["ID"] == execution_id), None)
    else:
        usable = [e for e in executions if e["ComputeState"]["StateType"] not in _DISCARDED]
        chosen = max(usable, key=lambda e: e["ModifyTime"]) if usable else None
    if chosen is None:
        raise ApiError(
            500,
            f"{prefix}unable to find execution {execution_id} in job {job_id} and job "
            f"version {job['Version']}",
            "",
            "Orchestrator",
        )
    return chosen["ID"]


async def stream_logs(websocket: WebSocket, state: Any, id_or_name: str) -> None:
    """One log read, as the compute node's log stream serves it.

    ``follow=false`` sends what the log holds now; ``follow=true`` keeps sending, live, until the
    execution's output ends; ``tail=true`` skips what was written before the request
    (execution_log_reader.go ``NewReaderForRequest``, std_multiplexer.go ``TimestampedStdCopy``).
    A log that does not exist (the container never started, or the node removed it
    ``log_retention`` seconds after the end) is waited for ``log_file_wait`` seconds and then
    answered with an error frame, as ``logFileWait`` does.
    """
    params = websocket.query_params
    store: st.Store = state.store
    scheduler = state.scheduler
    raw_version = params.get("job_version") or "0"
    if not raw_version.isdigit():  # echo's binder error, sent as the stream's error (logsWS)
        await websocket.send_text(
            error_frame(
                f'code=400, message=strconv.ParseUint: parsing "{raw_version}": '
                "invalid syntax, internal=binding job_version"
            )
        )
        return
    try:
        with store.lock:
            job_id = store.resolve(id_or_name, params.get("namespace") or "default")
            execution_id = pick_execution(store, job_id, params.get("execution_id", ""), int(raw_version))
    except ApiError as exc:
        await websocket.send_text(error_frame(exc.message))
        return
    follow = params.get("follow", "").lower() == "true"
    present = scheduler.logs.get(execution_id)
    index = len(present.chunks) if present is not None and params.get("tail", "").lower() == "true" else 0
    loop = asyncio.get_running_loop()
    give_up = loop.time() + scheduler.log_file_wait
    while True:
        buffer = scheduler.logs.get(execution_id)
        if buffer is not None and buffer.started:
            break
        if loop.time() >= give_up:
            await websocket.send_text(error_frame("timeout while waiting for execution logs"))
            return
        await asyncio.sleep(0.1)
    while True:
        done = buffer.done
        while index < len(buffer.chunks):
            stream, line = buffer.chunks[index]
            index += 1
            await websocket.send_text(json.dumps({"value": {"Type": stream, "Line": line}}))
        if done or not follow:
            return
        await asyncio.sleep(0.1)


def register(app: FastAPI, state: Any) -> None:
    scheduler = state.scheduler

    @app.websocket(JOBS + "/{id_or_name}/logs")
    async def logs(websocket: WebSocket, id_or_name: str) -> None:
        await websocket.accept()
        try:
            await stream_logs(websocket, state, id_or_name)
        except WebSocketDisconnect:
            return
        await websocket.close(1000)  # job.go logs: a normal close after the last frame

    # Devstack-only (no Bacalhau route): the node's log retention and file wait, in seconds, and
    # removing one execution's logs now, as the node's cleanup does an hour after the end.
    @app.get("/devstack/v1/logs")
    def get_log_settings() -> dict:
        return {"retention": scheduler.log_retention, "file_wait": scheduler.log_file_wait}

    @app.put("/devstack/v1/logs")
    async def put_log_settings(request: Request) -> dict:
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError as exc:
            raise ApiError(400, f"invalid log settings: {exc}", "BadRequest", "Devstack") from exc
        if not isinstance(body, dict):
            raise ApiError(400, "invalid log settings: expected a JSON object", "BadRequest", "Devstack")
        unknown = set(body) - {"retention", "file_wait"}
        if unknown:
            raise ApiError(
                400, f"invalid log settings: unknown keys {sorted(unknown)}", "BadRequest", "Devstack"
            )
        for key, value in body.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ApiError(400, f"{key}: expected seconds >= 0, got {value!r}", "BadRequest", "Devstack")
        for key, value in body.items():
            setattr(scheduler, "log_retention" if key == "retention" else "log_file_wait", float(value))
        return get_log_settings()

    @app.delete("/devstack/v1/logs/{execution_id}")
    def remove_logs(execution_id: str) -> dict:
        return {"Removed": scheduler.logs.pop(execution_id, None) is not None}
