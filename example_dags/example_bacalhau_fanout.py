"""Fan out one Bacalhau job per data partition with dynamic task mapping, then fan in.

``example_bacalhau_fanout`` summarises three days of weather-station readings
(``data/readings/day-*.csv``: station, hour, temperature in tenths of a degree):

1. ``stage_day`` is the stage operator *mapped* over the partition files: one upload per day,
   each under its own prefix, each returning one input spec.
2. ``summarise_day`` is the Docker job operator mapped over those specs
   (``.partial(...).expand(inputs=stage_day.output)``): one Bacalhau job per day computing
   count, sum, min and max per station, published as plain S3 objects.
3. ``flatten`` turns the mapped jobs' results (a list of lists of published results) into one
   list, and ``combine_days`` gets them all as inputs (one directory per result under
   ``/inputs``), merging the per-day figures into per-station figures for the whole period.
4. ``fetch_combined`` downloads the combined result; ``report`` returns
   ``{"harbour": {"readings": .., "sum": .., "min": .., "max": ..}, ...}``.

Params pick the bucket, S3 region/endpoint and image; see the s3_pipeline example for running
against a real network.
"""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path
from typing import Any

import pendulum
from airflow.providers.common.compat.sdk import DAG, Param, task

from airflow_provider_bacalhau.operators import (
    BacalhauDockerJobOperator,
    BacalhauFetchResultsOperator,
    BacalhauS3StageOperator,
)

log = logging.getLogger(__name__)

PARTITIONS = sorted((Path(__file__).resolve().parent / "data" / "readings").glob("day-*.csv"))
POLL_INTERVAL = float(os.environ.get("BACALHAU_EXAMPLES_POLL_INTERVAL", "5"))
# Connection ids are templated fields of every operator (e.g. "{{ var.value.bacalhau_conn }}"
# works too); set yours here.
CONNECTIONS = {"bacalhau_conn_id": "bacalhau_default", "aws_conn_id": "aws_default"}

# Per partition: station,readings,sum,min,max
SUMMARISE_SCRIPT = r"""
set -eu
src=$(find /inputs -type f -name 'day-*.csv' | head -n 1)
if [ -z "$src" ]; then echo "no day-*.csv under /inputs" >&2; exit 2; fi
mkdir -p /outputs
awk -F, 'NR > 1 {
    s = $1; t = $3 + 0
    if (!(s in n) || t < lo[s]) lo[s] = t
    if (!(s in n) || t > hi[s]) hi[s] = t
    n[s]++; total[s] += t
  }
  END { for (s in n) printf "%s,%d,%d,%d,%d\n", s, n[s], total[s], lo[s], hi[s] }' "$src" \
  | sort > /outputs/partial.csv
echo "$(basename "$src"): $(wc -l < /outputs/partial.csv) stations"
"""

# Fan in: merge every partial.csv found under /inputs (one directory per upstream result).
COMBINE_SCRIPT = r"""
set -eu
parts=$(find /inputs -type f -name partial.csv | sort)
if [ -z "$parts" ]; then echo "no partial.csv under /inputs" >&2; exit 2; fi
echo "merging $(echo "$parts" | wc -l) partitions"
mkdir -p /outputs
{
  echo "station,readings,sum,min,max"
  cat $parts | awk -F, '{
      s = $1
      if (!(s in n) || $4 < lo[s]) lo[s] = $4
      if (!(s in n) || $5 > hi[s]) hi[s] = $5
      n[s] += $2; total[s] += $3
    }
    END { for (s in n) printf "%s,%d,%d,%d,%d\n", s, n[s], total[s], lo[s], hi[s] }' | sort
} > /outputs/stations.csv
cat /outputs/stations.csv
"""

PUBLISHER = {
    "Type": "s3",
    "Params": {
        "Bucket": "{{ params.bucket }}",
        "Key": "fanout/{jobID}/{executionID}",
        "Region": "{{ params.s3_region }}",
        "Endpoint": "{{ params.s3_endpoint or '' }}",
        "Encoding": "plain",
    },
}

with DAG(
    dag_id="example_bacalhau_fanout",
    description="One Bacalhau job per partition (dynamic task mapping), then one job over all results",
    doc_md=__doc__,
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    tags=["bacalhau", "example"],
    default_args=CONNECTIONS,
    params={
        "bucket": Param("bacalhau-results", type="string"),
        "stage_prefix": Param("staging/readings", type="string", description="Day N goes to <prefix>/day-N/"),
        "s3_region": Param("us-east-1", type="string"),
        "s3_endpoint": Param(
            "", type=["string", "null"], description="Empty means AWS (or the devstack's S3)"
        ),
        "image": Param("busybox:1.37.0", type="string"),
        "download_dir": Param("/tmp/bacalhau-examples", type="string"),
    },
) as dag:
    # [START howto_operator_bacalhau_mapped]
    stage_day = BacalhauS3StageOperator.partial(
        task_id="stage_day",
        bucket="{{ params.bucket }}",
    ).expand_kwargs(
        [
            {"local_paths": [str(path)], "prefix": "{{ params.stage_prefix }}/" + path.stem + "/"}
            for path in PARTITIONS
        ]
    )

    summarise_day = BacalhauDockerJobOperator.partial(
        task_id="summarise_day",
        image="{{ params.image }}",
        entrypoint=["sh", "-c"],
        parameters=[SUMMARISE_SCRIPT],
        result_paths={"outputs": "/outputs"},
        publisher=PUBLISHER,
        timeouts={"ExecutionTimeout": 300},
        poll_interval=POLL_INTERVAL,
    ).expand(inputs=stage_day.output)
    # [END howto_operator_bacalhau_mapped]

    @task
    def flatten(results_per_job: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
        """One list of published results out of the mapped jobs' lists."""
        return [result for results in results_per_job for result in results]

    combine_days = BacalhauDockerJobOperator(
        task_id="combine_days",
        image="{{ params.image }}",
        entrypoint=["sh", "-c"],
        parameters=[COMBINE_SCRIPT],
        inputs=flatten(summarise_day.output),
        result_paths={"outputs": "/outputs"},
        publisher=PUBLISHER,
        timeouts={"ExecutionTimeout": 300},
        poll_interval=POLL_INTERVAL,
    )

    fetch_combined = BacalhauFetchResultsOperator(
        task_id="fetch_combined",
        results=combine_days.output,
        destination="{{ params.download_dir }}/{{ dag.dag_id }}/{{ run_id }}",
    )

    @task
    def report(paths: list[str]) -> dict[str, dict[str, int]]:
        """Return the per-station figures of the whole period."""
        # One directory per fetched result (execution).
        found = [f for path in paths for f in sorted(Path(path).rglob("*")) if f.is_file()]
        stations_csv = next((p for p in found if p.name == "stations.csv"), None)
        if stations_csv is None:
            raise FileNotFoundError(f"stations.csv not found in the fetched results {paths}")
        with stations_csv.open(newline="") as handle:
            stations = {
                row["station"]: {k: int(row[k]) for k in ("readings", "sum", "min", "max")}
                for row in csv.DictReader(handle)
            }
        for name, row in stations.items():
            log.info(
                "%-8s %3d readings, mean %.1f C, min %.1f C, max %.1f C",
                name,
                row["readings"],
                row["sum"] / row["readings"] / 10,
                row["min"] / 10,
                row["max"] / 10,
            )
        return stations

    report(fetch_combined.output)


if __name__ == "__main__":
    dag.test()
