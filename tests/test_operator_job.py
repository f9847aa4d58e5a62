"""The operators' flow against the devstack: defer, complete, fail, time out, retry, kill."""

from __future__ import annotations

import json
import socket
import time
from datetime import timedelta

import pytest
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, TaskDeferred
from airflow_helpers import FakeStateStore, FakeTaskInstance, fake_context, record_logs
from devstack_helpers import busybox_job

from airflow_provider_bacalhau.operators import BacalhauDockerJobOperator, BacalhauJobOperator
from airflow_provider_bacalhau.operators._naming import job_name_for_context
from airflow_provider_bacalhau.spec import JobStatus
from airflow_provider_bacalhau.triggers.job import BacalhauJobTrigger
from airflow_provider_bacalhau.waiting import make_event

_RUNS = iter(range(1, 10_000))


@pytest.fixture
def ti():
    """A task instance identity not used by any other test (job names derive from it)."""
    return FakeTaskInstance(dag_id="optest", task_id="run", run_id=f"run-{next(_RUNS)}-{time.time_ns()}")


def jobs_named(devstack, name: str) -> list[dict]:
    return [j for j in devstack.jobs() if j.get("Name") == name]


def wait_state(client, job_id: str, states: set[str], timeout: float = 30) -> JobStatus:
    end = time.time() + timeout
    while True:
        status = JobStatus.from_api(client.get_job(job_id))
        if status.state.value in states or time.time() > end:
            return status
        time.sleep(0.2)


def op_for(script: str, **kwargs) -> BacalhauJobOperator:
    kwargs.setdefault("poll_interval", 0.2)
    kwargs.setdefault("deferrable", False)
    return BacalhauJobOperator(task_id="run", job=busybox_job(script), **kwargs)


def test_deferrable_execute_pushes_id_and_link_then_defers(devstack_env, devstack, client, ti):
    op = op_for("sleep 20", deferrable=True, timeout=600)
    context = fake_context(ti)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context)
    job_id = ti.xcoms["bacalhau_job_id"]
    try:
        trigger = deferred.value.trigger
        assert isinstance(trigger, BacalhauJobTrigger)
        assert (trigger.job_id, trigger.bacalhau_conn_id, trigger.poll_interval) == (
            job_id,
            "bacalhau_default",
            0.2,
        )
        assert 590 < trigger.deadline - time.time() <= 600
        assert trigger.stop_on_kill and "optest.run" in trigger.stop_reason
        assert deferred.value.method_name == "execute_complete"
        # Padded past the trigger's deadline, so the trigger's timeout event (which stops the job) wins.
        assert timedelta(seconds=655) < deferred.value.timeout <= timedelta(seconds=660)
        assert ti.xcoms["bacalhau_job_link"] == {
            "job_id": job_id,
            "url": f"{devstack.webui_url}/jobs/{job_id}",
        }
        assert jobs_named(devstack, job_name_for_context(context))[0]["ID"] == job_id
    finally:
        client.stop_job(job_id, reason="test cleanup")


def test_success_returns_result_dicts_and_logs_outputs(devstack_env, devstack, ti):
    publisher = {
        "Type": "s3",
        "Params": {
            "Bucket": devstack.results_bucket,
            "Key": "optest/{jobID}/{executionID}/",
            "Encoding": "plain",
        },
    }
    op = BacalhauJobOperator(
        task_id="run",
        poll_interval=0.2,
        deferrable=False,
        job=busybox_job(
            "echo hello > /outputs/a.txt; echo to-stdout; echo to-stderr >&2", publisher=publisher
        ),
    )
    with record_logs() as logs:
        results = op.execute(fake_context(ti))
    assert len(results) == 1
    [result] = results
    assert result["Type"] == "s3" and result["Params"]["Bucket"] == devstack.results_bucket
    assert result["JobID"] == ti.xcoms["bacalhau_job_id"] and result["ExecutionID"].startswith("e-")
    assert "to-stdout" in logs.text and "to-stderr" in logs.text
    body = (
        devstack.s3_client()
        .get_object(Bucket=devstack.results_bucket, Key=result["Params"]["Key"] + "outputs/a.txt")["Body"]
        .read()
    )
    assert body == b"hello\n"


def test_failure_raises_with_stderr_tail_in_the_log(devstack_env, ti):
    op = op_for("echo the-real-cause >&2; exit 7")
    with record_logs() as logs, pytest.raises(AirflowException, match="ExitCode: 7") as failed:
        op.execute(fake_context(ti))
    assert "the-real-cause" in str(failed.value)
    failure_lines = logs.messages("error")
    assert any(
        "did not succeed" in line and "the-real-cause" in line and "ExitCode: 7" in line
        for line in failure_lines
    ), failure_lines


