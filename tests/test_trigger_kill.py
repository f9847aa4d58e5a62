"""Killing a deferred task stops its Bacalhau job, on every Airflow version; a triggerer restart
does not, and the task still gets its event.

A real ``airflow triggerer`` process runs against the tests' metadata DB (SQLite) and the devstack.
The task instance is left in the DB deferred on a ``BacalhauJobTrigger``, as a worker leaves it.
Airflow >= 3.3 calls the trigger's ``on_kill`` on a user kill; older triggerers only cancel the
trigger, and its ``cleanup`` must tell a kill from a restart (docs/compat.rst).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from airflow.providers.common.compat.sdk import DAG
from airflow_helpers import AIRFLOW_V3, airflow_db, create_run, sdk_task_instance, unique_dag_id  # noqa: F401
from devstack_helpers import busybox_job

from airflow_provider_bacalhau.devstack.procs import free_port
from airflow_provider_bacalhau.operators import BacalhauJobOperator
from airflow_provider_bacalhau.spec import JobStatus
from airflow_provider_bacalhau.triggers.job import TRIGGERER_CALLS_ON_KILL, BacalhauJobTrigger

pytestmark = [pytest.mark.docker, pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent


def defer_on_trigger(dag_id: str, run_id: str, task_id: str, trigger: BacalhauJobTrigger) -> int:
    """Leave the task instance DEFERRED on ``trigger``, as a worker does when the task defers."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import Trigger
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState

    with create_session() as session:
        row = Trigger.from_object(trigger)
        session.add(row)
        session.flush()
        ti = session.query(TaskInstance).filter_by(dag_id=dag_id, run_id=run_id, task_id=task_id).one()
        ti.state = TaskInstanceState.DEFERRED
        ti.trigger_id = row.id
        ti.next_method = "execute_complete"
        ti.try_number = max(ti.try_number or 0, 1)
        return row.id


def task_row(dag_id: str, run_id: str, task_id: str) -> dict:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = session.query(TaskInstance).filter_by(dag_id=dag_id, run_id=run_id, task_id=task_id).one()
        return {"state": ti.state, "trigger_id": ti.trigger_id, "next_kwargs": ti.next_kwargs}


def resume_task(dag, run_id: str, task_id: str) -> str:
    """Run a task instance whose trigger has fired, as the worker the scheduler sends does (it
    resumes in ``execute_complete``); returns the state it ends in."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState

    with create_session() as session:
        ti = session.query(TaskInstance).filter_by(dag_id=dag.dag_id, run_id=run_id, task_id=task_id).one()
        if not AIRFLOW_V3:
            ti.task = dag.get_task(task_id)
            ti.run(ignore_all_deps=True, ignore_ti_state=True, session=session)
            return ti.state
        from airflow.sdk.execution_time.supervisor import run_task_in_process

        ti.state = TaskInstanceState.QUEUED  # what the scheduler does before it sends a worker
        session.commit()
        sdk_ti = sdk_task_instance(ti)
    run_task_in_process(ti=sdk_ti, task=dag.get_task(task_id))
    return task_row(dag.dag_id, run_id, task_id)["state"]


def mark_failed(dag_id: str, run_id: str, task_id: str) -> None:
    """What "Mark failed" does to a deferred task instance's row."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState

    with create_session() as session:
        ti = session.query(TaskInstance).filter_by(dag_id=dag_id, run_id=run_id, task_id=task_id).one()
        assert ti.state == TaskInstanceState.DEFERRED
        ti.state = TaskInstanceState.FAILED


def trigger_owner(trigger_id: int) -> int | None:
    from airflow.models.trigger import Trigger
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.get(Trigger, trigger_id)
        return row.triggerer_id if row is not None else None


