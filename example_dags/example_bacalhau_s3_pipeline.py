"""Stage a CSV into S3, transform it on Bacalhau, aggregate the result in a second job, fetch it.

``example_bacalhau_s3_pipeline`` is the chaining recipe end to end:

1. ``stage_sales`` uploads ``data/sales.csv`` (360 committed orders, some with messy region
   names and a few broken rows) to ``s3://{bucket}/{stage_prefix}`` through the AWS connection.
2. ``clean_sales`` (job A, busybox) drops broken rows, normalises region names, adds a revenue
   column and publishes ``/outputs`` with the S3 publisher, ``Encoding: plain``, under
   ``results/{jobID}/{date}/``: one object per file, so the next job can read them as they are.
   (``Encoding: gzip`` would publish one ``.tar.gz``; the provider would then re-stage it for
   job B, as the s3managed example shows.)
3. ``sum_by_region`` (job B) takes A's published result straight from XCom
   (``inputs=clean_sales.output``), totals orders, units and revenue per region with awk and
   publishes a gzip archive.
4. ``fetch_totals`` downloads and unpacks B's archive; ``report`` logs the totals and returns
   them (``{"North": {"orders": .., "units": .., "revenue_cents": ..}, ...}``).

Every setting is a DAG param, so the same file runs against the devstack (the defaults) or a real
Bacalhau network: trigger it with another ``bucket`` / ``s3_region`` / ``s3_endpoint`` / ``image``
and point the ``bacalhau_default`` and ``aws_default`` connections (or the conn-id params) at
your orchestrator and your S3. Compute nodes read and write S3 with their own credentials;
the AWS connection is only used on the Airflow side (staging and fetching).

Run it locally with ``python example_dags/example_bacalhau_s3_pipeline.py`` once the
connections exist (``python -m airflow_provider_bacalhau.devstack up`` prints them).
"""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path

import pendulum
from airflow.providers.common.compat.sdk import DAG, Param, task

from airflow_provider_bacalhau.operators import (
    BacalhauDockerJobOperator,
    BacalhauFetchResultsOperator,
    BacalhauS3StageOperator,
)

log = logging.getLogger(__name__)

DATA_DIR = Path(__file__).resolve().parent / "data"
# How often a waiting task (or its trigger) asks the API for the job state, in seconds.
POLL_INTERVAL = float(os.environ.get("BACALHAU_EXAMPLES_POLL_INTERVAL", "5"))
# Connection ids are templated fields of every operator (e.g. "{{ var.value.bacalhau_conn }}"
# works too); set yours here.
CONNECTIONS = {"bacalhau_conn_id": "bacalhau_default", "aws_conn_id": "aws_default"}

# Job A: keep well-formed rows only, normalise the region ("  NORTH " -> "North"),
# add revenue = units * unit price. The input may sit anywhere under /inputs.
CLEAN_SCRIPT = r"""
set -eu
src=$(find /inputs -type f -name 'sales*.csv' | sort | head -n 1)
if [ -z "$src" ]; then echo "no sales CSV under /inputs" >&2; exit 2; fi
mkdir -p /outputs
awk -F, -v OFS=, '
  NR == 1 { print "region,product,units,revenue_cents"; next }
  /^#/ { next }
  {
    region = $3; gsub(/^ +| +$/, "", region)
    region = toupper(substr(region, 1, 1)) tolower(substr(region, 2))
    if (region == "" || $5 !~ /^[0-9]+$/ || $5 == 0 || $6 !~ /^[0-9]+$/) { dropped++; next }
    print region, $4, $5, $5 * $6
    kept++
  }
  END { printf "kept %d rows, dropped %d\n", kept, dropped > "/dev/stderr" }
' "$src" > /outputs/clean.csv
wc -l /outputs/clean.csv
"""

# Job B: totals per region from job A's clean.csv, sorted by region.
SUM_SCRIPT = r"""
set -eu
src=$(find /inputs -type f -name clean.csv | sort | head -n 1)
if [ -z "$src" ]; then echo "job A's clean.csv is missing under /inputs" >&2; exit 2; fi
mkdir -p /outputs
{
  echo "region,orders,units,revenue_cents"
  awk -F, 'NR > 1 { orders[$1]++; units[$1] += $3; revenue[$1] += $4 }
    END { for (r in orders) printf "%s,%d,%d,%d\n", r, orders[r], units[r], revenue[r] }' "$src" | sort
} > /outputs/totals.csv
cat /outputs/totals.csv
"""


