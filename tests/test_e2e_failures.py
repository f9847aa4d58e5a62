"""End to end, on the devstack: what a user sees when a Bacalhau job goes wrong.

- a non-zero exit fails the task and the log shows the exit code and the container's stderr;
- a job killed on its ExecutionTimeout fails the task with the timeout message;
- a failed execution's output (no RunOutput in v1.9.3) reaches the message from the logs endpoint;
- a worker killed (-9) after the submit: the next try re-attaches, and there is one job, version 1;
- a deferred task marked failed: the triggerer cancels the trigger, its on_kill stops the job.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import e2e_helpers as e2e
import pytest
from airflow_helpers import airflow_db, requires_airflow, sdk_task_instance  # noqa: F401  (fixture)

pytestmark = [pytest.mark.docker, pytest.mark.slow]

FAILING_DAG = textwrap.dedent(
    '''
    """Two Bacalhau jobs that fail: one exits non-zero, one outlives its execution timeout."""
    import pendulum
    from airflow.providers.common.compat.sdk import DAG

    from airflow_provider_bacalhau.operators import BacalhauDockerJobOperator

    with DAG("e2e_bacalhau_failures", schedule=None, start_date=pendulum.datetime(2025, 1, 1),
             catchup=False) as dag:
        BacalhauDockerJobOperator(
            task_id="exits_nonzero",
            image="busybox:1.37.0",
            entrypoint=["sh", "-c"],
            parameters=["echo working; echo 'disk quota exceeded on /outputs' >&2; exit 3"],
            poll_interval=1,
        )
        BacalhauDockerJobOperator(
            task_id="runs_too_long",
            image="busybox:1.37.0",
            entrypoint=["sh", "-c"],
            parameters=["echo 'started the long step'; sleep 60"],
            timeouts={"ExecutionTimeout": 2},
            poll_interval=1,
        )
        BacalhauDockerJobOperator(  # exits non-zero, then its results cannot be published: Failed
            task_id="cannot_publish",
            image="busybox:1.37.0",
            entrypoint=["sh", "-c"],
            parameters=["echo 'rows written: 12'; echo 'warning: schema drift' >&2; exit 2"],
            publisher={"Type": "s3", "Params": {"Bucket": "results", "Key": "e2e/",
                                                "Endpoint": "http://127.0.0.1:9"}},
            poll_interval=1,
        )
    '''
)


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferrable", "blocking"])
def test_nonzero_exit_and_execution_timeout_fail_the_task_with_the_reason(
    devstack_env, airflow_db, tmp_path, capfd, monkeypatch, deferrable
):
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", str(deferrable))
    dag_file = tmp_path / "e2e_bacalhau_failures.py"
    dag_file.write_text(FAILING_DAG)
    dag = e2e.load_dag(dag_file, "e2e_bacalhau_failures", sync=True)
    run = e2e.run_dag(dag)
    out = capfd.readouterr().out

    e2e.assert_deferral(out, deferrable)
    assert run.state == "failed"
    assert e2e.task_states(run) == {
        "exits_nonzero": "failed",
        "runs_too_long": "failed",
        "cannot_publish": "failed",
    }

    # The exception that failed each task names the exit code / the timeout, with the stderr tail.
    nonzero_job = e2e.xcom(run, "exits_nonzero", key="bacalhau_job_id")
    nonzero = e2e.exception_text(out, nonzero_job)
    assert "ExitCode: 3" in nonzero, nonzero
    assert "disk quota exceeded on /outputs" in nonzero, nonzero

    too_long_job = e2e.xcom(run, "runs_too_long", key="bacalhau_job_id")
    too_long = e2e.exception_text(out, too_long_job)
    assert "Execution timed out after 2s" in too_long, too_long
    assert e2e.devstack_job(devstack_env, too_long_job)["State"]["StateType"] == "Failed"

    # Failed executions have no RunOutput in v1.9.3: their output comes from the logs endpoint.
    assert "started the long step" in too_long, too_long
    publish_job = e2e.xcom(run, "cannot_publish", key="bacalhau_job_id")
    publish = e2e.exception_text(out, publish_job)
    assert "failed to publish result" in publish, publish
    assert "rows written: 12" in publish and "warning: schema drift" in publish, publish


CRASH_DAG = textwrap.dedent(
    '''
    """One Bacalhau job that runs long enough for its worker to be killed under it."""
    import pendulum
    from airflow.providers.common.compat.sdk import DAG

    from airflow_provider_bacalhau.operators import BacalhauDockerJobOperator

    with DAG("e2e_bacalhau_crash", schedule=None, start_date=pendulum.datetime(2025, 1, 1),
             catchup=False) as dag:
        BacalhauDockerJobOperator(
            task_id="long_job",
            image="busybox:1.37.0",
            entrypoint=["sh", "-c"],
            parameters=["sleep 35; echo finished"],
            poll_interval=1,
        )
    '''
)

# The worker's private metadata DB, with the crash DAG written to it as the DAG processor would
# (the tests' own helpers, which know each Airflow version's way).
SETUP_SCRIPT = textwrap.dedent(
    f"""
    import os, sys
    sys.path.insert(0, {str(Path(__file__).parent)!r})
    from pathlib import Path
    from e2e_helpers import load_dag
    load_dag(Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]), "e2e_bacalhau_crash", sync=True)
    """
)


def test_worker_killed_after_submit_reattaches_without_a_second_job(devstack, tmp_path):
    """`airflow tasks test` plays the worker: killed -9 mid-job, then run again for the same run."""
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "e2e_bacalhau_crash.py").write_text(CRASH_DAG)
    (tmp_path / "airflow-home").mkdir()  # Airflow 3.0 does not create it for its SQLite DB
    env = {
        **os.environ,
        **devstack.env(),
        "AIRFLOW_HOME": str(tmp_path / "airflow-home"),  # a private DB for this worker
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "PYTHONWARNINGS": "ignore::DeprecationWarning",
    }
    subprocess.run(
        [sys.executable, "-c", SETUP_SCRIPT], env=env, check=True, capture_output=True, timeout=120
    )
    airflow = str(Path(sys.executable).parent / "airflow")
    argv = [airflow, "tasks", "test", "e2e_bacalhau_crash", "long_job", "2025-01-01"]
    name_part = "e2e-bacalhau-crash-long-job"

    first_log = tmp_path / "first.log"
    with first_log.open("w") as log:
        worker = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        e2e.wait_for(
            lambda: [j for j in e2e.jobs_named(devstack, name_part) if j["State"]["StateType"] == "Running"],
            timeout=90,
            what=f"the job to run (worker log: {first_log})",
        )
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
    assert worker.returncode == -signal.SIGKILL

    second = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=180)
    out = second.stdout + second.stderr
    assert second.returncode == 0, e2e.tail(out)
    assert "Re-attaching to Bacalhau job" in out, e2e.tail(out)

    (job,) = e2e.jobs_named(devstack, name_part)
    assert job["Version"] == 1
    assert job["State"]["StateType"] == "Completed"


def defer_in_a_real_run(dag, task_id: str):
    """Run ``task_id`` once in a new DAG run, as a worker would, until it defers.

    Returns the trigger rebuilt from the DeferTask message (what the triggerer would run) and
    the DagRun. The task instance is left DEFERRED in the DB.
    """
    from airflow.models.dagrun import DagRun, get_or_create_dagrun
    from airflow.sdk import timezone
    from airflow.sdk._shared.module_loading import import_string
    from airflow.sdk.execution_time.comms import DeferTask
    from airflow.sdk.execution_time.supervisor import run_task_in_process
    from airflow.sdk.serde import deserialize
    from airflow.serialization.serialized_objects import DagSerialization
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from airflow.utils.types import DagRunTriggeredByType, DagRunType

    scheduler_dag = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))
    now = timezone.utcnow()
    with create_session() as session:
        run = get_or_create_dagrun(
            dag=scheduler_dag,
            run_id=DagRun.generate_run_id(run_type=DagRunType.MANUAL, logical_date=now, run_after=now),
            logical_date=now,
            data_interval=(now, now),
            run_after=now,
            conf=None,
            triggered_by=DagRunTriggeredByType.TEST,
            triggering_user_name="e2e",
            start_date=now,
            session=session,
        )
        ti = run.get_task_instance(task_id, session=session)
        ti.try_number += 1
        ti.state = TaskInstanceState.QUEUED
        session.commit()
        sdk_ti = sdk_task_instance(ti)
        session.expunge(run)
    result = run_task_in_process(ti=sdk_ti, task=dag.get_task(task_id))
    assert isinstance(result.msg, DeferTask), result.msg
    trigger = import_string(result.msg.classpath)(**deserialize(result.msg.trigger_kwargs))
    trigger.task_instance = None
    return trigger, run


def mark_failed(run, task_id: str) -> None:
    """What "Mark failed" in the UI does to the task instance's row."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState

    with create_session() as session:
        ti = (
            session.query(TaskInstance).filter_by(dag_id=run.dag_id, run_id=run.run_id, task_id=task_id).one()
        )
        assert ti.state == TaskInstanceState.DEFERRED
        ti.state = TaskInstanceState.FAILED
        ti.trigger_id = None


