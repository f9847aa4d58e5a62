"""The one waiting path (issue 9): one transient policy, one hook per task, the job's namespace on
both sides, typed failures, the trigger's classpath, job files rendered without private API."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import pytest
from airflow.providers.common.compat.sdk import AirflowException, AirflowSensorTimeout, TaskDeferred
from airflow_helpers import FakeTaskInstance, fake_context
from devstack_helpers import busybox_job
from test_operator_job import op_for, wait_state

from airflow_provider_bacalhau.client import BacalhauClient, ClientConfig
from airflow_provider_bacalhau.client.aio import close_shared_http_clients
from airflow_provider_bacalhau.hooks.bacalhau import BacalhauHook
from airflow_provider_bacalhau.operators import BacalhauJobOperator
from airflow_provider_bacalhau.sensors import BacalhauJobSensor
from airflow_provider_bacalhau.triggers.job import BacalhauJobTrigger

GET_JOB = "GET /api/v1/orchestrator/jobs/{id}"
OTHER_NAMESPACE = "team-w"
_RUNS = iter(range(1, 10_000))


@pytest.fixture
def team_client(devstack):
    """A client of the namespace the connection does not name."""
    with BacalhauClient(ClientConfig(base_url=devstack.api_url, namespace=OTHER_NAMESPACE)) as c:
        yield c


@pytest.fixture
def ti():
    return FakeTaskInstance(dag_id="waittest", task_id="run", run_id=f"run-{next(_RUNS)}-{time.time_ns()}")


# -- one transient policy --------------------------------------------------------------------------


def test_a_lasting_500_fails_a_sensor_poke_promptly(devstack_env, devstack, client):
    """A 500 (say MultipleJobsFound for an ambiguous name) does not pass by waiting."""
    job_id = client.submit_job(busybox_job("sleep 5"))["JobID"]
    sensor = BacalhauJobSensor(task_id="s", job_id=job_id, poke_interval=0.2)
    devstack.set_faults(routes={GET_JOB: {"every": 1, "status": 500}})
    started = time.monotonic()
    try:
        with pytest.raises(AirflowException, match="500"):
            sensor.poke(fake_context())
    finally:
        devstack.clear_faults()
    assert time.monotonic() - started < 10


def test_a_503_is_still_retried_by_the_sensor(devstack_env, devstack, client, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_BACALHAU_NORETRY", devstack.bacalhau_conn_json(max_retries=0))
    job_id = client.submit_job(busybox_job("echo fine"))["JobID"]
    wait_state(client, job_id, {"Completed"})
    sensor = BacalhauJobSensor(task_id="s", job_id=job_id, bacalhau_conn_id="bacalhau_noretry")
    devstack.set_faults(routes={GET_JOB: {"every": 1, "status": 503, "times": 1}})
    try:
        assert sensor.poke(fake_context()) is False  # looked again later, not failed
    finally:
        devstack.clear_faults()
    assert sensor.poke(fake_context()).is_done


def test_the_client_policy_judges_statuses():
    from airflow_provider_bacalhau.client.retrying import is_transient
    from airflow_provider_bacalhau.errors import BacalhauApiError

    assert [is_transient(BacalhauApiError("x", status=s)) for s in (429, 500, 502, 503, 504, 404)] == [
        True,
        False,
        True,
        True,
        True,
        False,
    ]
    assert is_transient(BacalhauApiError("cannot reach"))  # no answer at all


# -- one hook per task -----------------------------------------------------------------------------


@pytest.fixture
def connection_reads(monkeypatch):
    reads: list[str] = []
    original = BacalhauHook.get_connection.__func__

    def counting(cls, conn_id):
        reads.append(conn_id)
        return original(cls, conn_id)

    monkeypatch.setattr(BacalhauHook, "get_connection", classmethod(counting))
    return reads


def test_a_job_operator_reads_its_connection_once(devstack_env, ti, connection_reads):
    op_for("echo once").execute(fake_context(ti))
    assert connection_reads == ["bacalhau_default"]


def test_a_sensor_reads_its_connection_once(devstack_env, client, connection_reads):
    job_id = client.submit_job(busybox_job("sleep 1"))["JobID"]
    sensor = BacalhauJobSensor(task_id="s", job_id=job_id)
    context = fake_context()
    assert sensor.poke(context) is False
    wait_state(client, job_id, {"Completed"})
    assert sensor.poke(context).is_done
    assert connection_reads == ["bacalhau_default"]


# -- the job's namespace on both sides ---------------------------------------------------------------
# Bacalhau v1.9.3 looks a job up by name in the request's namespace, then by ID in any namespace
# (GetJobByIDOrName, pkg/jobstore/boltdb/store.go): names are where the namespace decides.


def test_sensor_and_trigger_find_a_job_by_name_in_another_namespace(devstack_env, team_client):
    name = f"wait-ns-{time.time_ns()}"
    job_id = team_client.submit_job(busybox_job("echo there", name=name))["JobID"]
    wait_state(team_client, job_id, {"Completed"})
    sensor = BacalhauJobSensor(task_id="s", job_id=name, namespace=OTHER_NAMESPACE)
    done = sensor.poke(fake_context())
    assert done.is_done and sensor.bacalhau_job_id == job_id

    async def watch():
        try:
            trigger = BacalhauJobTrigger(
                name, namespace=OTHER_NAMESPACE, poll_interval=0.2, deadline=time.time() + 30
            )
            return [event.payload async for event in trigger.run()]
        finally:
            await close_shared_http_clients()

    [event] = asyncio.run(watch())
    assert (event["status"], event["job_id"], event["namespace"]) == ("success", job_id, OTHER_NAMESPACE)


def test_on_kill_stops_a_job_of_another_namespace(devstack_env, team_client, ti):
    op = op_for("sleep 30", deferrable=True, namespace=OTHER_NAMESPACE)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(fake_context(ti))
    assert deferred.value.trigger.namespace == OTHER_NAMESPACE
    op.on_kill()
    status = wait_state(team_client, ti.xcoms["bacalhau_job_id"], {"Stopped"}, timeout=10)
    assert status.state.value == "Stopped" and "killed" in status.message


def test_trigger_finds_a_job_of_another_namespace_and_its_timeout_stops_it(devstack_env, team_client, ti):
    """The job's namespace comes from the spec only: it still reaches the trigger, and the
    completion after a resume (a fresh operator) stops the job there."""
    job = {**busybox_job("sleep 30"), "Namespace": OTHER_NAMESPACE}
    op = BacalhauJobOperator(task_id="run", job=job, deferrable=True, poll_interval=0.2, timeout=2)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(fake_context(ti))
    trigger = deferred.value.trigger
    assert trigger.serialize()[1]["namespace"] == OTHER_NAMESPACE
    job_id = ti.xcoms["bacalhau_job_id"]

    async def watch():
        try:
            return [event.payload async for event in trigger.run()]
        finally:
            await close_shared_http_clients()

    [event] = asyncio.run(watch())
    assert event["status"] == "timeout" and "still Running" in event["message"]  # found, then timed out
    assert event["namespace"] == OTHER_NAMESPACE
    resumed = BacalhauJobOperator(task_id="run", job=job, deferrable=True, poll_interval=0.2)
    with pytest.raises(AirflowException, match="deadline"):
        resumed.execute_complete(fake_context(ti), event)
    assert wait_state(team_client, job_id, {"Stopped"}, timeout=10).state.value == "Stopped"


# -- typed failures ----------------------------------------------------------------------------------


def test_a_failed_job_raises_a_typed_failure_with_its_id(devstack_env, ti):
    from airflow_provider_bacalhau.errors import BacalhauJobFailedError

    with pytest.raises(BacalhauJobFailedError, match="exit code|Completed") as failed:
        op_for("exit 3").execute(fake_context(ti))
    assert failed.value.job_id == ti.xcoms["bacalhau_job_id"] and failed.value.state == "Completed"
    assert isinstance(failed.value, AirflowException)


def test_a_timed_out_wait_raises_a_typed_failure(devstack_env, ti):
    from airflow_provider_bacalhau.errors import BacalhauJobTimeoutError

    with pytest.raises(BacalhauJobTimeoutError) as failed:
        op_for("sleep 30", timeout=1).execute(fake_context(ti))
    assert failed.value.job_id == ti.xcoms["bacalhau_job_id"]


def test_a_sensor_timeout_is_typed_and_still_a_sensor_timeout():
    from airflow_provider_bacalhau.errors import BacalhauJobTimeoutError
    from airflow_provider_bacalhau.waiting import make_event

    sensor = BacalhauJobSensor(task_id="s", job_id="j-1", deferrable=True)
    with pytest.raises(BacalhauJobTimeoutError) as failed:
        sensor.execute_complete(fake_context(), make_event("timeout", "j-1", "still Running"))
    assert isinstance(failed.value, AirflowSensorTimeout) and failed.value.job_id == "j-1"


def test_unusable_inputs_raise_typed_failures(devstack_env, ti, monkeypatch):
    from airflow.providers.common.compat.sdk import AirflowFailException

    from airflow_provider_bacalhau.errors import BacalhauInputError, BacalhauInvalidInputError

    managed = {"Type": "s3managed", "Params": {"JobID": "j-1", "ExecutionID": "e-1"}}
    with pytest.raises(BacalhauInvalidInputError, match="staging_bucket") as invalid:
        op_for("echo", inputs=managed).execute(fake_context(ti))
    assert isinstance(invalid.value, AirflowFailException) and invalid.value.job_name.startswith("airflow-")
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_NOWHERE",
        '{"conn_type": "aws", "login": "k", "password": "s", '
        '"extra": {"endpoint_url": "http://127.0.0.1:9", "region_name": "us-east-1", '
        '"config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 2}}}',
    )
    archive = {
        "Type": "s3",
        "Params": {"Bucket": "res", "Key": "runs/e-1.tar.gz"},
        "JobID": "j-1",
        "ExecutionID": "e-1",
    }
    with pytest.raises(BacalhauInputError) as io_error:
        op_for("echo", inputs=archive, aws_conn_id="aws_nowhere").execute(fake_context(ti))
    assert not isinstance(io_error.value, AirflowFailException)  # a retry may succeed


def test_errors_module_names_the_failures_without_importing_airflow():
    code = (
        "import sys, airflow_provider_bacalhau.errors as e, airflow_provider_bacalhau.client, "
        "airflow_provider_bacalhau.spec; assert 'airflow' not in sys.modules; "
        "assert issubclass(e.BacalhauJobFailedError, e.BacalhauJobError)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- the trigger's classpath, rendering ----------------------------------------------------------------


def test_a_trigger_subclass_serializes_under_its_own_classpath():
    class TeamTrigger(BacalhauJobTrigger):
        pass

    classpath, _ = TeamTrigger("j-1").serialize()
    assert classpath == f"{__name__}.{TeamTrigger.__qualname__}"
    assert TeamTrigger.__qualname__.endswith("<locals>.TeamTrigger")


def test_job_operator_renders_without_airflows_private_render_hook(tmp_path):
    from datetime import datetime

    from airflow.providers.common.compat.sdk import DAG

    assert "_do_render_template_fields" not in vars(BacalhauJobOperator)
    (tmp_path / "job.yaml").write_text(
        "Type: batch\nTasks:\n  - Name: main\n    Engine:\n      Type: docker\n      Params:\n"
        '        Image: busybox\n        Parameters: ["echo {{ params.word }}"]\n'
    )
    with DAG("tmpl_w", schedule=None, start_date=datetime(2024, 1, 1), template_searchpath=[str(tmp_path)]):
        op = BacalhauJobOperator(task_id="t", job="job.yaml")
    context = {"params": {"word": "late"}}
    op.render_template_fields(context)  # without resolve_template_files: the file is read at build
    job = op.build_job(context).to_dict()
    assert job["Tasks"][0]["Engine"]["Params"]["Parameters"] == ["echo late"]
