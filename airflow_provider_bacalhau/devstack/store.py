"""The devstack's job store: jobs, spec versions, executions, history; one lock; a JSON file.

Every mutation marks the store dirty; a background flusher writes ``<data_dir>/store.json``
atomically a fraction of a second later (and :meth:`Store.flush` writes at once), so a restarted
server reloads every job.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from airflow_provider_bacalhau.devstack.compute_common import ComputeError
from airflow_provider_bacalhau.devstack.compute_docker import parse_cpu, parse_memory

log = logging.getLogger(__name__)

TERMINAL_JOB_STATES = ("Completed", "Failed", "Stopped")
# Execution compute states (v1.6+ numbering).
EXEC_NEW, EXEC_BID_ACCEPTED, EXEC_RUNNING, EXEC_PUBLISHING = 1, 5, 6, 7
EXEC_COMPLETED, EXEC_FAILED, EXEC_CANCELLED = 9, 10, 11
TERMINAL_EXEC_STATES = (4, 8, EXEC_COMPLETED, EXEC_FAILED, EXEC_CANCELLED)
DESIRED_PENDING, DESIRED_RUNNING, DESIRED_STOPPED = 0, 1, 2


class ApiError(Exception):
    """An error answered in Bacalhau's APIError shape."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str = "",
        component: str = "",
        hint: str = "",
        details: dict | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code = (
            status,
            message,
            code or ("InternalError" if status >= 500 else ""),
        )
        self.component, self.hint, self.details = component, hint, details or {}


def not_found(what: str) -> ApiError:
    return ApiError(404, f"job not found: {what}", "NotFound", "JobStore")


def now_ns() -> int:
    return time.time_ns()