@requires_airflow(
    (3, 3), "a triggerer that calls on_kill; tests/test_trigger_kill.py covers older ones' cleanup"
)
def test_marking_a_deferred_task_failed_stops_its_job(devstack_env, airflow_db, tmp_path, monkeypatch):
    """The triggerer's own cancel path (taken when a deferred task is marked failed) runs the
    trigger's on_kill, which stops the Bacalhau job."""
    from airflow.jobs.triggerer_job_runner import TriggerRunner

    dag_file = tmp_path / "e2e_bacalhau_kill.py"
    dag_file.write_text(
        CRASH_DAG.replace("e2e_bacalhau_crash", "e2e_bacalhau_kill").replace("sleep 35", "sleep 120")
    )
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "True")
    dag = e2e.load_dag(dag_file, "e2e_bacalhau_kill", sync=True)
    trigger, run = defer_in_a_real_run(dag, "long_job")
    job_id = trigger.job_id
    assert e2e.xcom(run, "long_job", key="bacalhau_job_id") == job_id
    e2e.wait_for(
        lambda: e2e.devstack_job(devstack_env, job_id)["State"]["StateType"] == "Running",
        timeout=60,
        what="the job to run",
    )

    async def run_then_cancel() -> list:
        runner = TriggerRunner()
        runner.triggers[1] = {
            "task": None,
            "name": "e2e_bacalhau_kill/long_job",
            "events": 0,
            "is_watcher": False,
        }
        runner.triggers[1]["task"] = asyncio.create_task(runner.run_trigger(1, trigger))
        await asyncio.sleep(2.5)  # a few polls: the job is still running
        assert not runner.triggers[1]["task"].done()
        mark_failed(run, "long_job")
        runner.to_cancel.append(1)  # the triggerer queues triggers whose task left DEFERRED
        await runner.cancel_triggers()
        with pytest.raises(asyncio.CancelledError):
            await runner.triggers[1]["task"]
        return list(runner.events)

    assert asyncio.run(run_then_cancel()) == []  # cancelled: no event
    job = e2e.wait_for(
        lambda: (j := e2e.devstack_job(devstack_env, job_id))["State"]["StateType"] == "Stopped" and j,
        timeout=30,
        what="the job to be stopped",
    )
    assert "killed while deferred" in job["State"].get("Message", ""), job["State"]