def test_nonzero_exit_can_be_accepted(devstack_env, ti):
    op = op_for("exit 4", fail_on_nonzero_exit=False)
    assert op.execute(fake_context(ti)) == []  # no publisher, so no results; but no failure


def test_retry_reuses_a_completed_job_without_running_it_again(devstack_env, devstack, ti):
    context = fake_context(ti)
    op_for("echo once").execute(context)
    first_id = ti.xcoms["bacalhau_job_id"]
    with record_logs() as logs:
        op_for("echo once").execute(context)  # the "retry": same task instance
    assert ti.xcoms["bacalhau_job_id"] == first_id
    [job] = jobs_named(devstack, job_name_for_context(context))
    assert job["Version"] == 1
    assert "reusing its results" in logs.text


def test_retry_after_failure_submits_a_new_version(devstack_env, devstack, ti):
    context = fake_context(ti)
    with pytest.raises(AirflowException):
        op_for("exit 1").execute(context)
    first_id = ti.xcoms["bacalhau_job_id"]
    with pytest.raises(AirflowException):
        op_for("exit 1").execute(context)  # identical spec: needs Force, else "no changes detected"
    [job] = jobs_named(devstack, job_name_for_context(context))
    assert job["ID"] == first_id and job["Version"] == 2


def test_retry_while_running_reattaches(devstack_env, devstack, client, ti):
    context = fake_context(ti)
    with pytest.raises(TaskDeferred):
        op_for("sleep 2; echo late", deferrable=True).execute(context)
    first_id = ti.xcoms["bacalhau_job_id"]
    op_for("sleep 2; echo late").execute(context)  # e.g. the worker crashed and the task restarted
    [job] = jobs_named(devstack, job_name_for_context(context))
    assert job["ID"] == first_id and job["Version"] == 1
    assert JobStatus.from_api(client.get_job(first_id)).executions[0].run_output.stdout.strip() == "late"


def test_task_state_store_finds_a_job_with_a_user_chosen_name(devstack_env, devstack, ti):
    store = FakeStateStore()
    context = fake_context(ti, store)
    name = f"custom-{ti.run_id}"
    op_for("echo a", job_name=name).execute(context)
    assert store.values["bacalhau_job_id"] == ti.xcoms["bacalhau_job_id"]
    assert jobs_named(devstack, name)[0]["ID"] == store.values["bacalhau_job_id"]
    assert store.reads == 0  # a first try has nothing stored: no request for it
    ti.try_number = 2
    op_for("echo a", job_name=name).execute(context)
    assert store.reads == 1
    assert len(jobs_named(devstack, name)) == 1


def test_invalid_spec_fails_before_submit_naming_the_field(devstack_env, devstack, ti):
    op = BacalhauDockerJobOperator(
        task_id="run", image="busybox", env={"BACALHAU_SECRET": "x"}, deferrable=False
    )
    context = fake_context(ti)
    with pytest.raises(AirflowFailException, match="EnvironmentVariables"):
        op.execute(context)
    assert jobs_named(devstack, job_name_for_context(context)) == []
    assert "bacalhau_job_id" not in ti.xcoms


def test_timeout_event_stops_the_job(devstack_env, client, ti):
    op = op_for("sleep 30", deferrable=True)
    context = fake_context(ti)
    with pytest.raises(TaskDeferred):
        op.execute(context)
    job_id = ti.xcoms["bacalhau_job_id"]
    with pytest.raises(AirflowException, match="deadline|timed out"):
        op.execute_complete(context, make_event("timeout", job_id, "deadline passed"))
    status = wait_state(client, job_id, {"Stopped"}, timeout=10)
    assert status.state.value == "Stopped" and "timed out" in status.message


def test_worker_wait_times_out_and_stops_the_job(devstack_env, client, ti):
    op = op_for("sleep 30", timeout=1)
    with pytest.raises(AirflowException, match="deadline|timed out"):
        op.execute(fake_context(ti))
    assert wait_state(client, ti.xcoms["bacalhau_job_id"], {"Stopped"}, timeout=10).state.value == "Stopped"


