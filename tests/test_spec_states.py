"""Job/execution states, RunOutput and the one success decision (JobStatus)."""

from __future__ import annotations

import json

import pytest

from airflow_provider_bacalhau.spec import (
    ExecutionState,
    JobState,
    JobStatus,
    PublishedResult,
    RunOutput,
)

S3_RESULT = {
    "Type": "s3",
    "Params": {
        "Bucket": "results",
        "Key": "runs/j-1/e-2.tar.gz",
        "Filter": "",
        "Region": "us-east-1",
        "Endpoint": "",
        "VersionID": "",
        "ChecksumSHA256": "aLgNZhlhklWk0ATVRHbeUfkVes0KnZfNKUoKOGLK090=",
        "Partition": {"Type": "", "Pattern": "", "StartIndex": 0, "EndIndex": 0, "DateFormat": ""},
    },
}


def execution(
    eid: str,
    state: int,
    *,
    exit_code: int | None = 0,
    version: int | None = 2,
    stderr: str = "",
    error: str = "",
    message: str = "",
    desired: int = 2,
    result: dict | None = None,
) -> dict:
    ex = {
        "ID": eid,
        "NodeID": "n-1",
        "JobID": "j-1",
        "ComputeState": {"StateType": state, "Message": message},
        "DesiredState": {"StateType": desired, "Message": ""},
        "RunOutput": {
            "Stdout": "out",
            "StdoutTruncated": False,
            "stderr": stderr,
            "StderrTruncated": False,
            "ExitCode": exit_code,
            "ErrorMsg": error,
        },
    }
    if version is not None:
        ex["JobVersion"] = version
    if exit_code is None:
        del ex["RunOutput"]["ExitCode"]
    if result is not None:
        ex["PublishedResult"] = result
    return ex


def response(state: str, executions: list[dict] | None, message: str = "") -> dict:
    out = {
        "Job": {
            "ID": "j-1",
            "Name": "etl",
            "Type": "batch",
            "Version": 2,
            "State": {"StateType": state, "Message": message},
        }
    }
    if executions is not None:
        out["Executions"] = {"Items": executions, "NextToken": ""}
    return out


@pytest.mark.parametrize(
    ("value", "state", "terminal"),
    [
        ("Pending", JobState.PENDING, False),
        ("Queued", JobState.QUEUED, False),
        ("Running", JobState.RUNNING, False),
        ("Completed", JobState.COMPLETED, True),
        ("Failed", JobState.FAILED, True),
        ("Stopped", JobState.STOPPED, True),
        ("completed", JobState.COMPLETED, True),
        (5, JobState.FAILED, True),
        ("Bogus", JobState.UNDEFINED, False),
    ],
)
def test_job_state(value, state, terminal):
    assert JobState.from_api(value) is state
    assert state.is_terminal is terminal
    assert JobState.COMPLETED == "Completed"


@pytest.mark.parametrize(
    ("number", "legacy", "state"),
    [
        (6, False, ExecutionState.RUNNING),
        (7, False, ExecutionState.PUBLISHING),
        (8, False, ExecutionState.BID_REJECTED),
        (9, False, ExecutionState.COMPLETED),
        (10, False, ExecutionState.FAILED),
        (11, False, ExecutionState.CANCELLED),
        (6, True, ExecutionState.BID_REJECTED),
        (7, True, ExecutionState.COMPLETED),
        (8, True, ExecutionState.FAILED),
        (9, True, ExecutionState.CANCELLED),
        (5, True, ExecutionState.BID_ACCEPTED),
        ("Completed", False, ExecutionState.COMPLETED),
        (42, False, ExecutionState.UNDEFINED),
    ],
)
def test_execution_state_numbering(number, legacy, state):
    assert ExecutionState.from_api(number, legacy_v15=legacy) is state