class Triggerer:
    """``airflow triggerer`` in its own process group, on this test's AIRFLOW_HOME and devstack."""

    def __init__(self, log_path: Path) -> None:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
            # Fast hand-over after a restart: the new triggerer adopts triggers of a dead one.
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
            "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "1",
            "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "5",
            "AIRFLOW__SCHEDULER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "5",
            # Its log server must not clash with another deployment's on this machine.
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        }
        self.log_path = log_path
        airflow = Path(sys.executable).with_name("airflow")
        self.proc = subprocess.Popen(
            [str(airflow), "triggerer"],
            env=env,
            stdout=log_path.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 60) -> None:
        """SIGTERM, as a deployment restart does: the triggerer cancels its triggers and exits."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # the triggerer itself; it stops its children
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def trigger_log(triggerer: Triggerer, dag_id: str) -> str:
    """The triggerer's output and the trigger log files it wrote for ``dag_id``'s task instances
    (Airflow 2 writes trigger lines there, not to its output)."""
    logs = Path(os.environ["AIRFLOW_HOME"], "logs", f"dag_id={dag_id}")
    files = sorted(logs.rglob("*.log")) if logs.exists() else []
    return triggerer.log + "".join(f.read_text(errors="replace") for f in files)


def wait_for(predicate, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def job_state(client, job_id: str) -> JobStatus:
    return JobStatus.from_api(client.get_job(job_id))


@pytest.fixture
def deferred(airflow_db, devstack_env, client, tmp_path):
    """Submit a job and leave a task instance deferred on its trigger; yields a small namespace."""

    def make(script: str):
        with DAG(unique_dag_id("bacalhau_kill"), schedule=None, start_date=datetime(2024, 1, 1)) as dag:
            BacalhauJobOperator(task_id="long_job", job=busybox_job("true"), deferrable=True)
        dag_id, run_id = create_run(dag)
        job_id = client.submit_job(busybox_job(script))["JobID"]
        trigger = BacalhauJobTrigger(
            job_id,
            poll_interval=0.5,
            deadline=time.time() + 300,
            stop_reason=f"Airflow task {dag_id}.long_job was killed while deferred",
        )
        trigger_id = defer_on_trigger(dag_id, run_id, "long_job", trigger)
        made.append(dag)
        return dag_id, run_id, job_id, trigger_id

    made: list = []

    started: list[Triggerer] = []

    def start_triggerer() -> Triggerer:
        triggerer = Triggerer(tmp_path / f"triggerer-{len(started)}.log")
        started.append(triggerer)
        return triggerer

    yield make, start_triggerer, made
    for triggerer in started:
        triggerer.stop()


def test_marking_a_deferred_task_failed_stops_its_job(deferred, client):
    make, start_triggerer, _ = deferred
    dag_id, run_id, job_id, trigger_id = make("sleep 120")
    triggerer = start_triggerer()
    wait_for(lambda: trigger_owner(trigger_id), 90, f"the triggerer to take trigger {trigger_id}\n")
    wait_for(lambda: job_state(client, job_id).state.value == "Running", 60, "the job to run")
    time.sleep(2)  # a few polls of the watch: the trigger is really running

    mark_failed(dag_id, run_id, "long_job")

    try:
        status = wait_for(
            lambda: (s := job_state(client, job_id)).state.value == "Stopped" and s,
            60,
            "the job to be stopped",
        )
    except AssertionError:
        raise AssertionError(f"job not stopped; log:\n{trigger_log(triggerer, dag_id)[-4000:]}") from None
    assert "killed while deferred" in status.message
    # One of on_kill (3.3+) or cleanup (older) stopped it, never both.
    log = wait_for(
        lambda: (text := trigger_log(triggerer, dag_id)).count(f"Stopped Bacalhau job {job_id}") and text,
        30,
        "the stop in the trigger's log",
    )
    assert log.count(f"Stopped Bacalhau job {job_id}") == 1, log[-4000:]
    assert "Could not stop Bacalhau job" not in log


def test_a_triggerer_restart_leaves_the_job_running_and_the_task_finishes(deferred, client):
    make, start_triggerer, made = deferred
    dag_id, run_id, job_id, trigger_id = make("sleep 45; echo done")
    first = start_triggerer()
    owner = wait_for(lambda: trigger_owner(trigger_id), 90, f"the triggerer to take trigger {trigger_id}")
    wait_for(lambda: job_state(client, job_id).state.value == "Running", 60, "the job to run")
    time.sleep(2)

    first.stop()  # the triggerer cancels the trigger and runs its cleanup: the task is still deferred

    log = trigger_log(first, dag_id)
    assert job_state(client, job_id).state.value == "Running", log[-4000:]
    if not AIRFLOW_V3:  # 2.x runs cleanup on shutdown (3.0 ends its trigger process without it)
        assert f"Bacalhau job {job_id} keeps running" in log, log[-4000:]
    assert task_row(dag_id, run_id, "long_job")["state"] == "deferred"
    second = start_triggerer()
    wait_for(
        lambda: trigger_owner(trigger_id) not in (None, owner), 90, "the new triggerer to adopt the trigger"
    )
    try:
        row = wait_for(
            lambda: (r := task_row(dag_id, run_id, "long_job"))["state"] == "scheduled" and r,
            90,
            "the trigger's event to reach the task instance",
        )
    except AssertionError:
        raise AssertionError(f"no event; triggerer log:\n{second.log[-4000:]}") from None
    event = row["next_kwargs"]["event"]
    assert event["status"] == "success" and event["job_id"] == job_id, event
    assert job_state(client, job_id).state.value == "Completed"
    assert resume_task(made[-1], run_id, "long_job") == "success"


def test_the_version_decides_which_hook_stops_the_job():
    """3.3+ triggerers call on_kill (so cleanup must not stop the job too); older ones never do."""
    from airflow.triggers.base import BaseTrigger

    assert hasattr(BaseTrigger, "on_kill") == TRIGGERER_CALLS_ON_KILL
    import airflow

    assert (tuple(int(p) for p in airflow.__version__.split(".")[:2]) >= (3, 3)) == TRIGGERER_CALLS_ON_KILL
