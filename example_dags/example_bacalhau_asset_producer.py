"""Publish a Bacalhau result to S3 and announce it as an Airflow asset event.

``example_bacalhau_asset_producer`` runs one job that writes ``numbers.txt`` (1..``count``, one
number a line) and publishes ``/outputs`` with the S3 publisher under ``asset-producer/{jobID}/``
(``Encoding: plain``: the objects can be read as they are). The key holds the job ID, so the
result's URI is known only once the job has run: the task declares the asset alias
``bacalhau_example_report`` as its outlet, and the operator adds one asset event per published
result, with the real URI (``s3://<bucket>/asset-producer/<job id>``) and the published result
itself in the event's extra (``bacalhau_result``, ``bacalhau_job_id``).

``example_bacalhau_asset_consumer`` is scheduled on that alias: each asset event starts it, and it
reads the published result as its input.

Run it locally with ``python example_dags/example_bacalhau_asset_producer.py`` once the
connections exist (``python -m airflow_provider_bacalhau.devstack up`` prints them). In a
deployment, unpause both DAGs and trigger this one; the scheduler starts the consumer.
"""

from __future__ import annotations

import os

import pendulum
from airflow.providers.common.compat.assets import AssetAlias
from airflow.providers.common.compat.sdk import DAG, Param

from airflow_provider_bacalhau.operators import BacalhauDockerJobOperator

POLL_INTERVAL = float(os.environ.get("BACALHAU_EXAMPLES_POLL_INTERVAL", "5"))
# Connection ids are templated fields of every operator; set yours here.
CONNECTIONS = {"bacalhau_conn_id": "bacalhau_default", "aws_conn_id": "aws_default"}
#: The consumer DAG is scheduled on this alias (its name is the contract between the two files).
REPORT_ALIAS = "bacalhau_example_report"

REPORT_SCRIPT = r"""
set -eu
mkdir -p /outputs
seq 1 {{ params.count }} > /outputs/numbers.txt
echo "wrote $(wc -l < /outputs/numbers.txt) numbers"
"""

with DAG(
    dag_id="example_bacalhau_asset_producer",
    description="Publish a result to S3 and announce its real URI as an asset event",
    doc_md=__doc__,
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    tags=["bacalhau", "example", "assets"],
    default_args=CONNECTIONS,
    params={
        "bucket": Param(
            "bacalhau-results",
            type="string",
            description="Bucket the result is published to",
        ),
        "count": Param(
            100,
            type="integer",
            minimum=1,
            description="How many numbers the job writes",
        ),
        "s3_region": Param("us-east-1", type="string"),
        "s3_endpoint": Param(
            "",
            type=["string", "null"],
            description="S3 endpoint of the compute nodes; empty: AWS (or the devstack's S3)",
        ),
        "image": Param(
            "busybox:1.37.0",
            type="string",
            description="Any image with busybox sh and seq",
        ),
    },
) as dag:
    BacalhauDockerJobOperator(
        task_id="make_numbers",
        image="{{ params.image }}",
        entrypoint=["sh", "-c"],
        parameters=[REPORT_SCRIPT],
        result_paths={"outputs": "/outputs"},
        publisher={
            "Type": "s3",
            "Params": {
                "Bucket": "{{ params.bucket }}",
                "Key": "asset-producer/{jobID}/",
                "Region": "{{ params.s3_region }}",
                "Endpoint": "{{ params.s3_endpoint or '' }}",
                "Encoding": "plain",
            },
        },
        # URIs known only at run time: the operator adds an asset per published result.
        outlets=[AssetAlias(REPORT_ALIAS)],
        timeouts={"ExecutionTimeout": 300},
        poll_interval=POLL_INTERVAL,
    )


if __name__ == "__main__":
    dag.test()
