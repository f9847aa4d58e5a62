"""The ``/api/v1/orchestrator`` routes of the devstack (Bacalhau v1.9.3 shapes and quirks)."""

from __future__ import annotations

import copy
import difflib
import json
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from airflow_provider_bacalhau.devstack import logs_api
from airflow_provider_bacalhau.devstack import store as st
from airflow_provider_bacalhau.devstack.decode import field, text
from airflow_provider_bacalhau.devstack.jobspec import (
    SubmitError,
    apply_defaults,
    comparable,
    force_flag,
    normalize_submission,
    validate_for_create,
)
from airflow_provider_bacalhau.devstack.query import (
    bad_request,
    decode_token,
    encode_token,
    json_answer,
    json_body,
    label_matcher,
    q_bool,
    q_int,
)
from airflow_provider_bacalhau.devstack.store import ApiError

JOBS = "/api/v1/orchestrator/jobs"
_ZERO_S3_SPEC = {
    "Bucket": "",
    "Key": "",
    "Filter": "",
    "Region": "",
    "Endpoint": "",
    "VersionID": "",
    "ChecksumSHA256": "",
    "Partition": {"Type": "", "Pattern": "", "StartIndex": 0, "EndIndex": 0, "DateFormat": ""},
}


def register(app: FastAPI, state: Any) -> None:
    store: st.Store = state.store
    scheduler = state.scheduler

    def execution_view(execution: dict) -> dict:
        """The execution with its job version, as Bacalhau answers it. It shares the stored dicts
        (no copy of a job spec per execution per read): encode it while holding the store's lock."""
        versions = store.versions.get(execution["JobID"], [])
        if 0 < execution["JobVersion"] <= len(versions):
            return {**execution, "Job": versions[execution["JobVersion"] - 1]}
        return execution

    def resolve(request: Request, id_or_name: str) -> str:
        return store.resolve(id_or_name, request.query_params.get("namespace") or "default")

    def pick_executions(request: Request, job_id: str) -> list[dict]:
        version = q_int(request, "job_version") or store.jobs[job_id]["Version"]
        executions = store.executions_of(job_id, None if q_bool(request, "all_job_versions") else version)
        order = request.query_params.get("order_by") or "created_at"
        key = "ModifyTime" if order in ("modified_at", "modify_time") else "CreateTime"
        executions.sort(key=lambda e: e[key], reverse=q_bool(request, "reverse"))
        limit = q_int(request, "limit")
        return executions[:limit] if limit > 0 else executions

    async def submit(request: Request) -> dict:
        body = await json_body(request)
        try:
            job, warnings = normalize_submission(field(body, "Job"))
        except SubmitError as exc:
            raise bad_request(exc.message) from exc
        apply_defaults(job, state.node_id)
        with store.lock:
            existing = store.find_by_name(job["Name"], job["Namespace"]) if job["Name"] else None
            try:
                validate_for_create(job)
            except SubmitError as exc:
                raise bad_request(exc.message, "JobStore", "BadRequest") from exc
            if existing is not None:
                job_id = existing["ID"]
                job.update(ID=job_id)
                if not force_flag(body) and comparable(job) == comparable(existing):
                    # bacerrors.Newf sets no code and Component "Bacalhau" (pkg/bacerrors/error.go New);
                    # no code means HTTP 500 (orchestrator/endpoint.go SubmitJob)
                    no_changes = ApiError(
                        500,
                        f"no changes detected for new job spec. Job Name: '{job['Name']}', "
                        f"Job Id: '{job_id}'",
                        "",
                        "Bacalhau",
                        hint="Use the --force flag to override this warning",
                    )
                    no_changes.code = ""  # ApiError would fill in InternalError for a 500
                    raise no_changes
                # CompareWith counts a new Type as a change, but updateJob (jobstore/boltdb/store.go) copies
                # only Priority, Count, Constraints, Meta, Labels and Tasks: the stored Type stays, and
                # Normalize then applies the old type's Count rule.
                job["Type"] = existing["Type"]
                if job["Type"] in ("daemon", "ops"):
                    job["Count"] = 0
                scheduler.stop_for_update(job_id)
                store.update_job(job_id, job)
            else:
                job["ID"] = job["ID"] or st.new_job_id()
                if job["ID"] in store.jobs:
                    raise ApiError(409, f"job {job['ID']} already exists", "ResourceInUse", "JobStore")
                job["Name"] = job["Name"] or job["ID"]
                store.create_job(job)
                job_id = job["ID"]
        return {"JobID": job_id, "EvaluationID": scheduler.enqueue(job_id), "Warnings": warnings or None}

    app.add_api_route(JOBS, submit, methods=["PUT", "POST"])

    @app.get(JOBS)
    def list_jobs(request: Request) -> Response:
        """listJobs (orchestrator/job.go) over BoltJobStore.getJobs (jobstore/boltdb/store.go)."""
        namespace = request.query_params.get("namespace", "")
        matcher = label_matcher(request.query_params.getlist("labels"))
        order, reverse, limit, offset = (
            request.query_params.get("order_by", ""),
            q_bool(request, "reverse"),
            q_int(request, "limit"),
            0,
        )
        token = request.query_params.get("next_token")
        if token:  # the token's order and limit replace the query's, for a stable order across pages
            data = decode_token(token)
            order, reverse, limit, offset = (
                data.get("order_by", order),
                bool(data.get("reverse")),
                int(data.get("limit", 0)),
                int(data["offset"]),
            )
        if order not in ("created_at", "modified_at", ""):
            # getJobs knows only these two (not modify_time, not id); its plain fmt.Errorf reaches
            # CustomHTTPErrorHandler's default case (middleware/error_handler.go): a bare 500.
            raise ApiError(500, "Internal server error", "InternalError", "Unknown")
        key = "ModifyTime" if order == "modified_at" else "CreateTime"
        with store.lock:  # sort and filter references, encode only the page: 10,000 jobs stay cheap
            jobs = [
                j
                for j in store.jobs.values()
                if namespace in ("", "*", j["Namespace"]) and matcher(j.get("Labels") or {})
            ]
            jobs.sort(key=lambda j: j[key], reverse=reverse)
            more = limit > 0 and offset + limit < len(jobs)
            next_token = (
                encode_token(
                    {"offset": offset + limit, "limit": limit, "order_by": order, "reverse": reverse}
                )
                if more
                else ""
            )
            return json_answer(
                {
                    "Items": jobs[offset : offset + limit] if limit > 0 else jobs[offset:],
                    "NextToken": next_token,
                }
            )

    @app.put(f"{JOBS}/diff")
    async def diff(request: Request) -> dict:
        body = await json_body(request)
        raw = field(body, "Job")
        if not text(raw, "Name"):
            raise bad_request("invalid job spec: name is missing", "Orchestrator", "BadRequest")
        try:
            job, warnings = normalize_submission(raw)
        except SubmitError as exc:
            raise bad_request(exc.message) from exc
        apply_defaults(job, state.node_id)
        existing = store.find_by_name(job["Name"], job["Namespace"])
        if existing is None:
            raise st.not_found(job["Name"])
        old = json.dumps(comparable(existing), indent=2, sort_keys=True).splitlines()
        new = json.dumps(comparable(job), indent=2, sort_keys=True).splitlines()
        return {
            "Diff": "\n".join(difflib.unified_diff(old, new, "current", "new", lineterm="")),
            "Warnings": warnings,
        }

    @app.get(JOBS + "/{id_or_name}")
    def get_job(request: Request, id_or_name: str) -> Response:
        with store.lock:
            job_id = resolve(request, id_or_name)
            out: dict[str, Any] = {"Job": store.job_view(job_id, q_int(request, "job_version"))}
            include = {p.strip() for p in request.query_params.get("include", "").split(",")}
            if "history" in include:
                version = store.jobs[job_id]["Version"]
                out["History"] = {
                    "Items": [h for h in store.history[job_id] if h["JobVersion"] == version],
                    "NextToken": "",
                }
            if "executions" in include:
                out["Executions"] = {
                    "Items": [execution_view(e) for e in pick_executions(request, job_id)],
                    "NextToken": "",
                }
            return json_answer(out)  # under the lock: the answer shares the stored dicts

    @app.delete(JOBS + "/{id_or_name}")
    async def stop_job(request: Request, id_or_name: str) -> dict:
        raw = await request.body()
        try:
            reason = text(json.loads(raw), "reason") if raw.strip() else ""
        except ValueError as exc:
            raise bad_request(f"code=400, message=Syntax error: {exc}") from exc
        with store.lock:
            job_id = resolve(request, id_or_name)
            return {"EvaluationID": scheduler.stop_job(job_id, reason)}

    @app.get(JOBS + "/{id_or_name}/executions")
    def list_executions(request: Request, id_or_name: str) -> Response:
        with store.lock:
            job_id = resolve(request, id_or_name)
            items = [execution_view(e) for e in pick_executions(request, job_id)]
            return json_answer({"Items": items, "NextToken": ""})

    @app.get(JOBS + "/{id_or_name}/versions")
    def list_versions(request: Request, id_or_name: str) -> Response:
        with store.lock:
            job_id = resolve(request, id_or_name)
            return json_answer({"Items": store.versions[job_id], "NextToken": ""})

    @app.get(JOBS + "/{id_or_name}/history")
    def history(request: Request, id_or_name: str) -> Response:
        event_type = request.query_params.get("event_type") or "all"
        if event_type not in ("all", "job", "execution"):
            raise bad_request(f"invalid event type: {event_type}", "JobStore", "BadRequest")
        token = request.query_params.get("next_token")
        cursor = decode_token(token) if token else {}
        limit = int(cursor.get("limit") or q_int(request, "limit") or 100)
        offset = int(cursor.get("offset", 0))
        execution_id = request.query_params.get("execution_id", "")
        since = q_int(request, "since")
        with store.lock:
            job_id = resolve(request, id_or_name)
            job = store.jobs[job_id]
            version = q_int(request, "job_version") or job["Version"]
            events = [
                h
                for h in store.history[job_id]
                if (q_bool(request, "all_job_versions") or h["JobVersion"] == version)
                and (
                    event_type == "all"
                    or h["Type"] == ("JobLevel" if event_type == "job" else "ExecutionLevel")
                )
                and (not execution_id or h.get("ExecutionID", "").startswith(execution_id))
            ]
            if since:
                stamp = st.rfc3339(since * 1_000_000_000)
                events = [h for h in events if h["Time"] >= stamp]
            page = events[offset : offset + limit]
            terminal = job["State"]["StateType"] in st.TERMINAL_JOB_STATES
            if execution_id:
                matches = [e for e in store.executions_of(job_id) if e["ID"].startswith(execution_id)]
                terminal = terminal or (
                    bool(matches)
                    and all(e["ComputeState"]["StateType"] in st.TERMINAL_EXEC_STATES for e in matches)
                )
            more = offset + len(page) < len(events)
            next_token = (
                encode_token({"offset": offset + len(page), "limit": limit}) if more or not terminal else ""
            )
            return json_answer({"Items": page, "NextToken": next_token})

    @app.get(JOBS + "/{id_or_name}/results")
    def results(request: Request, id_or_name: str) -> dict:
        with store.lock:
            job_id = resolve(request, id_or_name)
            job = store.jobs[job_id]
            if job["Type"] not in ("batch", "ops"):
                raise ApiError(500, "Internal server error", "InternalError", "Unknown")
            done = [
                e
                for e in store.executions_of(job_id, job["Version"])
                if e["ComputeState"]["StateType"] == st.EXEC_COMPLETED
            ]
            done.sort(key=lambda e: e["CreateTime"])
            raw = [
                (e["ID"], copy.deepcopy(e["PublishedResult"]))
                for e in done
                if (e.get("PublishedResult") or {}).get("Type")
            ]
        return {"Items": [transform_result(state, job_id, eid, r) for eid, r in raw], "NextToken": ""}

    @app.put(JOBS + "/{id_or_name}/rerun")
    async def rerun(request: Request, id_or_name: str) -> dict:
        body = await json_body(request, required=False)
        with store.lock:
            try:
                job_id = resolve(request, id_or_name)
            except ApiError as exc:
                raise bad_request(exc.message, "JobStore", "BadRequest") from exc
            current = store.jobs[job_id]
            if current["State"]["StateType"] in ("Pending", "Queued", "Undefined"):
                raise ApiError(
                    500,
                    f"cannot rerun job in state {current['State']['StateType']}",
                    "InternalError",
                    "Orchestrator",
                )
            spec = store.job_version(job_id, int(field(body, "JobVersion", 0) or 0))
            scheduler.stop_for_update(job_id)
            updated = store.update_job(job_id, spec)
        return {
            "JobID": job_id,
            "JobVersion": updated["Version"],
            "EvaluationID": scheduler.enqueue(job_id),
            "Warnings": None,
        }

    connected_since = _go_time(time.time())

    @app.get("/api/v1/orchestrator/nodes")
    def nodes(request: Request) -> dict:
        # apimodels.ListNodesResponse of models.NodeState (pkg/models/node_state.go); states marshal
        # as upper-case strings (node_approval.go, node_connection.go), the swagger's ints are wrong.
        node = {
            "Info": state.node_info(),
            "Membership": "APPROVED",
            "Connection": "CONNECTED",
            "ConnectionState": {
                "Status": "CONNECTED",
                "LastHeartbeat": _go_time(time.time()),
                "ConnectedSince": connected_since,
                "DisconnectedSince": _GO_ZERO_TIME,
            },
        }
        # listNodes (pkg/publicapi/endpoint/orchestrator/node.go) binds filter-approval/filter-status.
        approval = request.query_params.get("filter-approval", "").upper()
        status = request.query_params.get("filter-status", "").upper()
        keep = approval in ("", "APPROVED") and status in ("", "CONNECTED")
        return {"NextToken": "", "Nodes": [node] if keep else []}

    logs_api.register(app, state)