def test_on_kill_stops_the_job(devstack_env, client, ti):
    op = op_for("sleep 30", deferrable=True)
    with pytest.raises(TaskDeferred):
        op.execute(fake_context(ti))
    op.on_kill()
    status = wait_state(client, ti.xcoms["bacalhau_job_id"], {"Stopped"}, timeout=10)
    assert status.state.value == "Stopped" and "optest.run" in status.message and "killed" in status.message


STOP_ROUTE = "DELETE /api/v1/orchestrator/jobs/{id}"


def stops_sent(devstack) -> int:
    """Stop requests the devstack has seen since the counting rule was set (it injects nothing)."""
    import httpx

    faults = httpx.get(f"{devstack.api_url}/devstack/v1/faults", timeout=30).json()
    return faults["routes"][STOP_ROUTE]["seen"]


@pytest.mark.parametrize("deferrable", [False, True])
def test_on_kill_after_the_job_was_seen_ended_sends_no_stop(devstack_env, devstack, ti, deferrable):
    """Found by the fault suite: a task killed after it had seen its job end (while it logs or
    pushes its results) stopped the job again; had another try submitted a new version under the
    same ID by then, that stop would hit the new version."""
    op = op_for("echo done", deferrable=deferrable)
    context = fake_context(ti)
    if deferrable:
        with pytest.raises(TaskDeferred) as deferred:
            op.execute(context)
        job_id = deferred.value.trigger.job_id
        op = op_for("echo done", deferrable=True)  # the resumed task is a new operator object
        op.execute_complete(context, make_event_when_done(devstack_env, job_id))
    else:
        op.execute(context)
    devstack.set_faults(routes={STOP_ROUTE: {}})  # counts requests, injects nothing
    try:
        op.on_kill()
        assert stops_sent(devstack) == 0
        # The control: an operator that has not seen the job end sends the stop (which the
        # devstack refuses, as Bacalhau does for a Completed job).
        unaware = op_for("echo done")
        unaware.bacalhau_job_id = ti.xcoms["bacalhau_job_id"]
        unaware.on_kill()
        assert stops_sent(devstack) == 1
    finally:
        devstack.clear_faults()


@pytest.mark.parametrize(("script", "stops"), [("echo done", 0), ("sleep 30", 1)])
def test_a_kill_while_announcing_stops_only_a_job_not_seen_ended(devstack_env, devstack, ti, script, stops):
    """The fault suite's case: Airflow killed a retry ("the task shouldn't be running anymore")
    while it pushed the ID of the earlier try's job, which it had found Completed."""
    first = op_for(script, wait_for_termination=False)
    first.execute(fake_context(ti))
    job_id = ti.xcoms["bacalhau_job_id"]
    if stops == 0:
        make_event_when_done(devstack_env, job_id)
    retry = op_for(script, wait_for_termination=False)
    announce = retry._announce

    def killed_while_announcing(context, job_id, ended):
        announce(context, job_id, ended)
        retry.on_kill()

    retry._announce = killed_while_announcing
    devstack.set_faults(routes={STOP_ROUTE: {}})
    try:
        retry.execute(fake_context(ti))
        assert stops_sent(devstack) == stops
    finally:
        devstack.clear_faults()


def make_event_when_done(devstack, job_id: str) -> dict:
    from airflow_provider_bacalhau.client import BacalhauClient, ClientConfig
    from airflow_provider_bacalhau.waiting import event_from_response

    with BacalhauClient(ClientConfig(base_url=devstack.api_url)) as client:
        wait_state(client, job_id, {"Completed"})
        return event_from_response(client.get_job(job_id))


