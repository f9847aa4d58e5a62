"""Publish with the S3 managed publisher and chain the managed result into a second job.

``example_bacalhau_s3managed``: with ``{"Type": "s3managed"}`` the compute node needs no S3
credentials at all; it uploads one ``.tar.gz`` through a URL the orchestrator presigns, into the
orchestrator's own bucket. No compute node can read that archive back as an input, so the
provider re-stages it: when ``make_squares.output`` is given to the next job as ``inputs``, the
operator asks the orchestrator for the result's download URL, fetches it, checks it, unpacks it
and uploads the files under ``staging_bucket`` (once per archive), then hands that prefix to the
job.

1. ``make_squares`` writes ``squares.txt`` (n and n*n for n = 1..``count``) and its SHA-256,
   published with s3managed.
2. ``check_and_sum`` receives the re-staged files, verifies the checksum with ``sha256sum -c``
   and sums the squares; also published with s3managed.
3. ``fetch_sum`` downloads the managed result through the orchestrator's presigned URL;
   ``report`` returns ``{"count": n, "sum_of_squares": ..., "checksum": "OK"}``.

``fetch_sum`` takes its input from a templated ``xcom_pull`` instead of an XComArg, to show the
other style: the DAG sets ``render_template_as_native_obj=True`` so the pulled list of
published results stays a list instead of becoming its string form.

On a real network the orchestrator must have the managed publisher configured
(``Publishers.Types.S3Managed.Bucket`` / ``Region``); the devstack has it. ``staging_bucket`` is a
bucket the Airflow AWS connection can write and the compute nodes can read.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pendulum
from airflow.providers.common.compat.sdk import DAG, Param, task

from airflow_provider_bacalhau.operators import (
    BacalhauDockerJobOperator,
    BacalhauFetchResultsOperator,
)

log = logging.getLogger(__name__)

POLL_INTERVAL = float(os.environ.get("BACALHAU_EXAMPLES_POLL_INTERVAL", "5"))
# Connection ids are templated fields of every operator (e.g. "{{ var.value.bacalhau_conn }}"
# works too); set yours here.
CONNECTIONS = {"bacalhau_conn_id": "bacalhau_default", "aws_conn_id": "aws_default"}

# Rendered by Jinja: {{ params.count }} is filled in before the job is submitted.
MAKE_SCRIPT = r"""
set -eu
mkdir -p /outputs
cd /outputs
awk -v n={{ params.count }} 'BEGIN { for (i = 1; i <= n; i++) print i, i * i }' > squares.txt
sha256sum squares.txt > squares.txt.sha256
wc -l squares.txt
"""

CHECK_SCRIPT = r"""
set -eu
sums=$(find /inputs -type f -name squares.txt.sha256 | head -n 1)
if [ -z "$sums" ]; then echo "squares.txt.sha256 not found under /inputs" >&2; find /inputs >&2; exit 2; fi
cd "$(dirname "$sums")"
sha256sum -c squares.txt.sha256
mkdir -p /outputs
awk '{ n++; total += $2 } END { printf "count=%d\nsum_of_squares=%d\nchecksum=OK\n", n, total }' \
  squares.txt > /outputs/sum.txt
cat /outputs/sum.txt
"""

MANAGED = {"Type": "s3managed"}

with DAG(
    dag_id="example_bacalhau_s3managed",
    description="Two jobs chained through the S3 managed publisher",
    doc_md=__doc__,
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    tags=["bacalhau", "example"],
    default_args=CONNECTIONS,
    render_template_as_native_obj=True,
    params={
        "count": Param(100, type="integer", minimum=1, maximum=100000, description="How many squares"),
        "staging_bucket": Param(
            "bacalhau-results", type="string", description="Bucket the managed archive is re-staged into"
        ),
        "image": Param("busybox:1.37.0", type="string"),
        "download_dir": Param("/tmp/bacalhau-examples", type="string"),
    },
) as dag:
    make_squares = BacalhauDockerJobOperator(
        task_id="make_squares",
        image="{{ params.image }}",
        entrypoint=["sh", "-c"],
        parameters=[MAKE_SCRIPT],
        result_paths={"outputs": "/outputs"},
        publisher=MANAGED,
        timeouts={"ExecutionTimeout": 300},
        poll_interval=POLL_INTERVAL,
    )

    # [START howto_operator_bacalhau_s3managed_chain]
    check_and_sum = BacalhauDockerJobOperator(
        task_id="check_and_sum",
        image="{{ params.image }}",
        entrypoint=["sh", "-c"],
        parameters=[CHECK_SCRIPT],
        inputs=make_squares.output,
        # Where the managed archive of make_squares is unpacked and uploaded for this job.
        staging_bucket="{{ params.staging_bucket }}",
        result_paths={"outputs": "/outputs"},
        publisher=MANAGED,
        timeouts={"ExecutionTimeout": 300},
        poll_interval=POLL_INTERVAL,
    )
    # [END howto_operator_bacalhau_s3managed_chain]

    fetch_sum = BacalhauFetchResultsOperator(
        task_id="fetch_sum",
        results="{{ ti.xcom_pull(task_ids='check_and_sum') }}",
        destination="{{ params.download_dir }}/{{ dag.dag_id }}/{{ run_id }}",
    )
    check_and_sum >> fetch_sum

    @task
    def report(paths: list[str]) -> dict[str, int | str]:
        """Parse sum.txt from the fetched result and return its fields."""
        # One directory per fetched result (execution).
        found = [f for path in paths for f in sorted(Path(path).rglob("*")) if f.is_file()]
        sum_file = next((p for p in found if p.name == "sum.txt"), None)
        if sum_file is None:
            raise FileNotFoundError(f"sum.txt not found in the fetched results {paths}")
        fields = dict(line.split("=", 1) for line in sum_file.read_text().split())
        summary = {
            "count": int(fields["count"]),
            "sum_of_squares": int(fields["sum_of_squares"]),
            "checksum": fields["checksum"],
        }
        log.info("%s", summary)
        return summary

    report(fetch_sum.output)


if __name__ == "__main__":
    dag.test()
