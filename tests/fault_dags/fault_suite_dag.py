"""The fault suite's DAG (benchmarks/fault_suite.py): one chain of Bacalhau jobs per map index.

Per chain: ``stage`` uploads the chain's file to S3; ``job_a`` upper-cases it and publishes to S3;
``job_b`` takes A's published result from XCom as its input and publishes a digest of it. Half of
the chains wait deferred and half in the worker (A and B alternate, so both kinds meet every
fault). ``verify`` fetches every chain's B result with the provider's fetch (checksums verified)
and compares it with :mod:`fault_suite_content`. Retries are generous: the suite kills workers,
the triggerer, the scheduler, the devstack and S3 on purpose, and a retry must re-attach.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import fault_suite_content as content
import pendulum
from airflow.providers.common.compat.sdk import DAG, Param, task

from airflow_provider_bacalhau.operators import BacalhauDockerJobOperator, BacalhauS3StageOperator

DAG_ID = "fault_suite"
POLL_INTERVAL = float(os.environ.get("FAULT_SUITE_POLL_INTERVAL", "1"))
RETRIES = int(os.environ.get("FAULT_SUITE_RETRIES", "6"))


def _publisher(stage: str) -> dict[str, Any]:
    return {
        "Type": "s3",
        "Params": {
            "Bucket": "{{ params.bucket }}",
            "Key": f"fault-suite/{stage}/{{jobID}}/{{executionID}}/",
            "Region": "us-east-1",
            "Encoding": "plain",
        },
    }


with DAG(
    dag_id=DAG_ID,
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={
        "bacalhau_conn_id": "bacalhau_default",
        "aws_conn_id": "aws_default",
        "retries": RETRIES,
        "retry_delay": timedelta(seconds=2),
    },
    params={
        "chains": Param(10, type="integer", minimum=1),
        "seed": Param(1, type="integer"),
        "bucket": Param("fault-suite", type="string"),
        "data_dir": Param("/tmp/fault-suite", type="string"),
    },
) as dag:

    @task
    def plan(params: dict[str, Any] | None = None, run_id: str | None = None) -> list[dict[str, Any]]:
        """Write each chain's input file; one stage call per chain."""
        assert params is not None and run_id is not None
        slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)
        root = Path(params["data_dir"], slug)
        calls = []
        for chain in range(params["chains"]):
            path = root / f"chain-{chain}" / content.INPUT_NAME
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content.chain_input(params["seed"], chain))
            calls.append({"local_paths": [str(path)], "prefix": f"fault-suite/staged/{slug}/{chain}/"})
        return calls

    stage = BacalhauS3StageOperator.partial(task_id="stage", bucket="{{ params.bucket }}").expand_kwargs(
        plan()
    )

    @task
    def a_args(staged: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{"inputs": spec, "deferrable": chain % 2 == 0} for chain, spec in enumerate(staged)]

    @task
    def b_args(results_a: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
        return [{"inputs": results, "deferrable": chain % 2 == 1} for chain, results in enumerate(results_a)]

    common = {
        "image": "busybox:1.37.0",
        "entrypoint": ["sh", "-c"],
        "result_paths": {"outputs": "/outputs"},
        "timeouts": {"ExecutionTimeout": 300},
        "poll_interval": POLL_INTERVAL,
        "timeout": 1800,
    }
    job_a = BacalhauDockerJobOperator.partial(
        task_id="job_a", parameters=[content.JOB_A_SCRIPT], publisher=_publisher("a"), **common
    ).expand_kwargs(a_args(stage.output))
    job_b = BacalhauDockerJobOperator.partial(
        task_id="job_b", parameters=[content.JOB_B_SCRIPT], publisher=_publisher("b"), **common
    ).expand_kwargs(b_args(job_a.output))

    @task
    def verify(results_b: list[list[dict[str, Any]]], params: dict[str, Any] | None = None) -> dict:
        """Fetch every chain's B result (the provider's fetch verifies checksums) and compare."""
        import tempfile

        from airflow_provider_bacalhau.dataplane.plane import S3DataPlane
        from airflow_provider_bacalhau.hooks.s3 import BacalhauS3Hook

        assert params is not None
        plane = S3DataPlane(BacalhauS3Hook(aws_conn_id="aws_default"))
        wrong = []
        with tempfile.TemporaryDirectory() as tmp:
            for chain, results in enumerate(results_b):
                if len(results) != 1:
                    wrong.append(f"chain {chain}: {len(results)} results")
                    continue
                path = Path(plane.fetch_result(results[0], Path(tmp, str(chain))))
                found = sorted(p for p in path.rglob(content.B_OUTPUT) if p.is_file())
                if not found or found[0].read_bytes() != content.expected_b(params["seed"], chain):
                    wrong.append(f"chain {chain}: {content.B_OUTPUT} missing or wrong")
        if wrong:
            raise ValueError(f"{len(wrong)} chain(s) wrong: {wrong[:10]}")
        return {"verified": len(results_b)}

    verify(job_b.output)
