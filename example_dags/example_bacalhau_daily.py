"""A scheduled pipeline: one Bacalhau job per day, its result kept under that day's key.

``example_bacalhau_daily`` runs ``@daily`` from 2025-01-01 to 2025-01-03 with ``catchup=True``:
once unpaused, the scheduler creates the three runs at once (up to three at the same time,
``max_active_runs=3``) and each submits its own job (the job name holds the run id, so a retry
re-attaches to that day's job instead of submitting another).

Each job writes a small report for its day, ``{{ ds }}`` rendered by Airflow into the command and
into the publisher's key, and publishes it with the S3 publisher (plain) under
``daily/<ds>/``: ``s3://bacalhau-results/daily/2025-01-01/outputs/day.txt`` and so on. Change
``start_date``, ``end_date`` and ``schedule`` for a real pipeline; the rest stays.
"""

from __future__ import annotations

import os

import pendulum
from airflow.providers.common.compat.sdk import DAG, Param

from airflow_provider_bacalhau.operators import BacalhauDockerJobOperator

POLL_INTERVAL = float(os.environ.get("BACALHAU_EXAMPLES_POLL_INTERVAL", "5"))
CONNECTIONS = {"bacalhau_conn_id": "bacalhau_default", "aws_conn_id": "aws_default"}

# Airflow renders {{ ds }} (the run's logical date) before the job is submitted.
DAY_SCRIPT = r"""
set -eu
mkdir -p /outputs
echo "day={{ ds }}" > /outputs/day.txt
echo "run={{ run_id }}" >> /outputs/day.txt
cat /outputs/day.txt
"""

with DAG(
    dag_id="example_bacalhau_daily",
    description="One Bacalhau job a day, results under daily/<ds>/ (catchup over three days)",
    doc_md=__doc__,
    schedule="@daily",
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    end_date=pendulum.datetime(2025, 1, 3, tz="UTC"),
    catchup=True,
    max_active_runs=3,
    tags=["bacalhau", "example"],
    default_args=CONNECTIONS,
    params={
        "bucket": Param("bacalhau-results", type="string", description="Bucket for the daily results"),
        "s3_region": Param("us-east-1", type="string"),
        "s3_endpoint": Param(
            "", type=["string", "null"], description="S3 endpoint of the compute nodes; empty: AWS"
        ),
        "image": Param("busybox:1.37.0", type="string"),
    },
) as dag:
    BacalhauDockerJobOperator(
        task_id="daily_report",
        image="{{ params.image }}",
        entrypoint=["sh", "-c"],
        parameters=[DAY_SCRIPT],
        result_paths={"outputs": "/outputs"},
        publisher={
            "Type": "s3",
            "Params": {
                "Bucket": "{{ params.bucket }}",
                "Key": "daily/{{ ds }}/",
                "Region": "{{ params.s3_region }}",
                "Endpoint": "{{ params.s3_endpoint or '' }}",
                "Encoding": "plain",
            },
        },
        timeouts={"ExecutionTimeout": 300},
        poll_interval=POLL_INTERVAL,
    )


if __name__ == "__main__":
    dag.test()
