"""The figures of ``benchmarks/deployment_load.py`` from what one run left behind: the task
instances (Airflow's DB), the devstack's jobs and fault counters, the triggerer samples and the
task logs. Pure functions, so a kept run's home can be read again.
"""

from __future__ import annotations

import contextlib
import json
import re
import statistics
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from fault_tally import add_faults

from airflow_provider_bacalhau.operators._naming import TASK_INSTANCE_META

FIRED = "Trigger fired event"  # the triggerer's line when a trigger yields its event
RUN_START = "::group::Pre Execute"  # the task runner's first event of a worker run


def _epoch(value: Any) -> float | None:
    """A DB datetime (``2026-12-02 22:50:01.123456[+00:00]``, UTC) as epoch seconds."""
    if not value:
        return None
    text = str(value).replace(" ", "T")
    parsed = datetime.fromisoformat(text if ("+" in text[10:] or text.endswith("Z")) else text + "+00:00")
    return parsed.timestamp()


def _quantiles(values: list[float]) -> dict[str, float | int]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return {
        "n": len(ordered),
        "p50": round(statistics.median(ordered), 3),
        "p95": round(p95, 3),
        "max": round(ordered[-1], 3),
    }


def fired_times(trigger_logs: list[str]) -> dict[int, float]:
    """Map index -> when the trigger fired its event (the triggerer's ``Trigger fired event`` line)."""
    fired: dict[int, float] = {}
    for path in trigger_logs:
        index = re.search(r"map_index=(-?\d+)", path)
        for line in Path(path).read_text(errors="replace").splitlines():
            if FIRED in line and index:
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    stamp = _epoch(json.loads(line)["timestamp"])
                    if stamp is not None:
                        fired[int(index.group(1))] = stamp
    return fired


def latencies(
    db: list[dict], jobs: list[dict], run_id_of: dict[int, str], fired: dict[int, float]
) -> dict[str, Any]:
    """Job end on the devstack -> the trigger fired (its log), -> Airflow has the event
    (``scheduled_dttm``), -> the task succeeded."""
    by_key: dict[str, list[dict]] = {}
    for job in jobs:
        key = (job.get("Meta") or {}).get(TASK_INSTANCE_META)
        if key:
            by_key.setdefault(key, []).append(job)
    to_fired, to_event, to_done = [], [], []
    for row in db:
        if row["task_id"] != "job" or not row["scheduled_dttm"]:
            continue
        key = run_id_of.get(row["map_index"], "")
        found = by_key.get(key) or []
        if len(found) != 1:
            continue
        if job_state(found[0]) != "Completed":
            continue
        end = int(found[0]["ModifyTime"]) / 1e9
        event, done = _epoch(row["scheduled_dttm"]), _epoch(row["end_date"])
        if event is not None and event > end:  # else the scheduled time of an earlier run
            to_event.append(event - end)
        if row["map_index"] in fired:
            to_fired.append(fired[row["map_index"]] - end)
        if done is not None and row["state"] == "success":
            to_done.append(done - end)
    return {
        "end_to_trigger_fired_s": _quantiles(to_fired),
        "end_to_event_s": _quantiles(to_event),
        "end_to_task_success_s": _quantiles(to_done),
    }


def job_state(job: dict) -> str:
    state = job.get("State") or {}
    return str(state.get("StateType", "")) if isinstance(state, dict) else str(state)


def worker_runs(log_path: str) -> list[tuple[float, float]]:
    """(first, last) event time of each worker run in one try's log; every run opens with the
    task runner's ``Pre Execute`` group."""
    runs: list[list[float]] = []
    for line in Path(log_path).read_text(errors="replace").splitlines():
        try:
            event = json.loads(line)
            stamp = _epoch(event["timestamp"])
        except (ValueError, KeyError, TypeError):
            continue
        if stamp is None:
            continue
        if event.get("event") == RUN_START or not runs:
            runs.append([stamp, stamp])
        runs[-1][1] = stamp
    return [(a, b) for a, b in runs]