_GO_ZERO_TIME = "0001-01-01T00:00:00Z"


def _go_time(seconds: float) -> str:
    """A time as Go's ``time.Time`` marshals it (RFC 3339 with nanoseconds, UTC)."""
    import datetime as dt

    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat().replace("+00:00", "Z")


def transform_result(state: Any, job_id: str, execution_id: str, result: dict) -> dict:
    """The /results rewriting: s3 *.tar.gz and s3managed become s3PreSigned (reference §2.5)."""
    kind, params = result.get("Type", ""), result.get("Params") or {}
    if kind == "s3" and str(params.get("Key", "")).endswith(".tar.gz"):
        url = state.presign_get(
            params.get("Bucket", ""), params["Key"], params.get("Endpoint", ""), params.get("Region", "")
        )
        return {
            "Type": "s3PreSigned",
            "Params": {"SourceSpec": params, "PreSignedURL": url, "Managed": False},
        }
    if kind == "s3managed":
        url = state.presign_get(
            state.settings.managed_bucket,
            state.managed_key(params.get("JobID", job_id), params.get("ExecutionID", execution_id)),
            expires=state.settings.managed_url_expiration,
        )
        return {
            "Type": "s3PreSigned",
            "Params": {"SourceSpec": copy.deepcopy(_ZERO_S3_SPEC), "PreSignedURL": url, "Managed": True},
        }
    return result
