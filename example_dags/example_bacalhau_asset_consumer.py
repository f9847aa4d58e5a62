"""Run a Bacalhau job on the result another DAG published: scheduled on its asset events.

``example_bacalhau_asset_consumer`` is scheduled on the asset alias ``bacalhau_example_report``,
to which ``example_bacalhau_asset_producer`` adds one asset per published result:

1. ``published_results`` reads the triggering asset events. Each carries the producer's published
   result in its extra (``bacalhau_result``: Bucket, Key, Endpoint... as the compute node reported
   them), which is a job input as it is; an event without it gives its URI. A run triggered by
   hand reads the ``result_uri`` param instead (an ``s3://bucket/prefix/`` to read).
2. ``sum_numbers`` (busybox) counts and sums the numbers of every ``numbers.txt`` it was given and
   publishes ``sum.txt`` as a gzip archive.
3. ``fetch_sum`` downloads it; ``report`` returns ``{"count": n, "sum": s, "sources": [...]}``.

The DAG is not paused on creation, so in a deployment it runs as soon as the producer publishes.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pendulum
from airflow.providers.common.compat.assets import AssetAlias
from airflow.providers.common.compat.sdk import DAG, Param, task

from airflow_provider_bacalhau.operators import (
    BacalhauDockerJobOperator,
    BacalhauFetchResultsOperator,
)

log = logging.getLogger(__name__)

POLL_INTERVAL = float(os.environ.get("BACALHAU_EXAMPLES_POLL_INTERVAL", "5"))
CONNECTIONS = {"bacalhau_conn_id": "bacalhau_default", "aws_conn_id": "aws_default"}
#: The producer's outlet (example_bacalhau_asset_producer.REPORT_ALIAS).
REPORT_ALIAS = "bacalhau_example_report"

SUM_SCRIPT = r"""
set -eu
files=$(find /inputs -type f -name numbers.txt | sort)
if [ -z "$files" ]; then echo "no numbers.txt under /inputs" >&2; find /inputs >&2; exit 2; fi
mkdir -p /outputs
cat $files | awk '{ n++; s += $1 } END { printf "count=%d sum=%d\n", n, s }' > /outputs/sum.txt
cat /outputs/sum.txt
"""

with DAG(
    dag_id="example_bacalhau_asset_consumer",
    description="Sum the numbers the producer published, on each of its asset events",
    doc_md=__doc__,
    schedule=[AssetAlias(REPORT_ALIAS)],
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    is_paused_upon_creation=False,
    tags=["bacalhau", "example", "assets"],
    default_args=CONNECTIONS,
    params={
        "result_uri": Param(
            "",
            type=["string", "null"],
            description="Manual runs only: an s3://bucket/prefix/ to read instead of the asset event",
        ),
        "bucket": Param(
            "bacalhau-results",
            type="string",
            description="Bucket this DAG's own result goes to",
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
            description="Any image with busybox sh and awk",
        ),
        "download_dir": Param(
            "/tmp/bacalhau-examples",
            type="string",
            description="Where results are fetched",
        ),
    },
) as dag:

    @task
    def published_results(triggering_asset_events=None, params=None) -> list:
        """The producer's published results, from the asset events that started this run."""
        inputs = []
        for event in (triggering_asset_events or {}).get(AssetAlias(REPORT_ALIAS), []):
            result = (event.extra or {}).get("bacalhau_result")
            # The result as published keeps the key's trailing "/" (a prefix); the asset URI lost it.
            inputs.append(result or event.asset.uri + "/")
            log.info(
                "Asset event %s from %s: %s",
                event.asset.uri,
                event.source_dag_id,
                result,
            )
        if not inputs and params["result_uri"]:
            inputs.append(params["result_uri"])
        if not inputs:
            raise ValueError(
                f"result_uri: no asset event of {REPORT_ALIAS!r} started this run; trigger "
                "example_bacalhau_asset_producer, or give result_uri for a manual run"
            )
        return inputs

    results = published_results()

    sum_numbers = BacalhauDockerJobOperator(
        task_id="sum_numbers",
        image="{{ params.image }}",
        entrypoint=["sh", "-c"],
        parameters=[SUM_SCRIPT],
        inputs=results,
        result_paths={"outputs": "/outputs"},
        publisher={
            "Type": "s3",
            "Params": {
                "Bucket": "{{ params.bucket }}",
                "Key": "asset-consumer/{jobID}/sum",
                "Region": "{{ params.s3_region }}",
                "Endpoint": "{{ params.s3_endpoint or '' }}",
                "Encoding": "gzip",
            },
        },
        timeouts={"ExecutionTimeout": 300},
        poll_interval=POLL_INTERVAL,
    )

    fetch_sum = BacalhauFetchResultsOperator(
        task_id="fetch_sum",
        results=sum_numbers.output,
        destination="{{ params.download_dir }}/{{ dag.dag_id }}/{{ run_id }}",
    )

    @task
    def report(paths: list[str], sources: list) -> dict:
        """Read sum.txt from the fetched result and return it with the inputs it came from."""
        found = [f for path in paths for f in sorted(Path(path).rglob("sum.txt"))]
        if not found:
            raise FileNotFoundError(f"sum.txt not found in the fetched results {paths}")
        fields = dict(part.split("=") for part in found[0].read_text().split())
        summary = {
            "count": int(fields["count"]),
            "sum": int(fields["sum"]),
            "sources": sources,
        }
        log.info("%d numbers, sum %d, from %s", summary["count"], summary["sum"], sources)
        return summary

    report(fetch_sum.output, results)


if __name__ == "__main__":
    dag.test()
