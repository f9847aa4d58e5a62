"""BacalhauJobSensor against the devstack: poke, deferrable, failure, results."""

from __future__ import annotations

import time

import pytest
from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowSensorTimeout,
    AirflowSkipException,
    PokeReturnValue,
    TaskDeferred,
)
from airflow_helpers import FakeTaskInstance, fake_context
from devstack_helpers import busybox_job

from airflow_provider_bacalhau.sensors import BacalhauJobSensor
from airflow_provider_bacalhau.spec import JobStatus
from airflow_provider_bacalhau.triggers.job import BacalhauJobTrigger
from airflow_provider_bacalhau.waiting import make_event


def submit(client, devstack, script: str, name: str = "") -> str:
    publisher = {
        "Type": "s3",
        "Params": {"Bucket": devstack.results_bucket, "Key": "sensor/{jobID}/", "Encoding": "plain"},
    }
    return client.submit_job(busybox_job(script, name=name, publisher=publisher))["JobID"]


def wait_terminal(client, job_id: str) -> None:
    end = time.time() + 30
    while not JobStatus.from_api(client.get_job(job_id)).is_terminal and time.time() < end:
        time.sleep(0.2)


def test_poke_waits_then_returns_results(devstack_env, devstack, client):
    job_id = submit(client, devstack, "sleep 1; echo done > /outputs/x")
    sensor = BacalhauJobSensor(task_id="s", job_id=job_id, poke_interval=0.2)
    ti = FakeTaskInstance(task_id="s")
    assert sensor.poke(fake_context(ti)) is False
    assert ti.xcoms["bacalhau_job_id"] == job_id and ti.xcoms["bacalhau_job_link"]["url"].endswith(job_id)
    wait_terminal(client, job_id)
    done = sensor.poke(fake_context(ti))
    assert isinstance(done, PokeReturnValue) and done.is_done
    [result] = done.xcom_value
    assert result["Type"] == "s3" and result["JobID"] == job_id


def test_poke_by_name_and_failure_like_the_operator(devstack_env, devstack, client):
    name = f"sensor-fail-{time.time_ns()}"
    job_id = submit(client, devstack, "echo sensor-cause >&2; exit 2", name=name)
    wait_terminal(client, job_id)
    sensor = BacalhauJobSensor(task_id="s", job_id=name, poke_interval=0.2)
    with pytest.raises(AirflowException, match="sensor-cause"):
        sensor.poke(fake_context())
    relaxed = BacalhauJobSensor(task_id="s", job_id=name, fail_on_nonzero_exit=False)
    assert relaxed.poke(fake_context()).is_done


def test_unknown_job_fails_at_once(devstack_env):
    with pytest.raises(AirflowException, match="404|not found"):
        BacalhauJobSensor(task_id="s", job_id="no-such-job-name").poke(fake_context())


def test_deferrable_uses_the_shared_trigger_and_completion(devstack_env, devstack, client):
    name = f"sensor-defer-{time.time_ns()}"
    job_id = submit(client, devstack, "sleep 20", name=name)
    sensor = BacalhauJobSensor(task_id="s", job_id=name, deferrable=True, poke_interval=0.5, timeout=300)
    try:
        with pytest.raises(TaskDeferred) as deferred:
            sensor.execute(fake_context())
        trigger = deferred.value.trigger
        assert isinstance(trigger, BacalhauJobTrigger)
        assert trigger.job_id == job_id  # the name was resolved to the ID
        assert trigger.stop_on_kill is False  # the sensor does not own the job
        assert 295 < trigger.deadline - time.time() <= 300
        # A timeout event fails the sensor but leaves the job running.
        with pytest.raises(AirflowException):
            sensor.execute_complete(fake_context(), make_event("timeout", job_id, "deadline"))
        assert JobStatus.from_api(client.get_job(job_id)).state.value in ("Pending", "Queued", "Running")
    finally:
        client.stop_job(job_id, reason="test cleanup")


def test_deferrable_finishes_at_once_when_already_terminal(devstack_env, devstack, client):
    job_id = submit(client, devstack, "echo quick > /outputs/q")
    wait_terminal(client, job_id)
    sensor = BacalhauJobSensor(task_id="s", job_id=job_id, deferrable=True)
    [result] = sensor.execute(fake_context())
    assert result["JobID"] == job_id


def test_deferred_timeout_is_a_sensor_timeout_and_soft_fail_skips(devstack_env):
    event = make_event("timeout", "j-1", "Bacalhau job j-1 still Running when the wait timed out")
    sensor = BacalhauJobSensor(task_id="s", job_id="j-1", deferrable=True)
    with pytest.raises(AirflowSensorTimeout, match="still Running"):  # no retries, like poke mode
        sensor.execute_complete(fake_context(), event)
    soft = BacalhauJobSensor(task_id="s", job_id="j-1", deferrable=True, soft_fail=True)
    with pytest.raises(AirflowSkipException):
        soft.resume_execution("execute_complete", {"event": event}, fake_context())
    # Other outcomes stay ordinary failures.
    with pytest.raises(AirflowException) as failed:
        sensor.execute_complete(fake_context(), make_event("error", "j-1", "boom"))
    assert not isinstance(failed.value, AirflowSensorTimeout)


@pytest.mark.parametrize("name", ["poke_interval", "timeout"])
def test_a_negative_interval_is_refused_alike_on_every_airflow(name):
    """Checked before Airflow's own check, which raises a retried AirflowException on 2.11 and 3.0
    and a ValueError on 3.3: the same error, naming the sensor and the field, everywhere."""
    from datetime import timedelta

    from airflow_provider_bacalhau.failures import BacalhauInvalidArgumentError

    for bad in (-1, -0.5, "10", True):
        with pytest.raises(BacalhauInvalidArgumentError, match=rf"^BacalhauJobSensor: {name} must be"):
            BacalhauJobSensor(task_id="s", job_id="j", **{name: bad})
    sensor = BacalhauJobSensor(task_id="s", job_id="j", **{name: timedelta(seconds=3)})
    assert getattr(sensor, name) == 3
