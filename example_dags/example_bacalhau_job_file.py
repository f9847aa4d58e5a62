"""Run a Bacalhau job spec kept in a YAML file, templated with DAG params.

``example_bacalhau_job_file`` shows the path for teams that already have job files for
``bacalhau job run``: ``jobs/hello.yaml`` (next to this file) is a plain Bacalhau job spec with
Jinja placeholders (``{{ params.message }}``, ``{{ params.bucket }}``...). Passing
``job="jobs/hello.yaml"`` makes ``BacalhauJobOperator`` load the file from the DAG folder (or any
``template_searchpath``) and render it before it parses and validates it.

The job writes the message and its SHA-256 to ``/outputs`` and publishes them with the S3
publisher (plain encoding). ``fetch_message`` downloads them and ``report`` returns
``{"message": ..., "sha256": ...}``, checking that the container computed the same digest.

Trigger it with another ``message`` to see the param travel into the container; set ``bucket``,
``s3_region`` and ``s3_endpoint`` for your own S3 when running against a real network.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import pendulum
from airflow.providers.common.compat.sdk import DAG, Param, task

from airflow_provider_bacalhau.operators import (
    BacalhauFetchResultsOperator,
    BacalhauJobOperator,
)

log = logging.getLogger(__name__)

POLL_INTERVAL = float(os.environ.get("BACALHAU_EXAMPLES_POLL_INTERVAL", "5"))
# Connection ids are templated fields of every operator (e.g. "{{ var.value.bacalhau_conn }}"
# works too); set yours here.
CONNECTIONS = {"bacalhau_conn_id": "bacalhau_default", "aws_conn_id": "aws_default"}

with DAG(
    dag_id="example_bacalhau_job_file",
    description="Submit jobs/hello.yaml, a bacalhau job-run spec rendered with DAG params",
    doc_md=__doc__,
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    tags=["bacalhau", "example"],
    default_args=CONNECTIONS,
    params={
        "message": Param("Hello from Airflow on Bacalhau", type="string", maxLength=200),
        "image": Param("busybox:1.37.0", type="string"),
        "bucket": Param("bacalhau-results", type="string"),
        "s3_region": Param("us-east-1", type="string"),
        "s3_endpoint": Param(
            "", type=["string", "null"], description="Empty means AWS (or the devstack's S3)"
        ),
        "download_dir": Param("/tmp/bacalhau-examples", type="string"),
    },
) as dag:
    # [START howto_operator_bacalhau_job_file]
    hello = BacalhauJobOperator(
        task_id="hello",
        # A path relative to this DAG's folder; rendered as a Jinja template, then parsed.
        job="jobs/hello.yaml",
        poll_interval=POLL_INTERVAL,
    )
    # [END howto_operator_bacalhau_job_file]

    fetch_message = BacalhauFetchResultsOperator(
        task_id="fetch_message",
        results=hello.output,
        destination="{{ params.download_dir }}/{{ dag.dag_id }}/{{ run_id }}",
    )

    @task
    def report(paths: list[str]) -> dict[str, str]:
        """Return the message the job wrote, after checking the digest it computed."""
        # One directory per fetched result (execution).
        found = [f for path in paths for f in sorted(Path(path).rglob("*")) if f.is_file()]
        by_name = {f.name: f for f in found}
        if "message.txt" not in by_name or "message.sha256" not in by_name:
            raise FileNotFoundError(f"message.txt/message.sha256 not found in the fetched results {paths}")
        message = by_name["message.txt"].read_text().rstrip("\n")
        digest = by_name["message.sha256"].read_text().strip()
        if digest != hashlib.sha256(message.encode()).hexdigest():
            raise ValueError(f"the job's SHA-256 {digest} does not match the message {message!r}")
        log.info("the job said %r (sha256 %s)", message, digest)
        return {"message": message, "sha256": digest}

    report(fetch_message.output)


if __name__ == "__main__":
    dag.test()