def test_terminal_execution_states():
    terminal = {s for s in ExecutionState if s.is_terminal}
    assert terminal == {
        ExecutionState.ASK_FOR_BID_REJECTED,
        ExecutionState.BID_REJECTED,
        ExecutionState.COMPLETED,
        ExecutionState.FAILED,
        ExecutionState.CANCELLED,
    }


def test_run_output_real_key_casing_and_capital_stderr():
    out = RunOutput.from_api(
        {
            "Stdout": "a",
            "StdoutTruncated": True,
            "stderr": "b",
            "StderrTruncated": True,
            "ExitCode": 3,
            "ErrorMsg": "boom",
        }
    )
    assert out == RunOutput("a", True, "b", True, 3, "boom")
    assert RunOutput.from_api({"Stderr": "c"}).stderr == "c"
    assert RunOutput.from_api(None) == RunOutput()


def test_completed_with_zero_exit_succeeds_and_lists_results():
    status = JobStatus.from_api(
        response(
            "Completed", [execution("e-2", 9, result=S3_RESULT), execution("e-0", 10, version=1, exit_code=1)]
        )
    )
    assert status.is_terminal and status.succeeded
    assert [e.id for e in status.executions] == ["e-2"]  # version 1's execution dropped
    assert status.results == [PublishedResult.from_api(S3_RESULT, "j-1", "e-2")]


def test_completed_with_nonzero_exit_fails_with_summary():
    stderr = "\n".join(f"line {i}" for i in range(30)) + "\n"
    status = JobStatus.from_api(response("Completed", [execution("e-2", 9, exit_code=2, stderr=stderr)]))
    assert status.is_terminal and not status.succeeded
    summary = status.failure_summary()
    assert "ExitCode: 2" in summary and "non-zero" in summary
    assert "line 29" in summary and "line 10" in summary and "line 9\n" not in summary


def test_failed_job_summary_has_messages_and_error_msg():
    status = JobStatus.from_api(
        response(
            "Failed",
            [
                execution(
                    "e-1",
                    10,
                    exit_code=-1,
                    message="failed to publish result: denied",
                    error="memory limit exceeded",
                    stderr="oom\n",
                ),
                execution("e-2", 9),
            ],
            message="Job failed because it has been retried too many times",
        )
    )
    assert status.is_terminal and not status.succeeded
    summary = status.failure_summary()
    for text in (
        "retried too many times",
        "failed to publish result: denied",
        "ErrorMsg: memory limit exceeded",
        "ExitCode: -1",
        "oom",
        "e-1",
        "Failed",
    ):
        assert text in summary
    assert "e-2" not in summary


def test_running_job_and_absent_executions():
    status = JobStatus.from_api(response("Running", None))
    assert not status.is_terminal and not status.succeeded
    assert status.executions == []
    assert JobStatus.from_api(response("Completed", None)).succeeded


def test_stopped_job_is_terminal_not_success():
    status = JobStatus.from_api(response("Stopped", [execution("e-1", 11)], message="stopped by user"))
    assert status.is_terminal and not status.succeeded
    assert "stopped by user" in status.failure_summary()


def test_executions_without_job_version_are_kept_and_legacy_numbering():
    resp = response("Completed", [execution("e-1", 7, version=None, exit_code=0, result=S3_RESULT)])
    status = JobStatus.from_api(resp, legacy_v15=True)
    assert status.executions[0].compute_state is ExecutionState.COMPLETED
    assert len(status.results) == 1
    assert JobStatus.from_api(resp).results == []  # 7 is Publishing in v1.6+


def test_empty_published_result_type_is_skipped():
    status = JobStatus.from_api(
        response("Completed", [execution("e-1", 9, result={"Type": "", "Params": {}})])
    )
    assert status.results == [] and status.executions[0].published_result is None


def test_status_from_json_text_roundtrip():
    resp = json.loads(json.dumps(response("Completed", [execution("e-2", 9)])))
    status = JobStatus.from_api(resp)
    assert (status.job_id, status.name, status.version, status.state) == ("j-1", "etl", 2, JobState.COMPLETED)
