"""A job that prints a numbered line every ``interval`` seconds: for the deployment tests (live
logs while it runs, and marking the deferred task failed while it runs)."""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import DAG, Param

from airflow_provider_bacalhau.operators import BacalhauDockerJobOperator

with DAG(
    dag_id="deploy_long_job",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    default_args={"bacalhau_conn_id": "bacalhau_default", "aws_conn_id": "aws_default"},
    params={"lines": Param(20, type="integer"), "interval": Param(1, type="number")},
) as dag:
    BacalhauDockerJobOperator(
        task_id="ticker",
        image="busybox:1.37.0",
        entrypoint=["sh", "-c"],
        parameters=[
            (
                'for i in $(seq 1 {{ params.lines }}); do echo "tick $i of {{ params.lines }}"; '
                "sleep {{ params.interval }}; done"
            )
        ],
        timeouts={"ExecutionTimeout": 600},
        poll_interval=float(os.environ.get("BACALHAU_EXAMPLES_POLL_INTERVAL", "5")),
    )