def test_worker_wait_survives_transient_api_errors(devstack_env, devstack, ti, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_BACALHAU_NORETRY", devstack.bacalhau_conn_json(max_retries=0))
    devstack.set_faults(
        routes={"GET /api/v1/orchestrator/jobs/{id}": {"every": 2, "status": 503, "times": 3}}
    )
    try:
        op_for("sleep 1; echo ok", bacalhau_conn_id="bacalhau_noretry").execute(fake_context(ti))
    finally:
        devstack.clear_faults()
    assert ti.xcoms["bacalhau_job_id"].startswith("j-")


def test_not_waiting_returns_none_after_pushing_the_id(devstack_env, client, ti):
    assert op_for("echo x", wait_for_termination=False).execute(fake_context(ti)) is None
    assert ti.xcoms["bacalhau_job_id"].startswith("j-")


@pytest.mark.parametrize(
    "event",
    [
        None,
        {"status": "weird", "job_id": "j"},
        {"status": "success"},
        {"status": "success", "job_id": "j-1", "job": None},
    ],
)
def test_execute_complete_validates_the_event_first(event):
    with pytest.raises(AirflowException, match="event"):
        op_for("echo").execute_complete(fake_context(), event)


def test_error_event_fails_without_stopping(devstack_env, ti):
    with pytest.raises(AirflowException, match="Waiting for Bacalhau job j-1 failed: boom"):
        op_for("echo").execute_complete(fake_context(ti), make_event("error", "j-1", "boom"))


def test_retry_finds_a_job_in_the_namespace_its_spec_names(devstack_env, devstack, ti):
    context = fake_context(ti)
    job = {**busybox_job("echo in-team"), "Namespace": "team-a"}
    BacalhauJobOperator(task_id="run", job=job, deferrable=False, poll_interval=0.2).execute(context)
    first_id = ti.xcoms["bacalhau_job_id"]
    with record_logs() as logs:  # the retry looks in team-a, not the connection's default namespace
        BacalhauJobOperator(task_id="run", job=job, deferrable=False, poll_interval=0.2).execute(context)
    assert ti.xcoms["bacalhau_job_id"] == first_id and "reusing its results" in logs.text
    [stored] = jobs_named(devstack, job_name_for_context(context))
    assert (stored["Namespace"], stored["Version"]) == ("team-a", 1)


def test_fixed_job_name_is_not_reused_by_another_dag_run(devstack_env, devstack, ti):
    name = f"fixed-{ti.run_id}"
    op_for("echo shared", job_name=name).execute(fake_context(ti))
    first_id = ti.xcoms["bacalhau_job_id"]
    other = FakeTaskInstance(dag_id=ti.dag_id, task_id=ti.task_id, run_id=ti.run_id + "-next")
    with record_logs() as logs:
        op_for("echo shared", job_name=name).execute(fake_context(other))
    assert "belongs to another task instance" in logs.text
    assert "reusing its results" not in logs.text
    [job] = jobs_named(devstack, name)  # the name is an upsert key: same job, a new version ran
    assert job["ID"] == first_id == other.xcoms["bacalhau_job_id"] and job["Version"] == 2
    assert job["Meta"]["airflow-task-instance"] == f"optest/run/{other.run_id}/-1"


def test_no_changes_answer_reattaches_to_the_existing_job(devstack_env, devstack, ti):
    context = fake_context(ti)
    op_for("echo once").execute(context)
    first_id = ti.xcoms["bacalhau_job_id"]
    # The name lookup misses once (404), so the identical spec is PUT again without Force.
    devstack.set_faults(
        routes={"GET /api/v1/orchestrator/jobs/{id}": {"every": 1, "status": 404, "times": 1}}
    )
    try:
        with record_logs() as logs:
            op_for("echo once").execute(context)
    finally:
        devstack.clear_faults()
    assert ti.xcoms["bacalhau_job_id"] == first_id and "re-attaching" in logs.text
    assert jobs_named(devstack, job_name_for_context(context))[0]["Version"] == 1


def test_missing_job_file_is_named(devstack_env, ti):
    op = BacalhauJobOperator(task_id="run", job="jobs/missing.yaml", deferrable=False)
    with pytest.raises(AirflowFailException, match="not found") as failed:
        op.execute(fake_context(ti))
    assert "not found" in str(failed.value) and "jobs/missing.yaml" in str(failed.value)


def test_input_errors_fail_for_good_only_when_they_are_configuration(devstack_env, devstack, ti, monkeypatch):
    managed = {"Type": "s3managed", "Params": {"JobID": "j-1", "ExecutionID": "e-1"}}
    with pytest.raises(AirflowFailException, match="Invalid inputs: staging_bucket"):
        op_for("echo", inputs=managed).execute(fake_context(ti))
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_DEAD",
        json.dumps(
            {
                "conn_type": "aws",
                "login": "k",
                "password": "s",
                "extra": {
                    "endpoint_url": dead,
                    "region_name": "us-east-1",
                    "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 2},
                },
            }
        ),
    )
    archive = {
        "Type": "s3",
        "Params": {"Bucket": "res", "Key": "runs/e-1.tar.gz"},
        "JobID": "j-1",
        "ExecutionID": "e-1",
    }
    with pytest.raises(AirflowException, match="Resolving inputs failed") as failed:
        op_for("echo", inputs=archive, aws_conn_id="aws_dead").execute(fake_context(ti))
    assert not isinstance(failed.value, AirflowFailException)  # a retry may succeed
    assert jobs_named(devstack, job_name_for_context(fake_context(ti))) == []