def slot_times(logs: list[str]) -> dict[str, Any]:
    """Worker-run time per job (both runs) minus two empty-task runs (Airflow's own cost)."""
    job_runs: list[float] = []
    empty_runs: list[float] = []
    for path in logs:
        runs = worker_runs(path)
        if "task_id=job/" in path and len(runs) == 2:
            job_runs.append(sum(b - a for a, b in runs))
        elif "task_id=empty/" in path and len(runs) == 1:
            empty_runs.extend(b - a for a, b in runs)
    out: dict[str, Any] = {"job_two_runs_s": _quantiles(job_runs), "empty_run_s": _quantiles(empty_runs)}
    if job_runs and empty_runs:
        provider = statistics.median(job_runs) - 2 * statistics.median(empty_runs)
        out["provider_s_per_job_median"] = round(provider, 3)
    return out


def figures(
    options: Any,
    marks: dict,
    run: dict,
    db: list[dict],
    jobs: list[dict],
    faults: dict,
    sampler: Any,
    logs: list[str],
    trigger_logs: list[str],
) -> dict[str, Any]:
    states = Counter(str(row["state"]) for row in db)
    job_rows = [row for row in db if row["task_id"] == "job"]
    keys = Counter((job.get("Meta") or {}).get(TASK_INSTANCE_META) for job in jobs)
    run_id = run["dag_run_id"]
    run_id_of = {row["map_index"]: f"deployment_load/job/{run_id}/{row['map_index']}" for row in job_rows}
    totals: Counter = Counter()
    add_faults(totals, faults)
    calls = totals.pop("calls", 0)
    cpu = sampler.cpu

    def cpu_share(start: float, end: float) -> float | None:
        inside = [(t, c) for t, c in cpu if start <= t <= end]
        if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
            return None
        return round((inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0]), 3)

    released = marks["released"]
    return {
        "run_state": run["state"],
        "succeeded": states.get("success", 0),
        "tasks": len(db),
        "job_tasks_succeeded": sum(1 for row in job_rows if row["state"] == "success"),
        "job_tasks": len(job_rows),
        "task_states": dict(states),
        "devstack_jobs": len(jobs),
        "duplicate_jobs": sum(n - 1 for key, n in keys.items() if key and n > 1),
        "lost": sum(1 for row in job_rows if keys.get(run_id_of[row["map_index"]], 0) == 0),
        "tries_above_1": sum(1 for row in job_rows if (row["try_number"] or 0) > 1),
        "api_calls": calls,
        "faults": dict(totals),
        "fault_share": round(sum(totals.values()) / calls, 3) if calls else None,
        "triggerer_peak_rss_mb": round(sampler.peak_rss_mb, 1),
        "triggerer_cpu_cores_holding": cpu_share(marks["all_deferred"], released),
        "triggerer_cpu_cores_completing": cpu_share(released, released + marks["release_spread"]),
        "seconds": {
            "submit_all_deferred": round(marks["all_deferred"] - marks["triggered"], 1),
            "release_to_run_end": round(marks["run_ended"] - released, 1),
            "total": round(marks["run_ended"] - marks["triggered"], 1),
        },
        **latencies(db, jobs, run_id_of, fired_times(trigger_logs)),
        **slot_times(logs),
    }


def reread(home: Path, jobs_file: Path | None = None) -> dict[str, Any]:
    """The DB-, job- and log-based figures of a kept run's ``home`` (its ``raw.json``, or a
    ``GET /devstack/v1/jobs`` answer saved to ``jobs_file`` while the run went on)."""
    import sqlite3

    raw = json.loads((jobs_file or home / "raw.json").read_text())
    jobs = raw["jobs"] if "jobs" in raw else raw["Items"]
    with contextlib.closing(sqlite3.connect(home / "airflow" / "airflow.db")) as db:
        db.row_factory = sqlite3.Row
        rows = [dict(r) for r in db.execute("SELECT * FROM task_instance WHERE dag_id = 'deployment_load'")]
        run_id = db.execute("SELECT run_id FROM dag_run WHERE dag_id = 'deployment_load'").fetchone()[0]
    run_id_of = {row["map_index"]: f"deployment_load/job/{run_id}/{row['map_index']}" for row in rows}
    paths = [str(p) for p in (home / "airflow" / "logs").glob("dag_id=deployment_load/**/attempt=*.log")]
    logs = [p for p in paths if re.search(r"attempt=\d+\.log$", p)]
    states = Counter(f"{row['task_id']} {row['state']}" for row in rows)
    return {
        "task_states": dict(states),
        **latencies(rows, jobs, run_id_of, fired_times([p for p in paths if p not in logs])),
        **slot_times(logs),
    }


if __name__ == "__main__":
    import sys

    print(json.dumps(reread(Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) > 2 else None), indent=2))
