"""The deployment load benchmark's figures can fail: a worker run is cut at each ``Pre Execute``,
a job's end is matched to its own task instance only, a job that is not Completed or an event
older than the end counts for nothing, and the provider's time is what the two runs take beyond
two empty runs (benchmarks/deployment_load_report.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

from deployment_load_report import fired_times, latencies, slot_times, worker_runs  # noqa: E402

from airflow_provider_bacalhau.operators._naming import TASK_INSTANCE_META  # noqa: E402

RUN = "manual__2026-12-02T22:00:00+00:00"


def write_log(path: Path, events: list[tuple[str, str]]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"timestamp": f"2026-12-02T22:00:{t}Z", "event": e}) for t, e in events]
    path.write_text("\n".join([*lines, "not json"]) + "\n")
    return str(path)


def test_worker_runs_split_at_each_pre_execute(tmp_path: Path) -> None:
    log = write_log(
        tmp_path / "task_id=job/map_index=0/attempt=1.log",
        [
            ("01.000000", "::group::Pre Execute"),
            ("01.400000", "Pausing task as DEFERRED. "),
            ("01.500000", "::endgroup::"),
            ("30.000000", "::group::Pre Execute"),
            ("30.700000", "::endgroup::"),
        ],
    )
    assert [round(b - a, 3) for a, b in worker_runs(log)] == [0.5, 0.7]
    empty = write_log(
        tmp_path / "task_id=empty/map_index=0/attempt=1.log",
        [("05.000000", "::group::Pre Execute"), ("05.100000", "::endgroup::")],
    )
    figures = slot_times([log, empty])
    assert figures["job_two_runs_s"]["p50"] == pytest.approx(1.2)
    assert figures["provider_s_per_job_median"] == pytest.approx(1.0)


def job(index: int, end: float, state: str = "Completed") -> dict:
    return {
        "Meta": {TASK_INSTANCE_META: f"deployment_load/job/{RUN}/{index}"},
        "ModifyTime": int(end * 1e9),
        "State": {"StateType": state},
    }


def test_latencies_match_each_job_to_its_own_task(tmp_path: Path) -> None:
    base = 1_796_248_800.0  # 2026-12-02T22:00:00Z
    rows = [
        {"task_id": "job", "map_index": i, "state": "success", "scheduled_dttm": sched, "end_date": done}
        for i, sched, done in (
            (0, "2026-12-02 22:00:13.000000", "2026-12-02 22:00:20.000000"),
            (1, "2026-12-02 22:00:12.000000", None),
            (2, "2026-12-02 22:00:30.000000", None),  # its job still Running: no end to measure
            (3, "2026-12-02 21:59:00.000000", None),  # scheduled before the end: not this event
        )
    ]
    jobs = [job(0, base + 10), job(1, base + 11), job(2, base + 5, "Running"), job(3, base + 10)]
    trigger = write_log(
        tmp_path / "task_id=job/map_index=0/attempt=1.log.trigger.7.log",
        [("12.500000", "Trigger fired event")],
    )
    run_id_of = {i: f"deployment_load/job/{RUN}/{i}" for i in range(4)}
    found = latencies(rows, jobs, run_id_of, fired_times([trigger]))
    assert found["end_to_event_s"] == {"n": 2, "p50": 2.0, "p95": 3.0, "max": 3.0}
    assert found["end_to_trigger_fired_s"] == {"n": 1, "p50": 2.5, "p95": 2.5, "max": 2.5}
    assert found["end_to_task_success_s"]["n"] == 1