def _s3_publisher(key: str, encoding: str) -> dict:
    """An S3 publisher spec whose bucket, region and endpoint come from the DAG params."""
    return {
        "Type": "s3",
        "Params": {
            "Bucket": "{{ params.bucket }}",
            "Key": key,
            "Region": "{{ params.s3_region }}",
            "Endpoint": "{{ params.s3_endpoint or '' }}",
            "Encoding": encoding,
        },
    }


with DAG(
    dag_id="example_bacalhau_s3_pipeline",
    description="Stage sales data, clean it (job A), total it per region (job B), fetch the totals",
    doc_md=__doc__,
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    tags=["bacalhau", "example"],
    default_args=CONNECTIONS,
    params={
        "bucket": Param("bacalhau-results", type="string", description="Bucket for staged data and results"),
        "stage_prefix": Param("staging/sales/", type="string", description="Where the dataset is staged"),
        "s3_region": Param("us-east-1", type="string"),
        "s3_endpoint": Param(
            "",
            type=["string", "null"],
            description="S3 endpoint of the compute nodes; empty: AWS (or the devstack's S3)",
        ),
        "image": Param("busybox:1.37.0", type="string", description="Any image with busybox sh and awk"),
        "download_dir": Param(
            "/tmp/bacalhau-examples", type="string", description="Where results are fetched"
        ),
    },
) as dag:
    # [START howto_operator_bacalhau_s3_stage]
    stage_sales = BacalhauS3StageOperator(
        task_id="stage_sales",
        local_paths=[str(DATA_DIR / "sales.csv")],
        bucket="{{ params.bucket }}",
        prefix="{{ params.stage_prefix }}",
        # The staged spec is job A's input: S3 as the compute nodes see it, like the publishers.
        s3_endpoint="{{ params.s3_endpoint or '' }}",
        s3_region="{{ params.s3_region }}",
    )
    # [END howto_operator_bacalhau_s3_stage]

    # [START howto_operator_bacalhau_docker_job]
    clean_sales = BacalhauDockerJobOperator(
        task_id="clean_sales",
        image="{{ params.image }}",
        entrypoint=["sh", "-c"],
        parameters=[CLEAN_SCRIPT],
        inputs=stage_sales.output,
        result_paths={"outputs": "/outputs"},
        # {jobID} and {date} are Bacalhau placeholders, filled in by the compute node.
        publisher=_s3_publisher("results/{jobID}/{date}", "plain"),
        timeouts={"ExecutionTimeout": 300},
        poll_interval=POLL_INTERVAL,
    )
    # [END howto_operator_bacalhau_docker_job]

    # [START howto_operator_bacalhau_chain_results]
    sum_by_region = BacalhauDockerJobOperator(
        task_id="sum_by_region",
        image="{{ params.image }}",
        entrypoint=["sh", "-c"],
        parameters=[SUM_SCRIPT],
        # A's published results (a list of PublishedResult dicts) become B's inputs.
        inputs=clean_sales.output,
        result_paths={"outputs": "/outputs"},
        publisher=_s3_publisher("results/{jobID}/{date}/totals", "gzip"),
        timeouts={"ExecutionTimeout": 300},
        poll_interval=POLL_INTERVAL,
    )
    # [END howto_operator_bacalhau_chain_results]

    # [START howto_operator_bacalhau_fetch_results]
    fetch_totals = BacalhauFetchResultsOperator(
        task_id="fetch_totals",
        results=sum_by_region.output,
        destination="{{ params.download_dir }}/{{ dag.dag_id }}/{{ run_id }}",
    )
    # [END howto_operator_bacalhau_fetch_results]

    @task
    def report(paths: list[str]) -> dict[str, dict[str, int]]:
        """Read totals.csv from the fetched results, log it and return it."""
        # One directory per fetched result (execution), holding outputs/totals.csv.
        found = [f for path in paths for f in sorted(Path(path).rglob("totals.csv"))]
        if not found:
            raise FileNotFoundError(f"totals.csv not found in the fetched results {paths}")
        with found[0].open(newline="") as handle:
            totals = {
                row["region"]: {k: int(row[k]) for k in ("orders", "units", "revenue_cents")}
                for row in csv.DictReader(handle)
            }
        for region, row in totals.items():
            log.info(
                "%-8s %4d orders %6d units %12.2f revenue",
                region,
                row["orders"],
                row["units"],
                row["revenue_cents"] / 100,
            )
        log.info("all regions: %.2f revenue", sum(r["revenue_cents"] for r in totals.values()) / 100)
        return totals

    report(fetch_totals.output)


if __name__ == "__main__":
    dag.test()
