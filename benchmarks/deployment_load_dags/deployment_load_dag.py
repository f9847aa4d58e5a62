"""The deployment load benchmark's DAG (benchmarks/deployment_load.py): ``DEPLOYLOAD_JOBS`` mapped
deferrable Bacalhau jobs and ``DEPLOYLOAD_EMPTIES`` mapped empty Python tasks, nothing else.

The jobs are ``noop`` jobs the benchmark's devstack holds Running until it releases them, so
every one of them is deferred at once. The empty tasks are Airflow's own cost of one worker run,
measured in the same deployment, to subtract from the jobs' two runs (submit, resume).
"""

from __future__ import annotations

import os

import pendulum
from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_bacalhau.operators import BacalhauJobOperator

DAG_ID = "deployment_load"
JOBS = int(os.environ.get("DEPLOYLOAD_JOBS", "10"))
EMPTIES = int(os.environ.get("DEPLOYLOAD_EMPTIES", "10"))
POLL_INTERVAL = float(os.environ.get("DEPLOYLOAD_POLL_INTERVAL", "5"))
NOOP_JOB = {"Type": "batch", "Count": 1, "Tasks": [{"Name": "main", "Engine": {"Type": "noop"}}]}

with DAG(
    dag_id=DAG_ID,
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    max_active_tasks=100_000,  # deferred or not, every job must be able to wait at once
    default_args={"retries": 3},
) as dag:
    BacalhauJobOperator.partial(
        task_id="job",
        aws_conn_id=None,
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        stream_logs=False,
    ).expand(job=[NOOP_JOB] * JOBS)

    @task
    def empty(index: int) -> None:
        """Nothing: what remains of its worker run is Airflow's."""

    empty.expand(index=list(range(EMPTIES)))
