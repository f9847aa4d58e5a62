"""The fault suite's own checks can fail: the tally counts a second job version as a duplicate,
a running job as an orphan, and a missing or altered result as lost (on the real S3 server); the
chaos plan is drawn from the seed, and its S3 restart waits for staging only
(benchmarks/fault_tally.py, benchmarks/fault_chaos.py)."""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
for path in (REPO / "benchmarks", REPO / "tests" / "fault_dags"):
    sys.path.insert(0, str(path))

import fault_suite_content as content  # noqa: E402
from fault_chaos import Chaos, Plan  # noqa: E402
from fault_tally import Tally, _check_result, tally_jobs  # noqa: E402

from airflow_provider_bacalhau.operators._naming import TASK_INSTANCE_META  # noqa: E402


def job(name: str, owner: str, version: int = 1, state: str = "Completed") -> dict:
    return {
        "Name": name,
        "Version": version,
        "Meta": {TASK_INSTANCE_META: owner},
        "State": {"StateType": state},
    }


def test_versions_beyond_one_per_successful_task_are_duplicates_and_running_jobs_orphans():
    jobs = [
        job("a-0", "fault_suite/job_a/r/0"),
        job("a-1", "fault_suite/job_a/r/1", version=2),
        job("b-0", "fault_suite/job_b/r/0", state="Running"),
        job("other", "another_dag/job_a/r/0", version=5, state="Running"),
    ]
    tally = Tally(job_tasks_succeeded=3, tasks_total=4, tasks_succeeded=4, expected_tasks=4)
    tally_jobs(tally, jobs, "fault_suite")
    assert (tally.jobs, tally.versions, tally.duplicates, tally.orphans) == (3, 4, 1, 1)
    assert tally.failed_goals() == ["1 duplicate job version(s)", "1 orphan job(s)"]


def test_unmet_tasks_and_kills_fail_the_goals():
    tally = Tally(tasks_total=10, tasks_succeeded=9, expected_tasks=10)
    tally.kills_planned, tally.kills_done = Counter(worker=2), Counter(worker=1)
    assert tally.failed_goals() == ["tasks 9/10 (expected 10)", "kills not done: {'worker': 1}"]


@pytest.fixture
def results_bucket(s3_server):
    client = s3_server.client()
    bucket = "fault-tally-test"
    client.create_bucket(Bucket=bucket)
    yield client, bucket
    s3_server.reset()


def test_a_result_is_lost_when_missing_altered_or_not_one(results_bucket):
    s3, bucket = results_bucket
    want = content.expected_b(1, 0)
    result = [{"Type": "s3", "Params": {"Bucket": bucket, "Key": "fault-suite/b/j-1/e-1/"}}]
    key = "fault-suite/b/j-1/e-1/outputs/" + content.B_OUTPUT
    assert "NoSuchKey" in _check_result(s3, result, content.B_OUTPUT, want)
    s3.put_object(Bucket=bucket, Key=key, Body=want, ChecksumAlgorithm="SHA256")
    assert _check_result(s3, result, content.B_OUTPUT, want) == ""
    s3.put_object(Bucket=bucket, Key=key, Body=want[:-2] + b"0\n", ChecksumAlgorithm="SHA256")
    assert "content differs" in _check_result(s3, result, content.B_OUTPUT, want)
    assert "2 published results" in _check_result(s3, result * 2, content.B_OUTPUT, want)


def test_the_chaos_plan_comes_from_the_seed_and_restarts_s3_early():
    counts = {"worker": 20, "triggerer": 3, "scheduler": 1, "devstack": 2, "s3": 1}
    plan = Plan.draw(counts, seed=1)
    assert Plan.draw(counts, seed=1).events == plan.events != Plan.draw(counts, seed=2).events
    assert Counter(kind for _, kind in plan.events) == Counter(counts)
    assert [share for share, _ in plan.events] == sorted(share for share, _ in plan.events)
    assert all(share <= 0.05 for share, kind in plan.events if kind == "s3")


def _s3_restarts(running: set[str], seconds: float) -> list[str]:
    """What a chaos thread planned to restart S3 at 4% does in ``seconds`` at 1% progress."""
    restarts: list[str] = []
    chaos = Chaos(
        Plan([(0.04, "s3")]),
        progress=lambda: (0.01, running),
        deployment=None,
        restart_devstack=lambda: None,
        restart_s3=lambda: restarts.append("s3"),
        log=lambda _line: None,
    )
    chaos.start()
    deadline = time.monotonic() + seconds
    while not restarts and time.monotonic() < deadline:
        time.sleep(0.05)
    chaos.stop()
    return restarts


def test_the_s3_restart_is_done_while_staging_runs_before_its_planned_point():
    assert _s3_restarts({"stage", "job_a"}, seconds=10) == ["s3"]


def test_the_s3_restart_waits_while_no_stage_task_runs():
    assert _s3_restarts({"job_a"}, seconds=3) == []
