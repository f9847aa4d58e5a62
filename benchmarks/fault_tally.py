"""The fault suite's tally: what a finished run left behind, and whether it met the goals.

Read from the parts themselves, never from the run's own bookkeeping: task instances and XComs
from Airflow's REST API, jobs and their versions from the devstack (by name), results from S3
(every published object fetched, its stored SHA-256 and its content checked against
``fault_suite_content``).
"""

from __future__ import annotations

import base64
import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

JOB_TASKS = ("job_a", "job_b")
FAULT_KINDS = ("error", "drop", "drop_after", "stall")


@dataclass
class Tally:
    tasks_total: int = 0
    tasks_succeeded: int = 0
    task_states: Counter = field(default_factory=Counter)
    retries: int = 0
    jobs: int = 0
    job_tasks_succeeded: int = 0
    versions: int = 0
    orphans: int = 0
    results_checked: int = 0
    lost: int = 0
    lost_detail: list[str] = field(default_factory=list)
    calls: int = 0
    faults: Counter = field(default_factory=Counter)
    kills_planned: Counter = field(default_factory=Counter)
    kills_done: Counter = field(default_factory=Counter)
    wall_seconds: float = 0.0
    expected_tasks: int = 0

    @property
    def duplicates(self) -> int:
        """Job versions beyond one per successful job task instance."""
        return self.versions - self.job_tasks_succeeded

    def failed_goals(self) -> list[str]:
        failed = []
        if self.tasks_succeeded != self.tasks_total or self.tasks_total != self.expected_tasks:
            failed.append(f"tasks {self.tasks_succeeded}/{self.tasks_total} (expected {self.expected_tasks})")
        if self.duplicates:
            failed.append(f"{self.duplicates} duplicate job version(s)")
        if self.lost:
            failed.append(f"{self.lost} lost result(s): {self.lost_detail[:5]}")
        if self.orphans:
            failed.append(f"{self.orphans} orphan job(s)")
        short = {k: v - self.kills_done[k] for k, v in self.kills_planned.items() if self.kills_done[k] < v}
        if short:
            failed.append(f"kills not done: {short}")
        return failed

    def table(self) -> str:
        faulted = sum(self.faults[k] for k in FAULT_KINDS)
        share = faulted / self.calls if self.calls else 0.0
        by_kind = ", ".join(f"{k} {self.faults[k]}" for k in FAULT_KINDS)
        kills = ", ".join(f"{k} {self.kills_done[k]}/{v}" for k, v in self.kills_planned.items())
        rows = [
            ("tasks succeeded", f"{self.tasks_succeeded}/{self.tasks_total}"),
            ("Bacalhau jobs (by name)", f"{self.jobs} ({self.job_tasks_succeeded} job tasks succeeded)"),
            ("duplicates", str(self.duplicates)),
            ("lost results", f"{self.lost} of {self.results_checked} fetched and verified"),
            ("orphans (jobs still running)", str(self.orphans)),
            ("wall time", f"{self.wall_seconds:.0f} s"),
            ("retries used", str(self.retries)),
            ("faulted API calls", f"{faulted}/{self.calls} ({share:.1%}): {by_kind}"),
            ("kills done/planned", kills),
        ]
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def task_instances(api: Any, dag_id: str, run_id: str) -> list[dict]:
    """Every task instance of the run, mapped ones included (the API pages by 100)."""
    found: list[dict] = []
    while True:
        page = api.request(
            "GET",
            f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances",
            params={"limit": 100, "offset": len(found)},
        )
        found += page["task_instances"]
        if not page["task_instances"] or len(found) >= page["total_entries"]:
            return found


def xcom_value(api: Any, dag_id: str, run_id: str, task_id: str, map_index: int) -> Any:
    entry = api.request(
        "GET",
        f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}/xcomEntries/return_value",
        params={"map_index": map_index, "deserialize": True, "stringify": False},
    )
    return entry["value"]


def tally_tasks(tally: Tally, tis: list[dict]) -> None:
    tally.tasks_total = len(tis)
    tally.task_states = Counter(ti["state"] for ti in tis)
    tally.tasks_succeeded = tally.task_states["success"]
    tally.retries = sum(max(0, (ti["try_number"] or 1) - 1) for ti in tis)
    tally.job_tasks_succeeded = sum(
        1 for ti in tis if ti["task_id"] in JOB_TASKS and ti["state"] == "success"
    )


def tally_jobs(tally: Tally, jobs: list[dict], dag_id: str) -> None:
    """Names, versions and orphans of the DAG's jobs on the devstack (found by the task instance
    the operators write into each job's Meta)."""
    from airflow_provider_bacalhau.operators._naming import TASK_INSTANCE_META

    ours = [
        j for j in jobs if str((j.get("Meta") or {}).get(TASK_INSTANCE_META, "")).startswith(f"{dag_id}/")
    ]
    tally.jobs = len({job["Name"] for job in ours})
    # A name is an upsert key: one job per name, a new version per resubmission. A second job
    # under one name (it cannot happen on Bacalhau) would count as a duplicate too.
    tally.versions = sum(int(job.get("Version") or 1) for job in ours)
    tally.orphans = sum(
        1 for job in ours if job["State"]["StateType"] not in ("Completed", "Failed", "Stopped")
    )


def verify_results(tally: Tally, api: Any, s3: Any, dag_id: str, run_id: str, seed: int, chains: int) -> None:
    """Fetch every published result of every chain and check it against its expected content."""
    import fault_suite_content as content

    expected = {
        "job_a": (content.A_OUTPUT, content.expected_a),
        "job_b": (content.B_OUTPUT, content.expected_b),
    }
    for task_id, (name, make) in expected.items():
        for chain in range(chains):
            where = f"{task_id}[{chain}]"
            try:
                results = xcom_value(api, dag_id, run_id, task_id, chain)
            except AssertionError as exc:
                tally.lost += 1
                tally.lost_detail.append(f"{where}: no XCom ({str(exc)[:80]})")
                continue
            tally.results_checked += len(results or [])
            problem = _check_result(s3, results, name, make(seed, chain))
            if problem:
                tally.lost += 1
                tally.lost_detail.append(f"{where}: {problem}")


def _check_result(s3: Any, results: Any, name: str, want: bytes) -> str:
    if not isinstance(results, list) or len(results) != 1:
        return f"{len(results or [])} published results, expected 1"
    params = results[0].get("Params") or {}
    if str(results[0].get("Type")).lower() != "s3":
        return f"result type {results[0].get('Type')}"
    key = params["Key"].rstrip("/") + "/outputs/" + name
    try:
        obj = s3.get_object(Bucket=params["Bucket"], Key=key, ChecksumMode="ENABLED")
    except Exception as exc:
        return f"s3://{params['Bucket']}/{key}: {type(exc).__name__}"
    body = obj["Body"].read()
    stored = obj.get("ChecksumSHA256")
    if stored and stored != base64.b64encode(hashlib.sha256(body).digest()).decode():
        return f"s3://{params['Bucket']}/{key}: stored SHA-256 does not match the object"
    if body != want:
        return f"s3://{params['Bucket']}/{key}: content differs from the expected"
    return ""


def add_faults(total: Counter, snapshot: dict) -> None:
    """Add one devstack worker's fault counters (``GET /devstack/v1/faults``) to ``total``."""
    for rule in (snapshot.get("routes") or {}).values():
        total["calls"] += int(rule.get("seen") or 0)
        for kind, count in (rule.get("kinds") or {}).items():
            total[kind] += int(count)