def rfc3339(ns: int) -> str:
    dt = datetime.fromtimestamp(ns / 1e9, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%f").rstrip("0").rstrip(".") + "Z"


def new_job_id() -> str:
    return f"j-{uuid.uuid4()}"


def new_execution_id() -> str:
    return f"e-{uuid.uuid4()}"


def allocated_resources(config: dict) -> dict:
    """``models.Resources`` from a task's resource strings, as ``ResourcesConfig.ToResources`` does
    (pkg/models/resource.go): CPU in cores (a number), Memory and Disk in bytes, GPU a count; each
    key omitted when zero (``omitempty``). The task keeps its strings; only the execution's
    ``AllocatedResources`` carries these numbers."""
    parsers = {"CPU": parse_cpu, "Memory": parse_memory, "Disk": parse_memory, "GPU": int}
    resources: dict[str, Any] = {}
    for key, parse in parsers.items():
        if not config.get(key):
            continue
        try:
            value = parse(str(config[key]))
        except (ComputeError, ValueError):  # refused at submit already; never break the store
            continue
        if value:  # Go writes a float64 of 2 as 2, not 2.0
            resources[key] = int(value) if float(value).is_integer() else value
    return resources


class Store:
    """Jobs, versions, executions and history behind one re-entrant lock.

    :param data_dir: directory of ``store.json``; None keeps everything in memory.
    """

    def __init__(self, data_dir: Path | None = None) -> None:
        self.lock = threading.RLock()
        self.path = Path(data_dir) / "store.json" if data_dir else None
        self.jobs: dict[str, dict] = {}
        self.versions: dict[str, list[dict]] = {}
        self.executions: dict[str, dict] = {}
        self.history: dict[str, list[dict]] = {}
        self.seq = 0
        # Indexes, as Bolt keeps them (names, executions by job): lookups stay O(1) at 10,000 jobs.
        self._by_name: dict[tuple[str, str], str] = {}
        self._executions_of: dict[str, list[str]] = {}
        self._dirty = threading.Event()
        self._write_lock = threading.Lock()  # one writer of store.tmp at a time (flusher vs. restart)
        self._closed = threading.Event()
        if self.path and self.path.exists():
            self._load()
        self._flusher = threading.Thread(target=self._flush_loop, name="store-flusher", daemon=True)
        self._flusher.start()

    # persistence -------------------------------------------------------------------------
    def _load(self) -> None:
        data = json.loads(self.path.read_text())
        self.jobs, self.versions = data["jobs"], data["versions"]
        self.executions, self.history, self.seq = data["executions"], data["history"], data["seq"]
        self._reindex()
        log.info("loaded %d jobs from %s", len(self.jobs), self.path)

    def _reindex(self) -> None:
        self._by_name = {(job["Namespace"], job["Name"]): job_id for job_id, job in self.jobs.items()}
        self._executions_of = {}
        for execution_id, execution in self.executions.items():
            self._executions_of.setdefault(execution["JobID"], []).append(execution_id)

    def mark_dirty(self) -> None:
        self._dirty.set()

    def flush(self) -> None:
        if self.path is None:
            return
        with self._write_lock:
            with self.lock:
                self._dirty.clear()
                text = json.dumps(
                    {
                        "jobs": self.jobs,
                        "versions": self.versions,
                        "executions": self.executions,
                        "history": self.history,
                        "seq": self.seq,
                    }
                )
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(text)
            os.replace(tmp, self.path)

    def _flush_loop(self) -> None:
        while not self._closed.is_set():
            if self._dirty.wait(0.5):
                time.sleep(0.25)  # batch bursts of changes into one write
                try:
                    self.flush()
                except OSError:
                    log.exception("could not write the store")

    def close(self) -> None:
        self._closed.set()
        self.flush()

    # lookups -----------------------------------------------------------------------------
    def resolve(self, id_or_name: str, namespace: str = "default") -> str:
        """Name (in namespace) first, then full ID, then a unique ID prefix (GetJobByIDOrName)."""
        with self.lock:
            by_name = self._by_name.get((namespace or "default", id_or_name))
            if by_name is not None:
                return by_name
            if id_or_name in self.jobs:
                return id_or_name
            matches = [jid for jid in self.jobs if jid.startswith(id_or_name)] if len(id_or_name) >= 3 else []
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise ApiError(
                    500, f"multiple jobs found for id {id_or_name}", "MultipleJobsFound", "JobStore"
                )
            raise not_found(id_or_name)

    def find_by_name(self, name: str, namespace: str) -> dict | None:
        with self.lock:
            job_id = self._by_name.get((namespace, name))
            return self.jobs[job_id] if job_id is not None else None

    def job(self, job_id: str) -> dict:
        return self.jobs[job_id]

    def job_version(self, job_id: str, version: int = 0) -> dict:
        """A copy of the job at ``version`` (0 = latest) with the current state and times."""
        with self.lock:
            return copy.deepcopy(self.job_view(job_id, version))

    def job_view(self, job_id: str, version: int = 0) -> dict:
        """The stored job at ``version`` itself: only to encode while holding :attr:`lock`."""
        with self.lock:
            current = self.jobs[job_id]
            if not version or version == current["Version"]:
                return current
            versions = self.versions[job_id]
            if version < 1 or version > len(versions):
                raise ApiError(
                    404, f"job version {version} not found for job {job_id}", "NotFound", "JobStore"
                )
            return versions[version - 1]

    def executions_of(self, job_id: str, version: int | None = None) -> list[dict]:
        with self.lock:
            found = (self.executions[e] for e in self._executions_of.get(job_id, ()))
            return [e for e in found if version is None or e["JobVersion"] == version]

    # mutations ---------------------------------------------------------------------------
    def create_job(self, job: dict) -> dict:
        with self.lock:
            ts = now_ns()
            job.update(
                State={"StateType": "Pending", "Message": ""},
                Version=1,
                Revision=1,
                CreateTime=ts,
                ModifyTime=ts,
            )
            self.jobs[job["ID"]] = job
            self._by_name[(job["Namespace"], job["Name"])] = job["ID"]
            self.versions[job["ID"]] = [copy.deepcopy(job)]
            self.history[job["ID"]] = []
            self.add_event(job["ID"], "Submission", "Job submitted")
            self.mark_dirty()
            return job

    def update_job(self, job_id: str, spec: dict) -> dict:
        """A new version of an existing job: same ID, Version+1, state back to Pending."""
        with self.lock:
            old = self.jobs[job_id]
            ts = now_ns()
            spec.update(
                ID=job_id,
                Name=old["Name"],
                Namespace=old["Namespace"],
                Version=old["Version"] + 1,
                Revision=old["Revision"] + 1,
                CreateTime=old["CreateTime"],
                ModifyTime=ts,
                State={"StateType": "Pending", "Message": ""},
            )
            self.jobs[job_id] = spec
            self.versions[job_id].append(copy.deepcopy(spec))
            self.add_event(job_id, "Submission", "Job updated")
            self.mark_dirty()
            return spec

    def set_job_state(self, job_id: str, state: str, message: str = "", details: dict | None = None) -> bool:
        """Move a job to ``state``; refused (False) out of a terminal state, as the real store does."""
        with self.lock:
            job = self.jobs[job_id]
            current = job["State"]["StateType"]
            if current in TERMINAL_JOB_STATES:
                return False
            if current == state and job["State"].get("Message", "") == message:
                return True
            job["State"] = {"StateType": state, "Message": message}
            if details:
                job["State"]["Details"] = details
            job["Revision"] += 1
            job["ModifyTime"] = now_ns()
            self.versions[job_id][job["Version"] - 1]["State"] = job["State"]
            event_details = {"NewState": state, **({"IsError": "true"} if state == "Failed" else {})}
            self.add_event(
                job_id,
                "State Update",
                f"Job state updated to {state}" + (f": {message}" if message else ""),
                details=event_details,
            )
            self.mark_dirty()
            return True

    def add_event(
        self,
        job_id: str,
        topic: str,
        message: str,
        execution_id: str = "",
        details: dict | None = None,
        version: int | None = None,
    ) -> None:
        with self.lock:
            job = self.jobs.get(job_id)
            if job is None:
                return
            self.seq += 1
            ts = now_ns()
            event: dict[str, Any] = {"Message": message, "Topic": topic, "Timestamp": rfc3339(ts)}
            if details:
                event["Details"] = {k: str(v) for k, v in details.items()}
            record: dict[str, Any] = {
                "SeqNum": self.seq,
                "Type": "ExecutionLevel" if execution_id else "JobLevel",
                "JobID": job_id,
                "JobVersion": version or job["Version"],
                "Event": event,
                "Time": rfc3339(ts),
            }
            if execution_id:
                record["ExecutionID"] = execution_id
            self.history[job_id].append(record)
            self.mark_dirty()

    def new_execution(
        self, job_id: str, node_id: str, eval_id: str, partition: int, previous: str = ""
    ) -> dict:
        with self.lock:
            job = self.jobs[job_id]
            ts = now_ns()
            execution = {
                "ID": new_execution_id(),
                "Namespace": job["Namespace"],
                "EvalID": eval_id,
                "Name": "",
                "NodeID": node_id,
                "JobID": job_id,
                "JobVersion": job["Version"],
                "AllocatedResources": {
                    "Tasks": {
                        task["Name"]: allocated_resources(task.get("Resources") or {})
                        for task in job["Tasks"][:1]
                    }
                },
                "DesiredState": {"StateType": DESIRED_RUNNING, "Message": "execution scheduled"},
                "ComputeState": {"StateType": EXEC_BID_ACCEPTED, "Message": "bid accepted"},
                "PublishedResult": {"Type": ""},
                "RunOutput": None,
                "PreviousExecution": previous,
                "NextExecution": "",
                "FollowupEvalID": "",
                "Revision": 1,
                "CreateTime": ts,
                "ModifyTime": ts,
            }
            if partition:
                execution["PartitionIndex"] = partition
            self.executions[execution["ID"]] = execution
            self._executions_of.setdefault(job_id, []).append(execution["ID"])
            if previous and previous in self.executions:
                self.executions[previous]["NextExecution"] = execution["ID"]
            self.add_event(
                job_id, "Scheduling", f"Requested execution on {node_id}", execution_id=execution["ID"]
            )
            self.mark_dirty()
            return execution

    def update_execution(
        self,
        execution_id: str,
        compute: int | None = None,
        message: str | None = None,
        desired: int | None = None,
        desired_message: str = "",
        **fields: Any,
    ) -> dict:
        with self.lock:
            execution = self.executions[execution_id]
            if compute is not None:
                execution["ComputeState"] = {"StateType": compute, "Message": message or ""}
            if desired is not None:
                execution["DesiredState"] = {"StateType": desired, "Message": desired_message}
            execution.update(fields)
            execution["Revision"] += 1
            execution["ModifyTime"] = now_ns()
            self.mark_dirty()
            return execution

    def delete_all(self) -> None:
        with self.lock:
            self.jobs.clear(), self.versions.clear(), self.executions.clear(), self.history.clear()
            self._reindex()
            self.mark_dirty()
