"""A failed execution's output reaches the failure message and the task log from the logs
endpoint (v1.9.3 keeps no RunOutput for it); missing or broken logs never fail or hold up the
task (real devstack, real Docker, SeaweedFS)."""

from __future__ import annotations

import time

import httpx
import pytest
from airflow.providers.common.compat.sdk import AirflowException
from airflow_helpers import FakeTaskInstance, fake_context, record_logs
from devstack_helpers import busybox_job

from airflow_provider_bacalhau.operators import BacalhauJobOperator
from airflow_provider_bacalhau.spec import JobStatus
from airflow_provider_bacalhau.waiting import event_from_response
from airflow_provider_bacalhau.waiting.failed_output import failed_output

pytestmark = pytest.mark.docker
LOGS_ROUTE = "GET /api/v1/orchestrator/jobs/{id}/logs"
_RUNS = iter(range(1, 10_000))
#: Prints to both streams, exits non-zero, then its results cannot be published: the execution
#: fails (a non-zero exit alone would be Completed), and Bacalhau keeps no RunOutput for it.
SCRIPT = "echo 'out: step 1 done'; echo 'err: disk quota exceeded' >&2; exit 3"


@pytest.fixture
def ti():
    return FakeTaskInstance(
        dag_id="failed_output", task_id="run", run_id=f"run-{next(_RUNS)}-{time.time_ns()}"
    )


def unpublishable(script: str = SCRIPT) -> dict:
    # An S3 server the node cannot reach (nothing listens on port 9): PutObject fails.
    return busybox_job(
        script,
        publisher={
            "Type": "s3",
            "Params": {"Bucket": "results", "Key": "x/", "Endpoint": "http://127.0.0.1:9"},
        },
    )


def op_for(job: dict) -> BacalhauJobOperator:
    return BacalhauJobOperator(task_id="run", job=job, poll_interval=0.2, deferrable=False)


@pytest.fixture
def failed_job(client) -> dict:
    """A finished failed job's ``GET /jobs/{id}?include=executions`` answer."""
    job_id = client.submit_job(unpublishable())["JobID"]
    deadline = time.monotonic() + 60
    while True:
        answer = client.get_job(job_id)
        if answer["Job"]["State"]["StateType"] == "Failed":
            return answer
        assert time.monotonic() < deadline, answer["Job"]["State"]
        time.sleep(0.2)


def test_failure_message_and_log_carry_the_output_tail_from_the_logs_endpoint(devstack_env, ti):
    with record_logs() as logs, pytest.raises(AirflowException) as failed:
        op_for(unpublishable()).execute(fake_context(ti))
    message = str(failed.value)
    assert "failed to publish result" in message  # the execution's ComputeState.Message
    assert "RunOutput" not in message and "ExitCode" not in message
    assert message.count("(logs endpoint") == 2  # both executions (the node ran it twice)
    assert "out: step 1 done" in message and "err: disk quota exceeded" in message
    assert any("err: disk quota exceeded" in line for line in logs.messages("error"))


def test_hanging_or_missing_logs_leave_the_job_messages_and_stay_prompt(
    devstack_env, devstack, failed_job, ti
):
    op = op_for(unpublishable())
    event = event_from_response(failed_job)
    devstack.set_faults(routes={LOGS_ROUTE: {"latency": 30}})
    try:
        started = time.monotonic()
        with pytest.raises(AirflowException) as failed:
            op.execute_complete(fake_context(ti), event)
        took = time.monotonic() - started
    finally:
        devstack.clear_faults()
    assert took < 8, took
    message = str(failed.value)
    assert "failed to publish result" in message and "not enough nodes" in message
    assert "not available from the logs endpoint" in message or "were used up" in message
    assert "err: disk quota exceeded" not in message

    # The node no longer has the log files (an hour later): it answers with an error frame.
    with httpx.Client(base_url=devstack.api_url) as api:
        before = api.get("/devstack/v1/logs").json()
        api.put("/devstack/v1/logs", json={"file_wait": 0.5})
        try:
            for execution in failed_job["Executions"]["Items"]:
                api.delete(f"/devstack/v1/logs/{execution['ID']}")
            with pytest.raises(AirflowException) as failed:
                op.execute_complete(fake_context(ti), event)
        finally:
            api.put("/devstack/v1/logs", json=before)
    assert (
        str(failed.value).count(
            "not available from the logs endpoint (timeout while waiting for execution logs)"
        )
        == 2
    )


def test_a_broken_logs_endpoint_leaves_the_job_messages(devstack_env, devstack, failed_job, ti):
    devstack.set_faults(routes={LOGS_ROUTE: {"error_rate": 1, "status": 502}})
    try:
        with pytest.raises(AirflowException) as failed:
            op_for(unpublishable()).execute_complete(fake_context(ti), event_from_response(failed_job))
    finally:
        devstack.clear_faults()
    message = str(failed.value)
    assert "failed to publish result" in message
    assert message.count("not available from the logs endpoint") == 2 and "502" in message


def test_a_completed_nonzero_exit_keeps_using_run_output_without_reading_logs(devstack_env, devstack, ti):
    devstack.set_faults(routes={LOGS_ROUTE: {"latency": 30}})
    try:
        started = time.monotonic()
        with pytest.raises(AirflowException, match="ExitCode: 3") as failed:
            op_for(busybox_job(SCRIPT)).execute(fake_context(ti))
    finally:
        devstack.clear_faults()
    assert "err: disk quota exceeded" in str(failed.value) and "logs endpoint" not in str(failed.value)
    assert time.monotonic() - started < 20


class Broken:
    def job_logs_tail(self, *args, **kwargs):
        raise RuntimeError("unexpected")


def test_an_unexpected_error_while_reading_is_reported_not_raised(failed_job):
    import logging

    status = JobStatus.from_api(failed_job)
    text = failed_output(Broken(), status, logging.getLogger("test"))
    assert text.count("not available (RuntimeError)") == 2
    assert failed_output(Broken(), status, logging.getLogger("test"), budget=0).count("used up") == 2
