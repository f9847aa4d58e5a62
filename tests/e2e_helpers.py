"""Support for the end-to-end tests (``tests/test_e2e_*.py``): no tests of its own.

Loads DAG files the way the DAG processor does, runs them with ``dag.test()``, reads XCom back
from the metadata DB and looks at the devstack. The Airflow DB fixture comes from
``tests/airflow_helpers.py``.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "example_dags"
#: The devstack creates this bucket; the examples use it by default.
EXAMPLE_BUCKET = "bacalhau-results"


def ensure_bucket(devstack: Any, bucket: str) -> None:
    client = devstack.s3_client()
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    if bucket not in existing:
        client.create_bucket(Bucket=bucket)


def load_dag(path: Path, dag_id: str, *, sync: bool = False):
    """Parse ``path`` in a fresh DagBag, as the DAG processor does.

    The job operators read ``[operators] default_deferrable`` when they are built, so set
    ``AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE`` before calling this. ``sync`` writes the DAG to the
    metadata DB (needed for DAG files outside the DAGs folder, which ``dag.test()`` would not find).
    """
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow < 3.1
        from airflow.models.dagbag import DagBag

    bag = DagBag(dag_folder=str(path))
    assert not bag.import_errors, bag.import_errors
    dag = bag.dags[dag_id]
    if sync:
        from airflow_helpers import sync_dag

        sync_dag(dag)
    return dag


def load_example(dag_id: str):
    return load_dag(EXAMPLES / f"{dag_id}.py", dag_id)


def run_dag(dag: Any, conf: dict | None = None, **kwargs: Any):
    """``dag.test()`` and the finished DagRun."""
    from airflow_helpers import fresh_task_stream

    fresh_task_stream()
    return dag.test(run_conf=conf, **kwargs)


def xcom(run: Any, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
    from airflow.utils.session import create_session
    from sqlalchemy import select

    try:
        from airflow.models.xcom import XComModel
    except ImportError:  # Airflow 2: the XCom class reads and deserializes in one call
        from airflow.models.xcom import XCom

        value = XCom.get_one(
            dag_id=run.dag_id, run_id=run.run_id, task_id=task_id, key=key, map_index=map_index
        )
        assert value is not None, f"no XCom {key!r} from {task_id}[{map_index}] in {run.run_id}"
        return value

    with create_session() as session:
        row = session.scalars(
            select(XComModel).where(
                XComModel.dag_id == run.dag_id,
                XComModel.run_id == run.run_id,
                XComModel.task_id == task_id,
                XComModel.map_index == map_index,
                XComModel.key == key,
            )
        ).first()
        assert row is not None, f"no XCom {key!r} from {task_id}[{map_index}] in {run.run_id}"
        return XComModel.deserialize_value(row)


def latest_run(dag_id: str):
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        newest_first = select(DagRun).where(DagRun.dag_id == dag_id).order_by(DagRun.id.desc())
        run = session.scalars(newest_first).first()
        assert run is not None, f"no run of {dag_id}"
        session.expunge(run)
        return run


def task_states(run: Any) -> dict[str, str]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == run.dag_id, TaskInstance.run_id == run.run_id)
        )
        return {ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]": ti.state for ti in rows}


def assert_deferral(output: str, deferrable: bool) -> None:
    """Deferred tasks leave log lines of the trigger (logger ...triggers.job.BacalhauJobTrigger);
    tasks that wait in the worker never run it."""
    deferred = "BacalhauJobTrigger" in output
    from airflow_helpers import AIRFLOW_V3

    if not AIRFLOW_V3:  # 2.x dag.test() runs triggers inline and drops their log lines
        deferred = "Deferring: the triggerer watches" in output and "in the worker" not in output
    waits = [line for line in output.splitlines() if "Bacalhau job" in line]
    assert deferred == deferrable, (
        f"expected deferrable={deferrable}, the log says deferred={deferred}:\n" + "\n".join(waits[-30:])
    )


def exception_text(output: str, job_id: str) -> str:
    """The message of the exception that failed the task following ``job_id``, as logged."""
    # AirflowException or one of its typed subclasses (BacalhauJobFailedError...), as logged.
    for chunk in re.split(r"(?:AirflowException|Bacalhau\w*Error): ", output)[1:]:
        message = chunk.split("::group::", 1)[0]
        if job_id in message:  # Airflow 3.0 wraps a logged exception at 80 columns
            return " ".join(message.split())
    raise AssertionError(f"no exception about {job_id} in the log:\n{tail(output)}")


def devstack_job(devstack: Any, job_id: str) -> dict:
    for job in devstack.jobs():
        if job.get("ID") == job_id:
            return job
    raise AssertionError(f"job {job_id} is not on the devstack")


def jobs_named(devstack: Any, fragment: str) -> list[dict]:
    return [job for job in devstack.jobs() if fragment in (job.get("Name") or "")]


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.3) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def tail(text: str, lines: int = 80) -> str:
    return "\n".join(text.splitlines()[-lines:])


def asset_events(source_dag_id: str, source_run_id: str) -> list[Any]:
    """The asset events a run of ``source_dag_id`` recorded, oldest first."""
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session
    from sqlalchemy import select
    from sqlalchemy.orm import joinedload

    with create_session() as session:
        query = (
            select(AssetEvent)
            .options(joinedload(AssetEvent.asset), joinedload(AssetEvent.source_aliases))
            .where(AssetEvent.source_dag_id == source_dag_id, AssetEvent.source_run_id == source_run_id)
            .order_by(AssetEvent.id)
        )
        events = list(session.scalars(query).unique())
        session.expunge_all()
        return events


def run_dag_on_asset_events(dag: Any, events: list[Any], conf: dict | None = None):
    """``dag.test()`` for a run that consumed ``events`` (real rows of the metadata DB), as a run the
    scheduler creates on asset events does: its tasks see them as ``triggering_asset_events``.

    ``dag.test()`` creates manual runs only; the run it creates is given the events before any
    task starts (the one step the scheduler would have taken)."""
    from unittest import mock

    from airflow.models import dagrun
    from airflow.models.asset import AssetEvent
    from sqlalchemy import select

    create = dagrun.get_or_create_dagrun

    def with_events(*args: Any, session: Any, **kwargs: Any):
        run = create(*args, session=session, **kwargs)
        ids = [event.id for event in events]
        run.consumed_asset_events.extend(session.scalars(select(AssetEvent).where(AssetEvent.id.in_(ids))))
        session.commit()
        return run

    with mock.patch.object(dagrun, "get_or_create_dagrun", with_events):
        return dag.test(run_conf=conf)
