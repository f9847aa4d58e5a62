"""BacalhauS3StageOperator and BacalhauFetchResultsOperator inside a real DAG run (dag.test())
against the devstack."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from pathlib import Path

import pytest
from airflow_helpers import airflow_db, run_dag, unique_dag_id  # noqa: F401 (airflow_db: fixture)
from test_dataplane_devstack import (  # noqa: F401 (env: fixture)
    BUCKET,
    FAKE_SECRET,
    PUBLISHERS,
    WRITE,
    env,
    run_job,
)

from airflow_provider_bacalhau.client import BacalhauClient, ClientConfig
from airflow_provider_bacalhau.operators.s3 import (
    BacalhauFetchResultsOperator,
    BacalhauS3StageOperator,
)

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def test_stage_and_fetch_operators_in_a_dag(airflow_db, env, tmp_path):  # noqa: F811
    from airflow.providers.common.compat.sdk import DAG

    with BacalhauClient(ClientConfig(base_url=env.api_url)) as api:
        gzip_job = run_job(api, WRITE, publisher=PUBLISHERS["s3-gzip"])
    [gzip_result] = gzip_job.results
    (tmp_path / "data").mkdir()
    for name in ("a.txt", "b.txt", "skip.bin"):
        (tmp_path / "data" / name).write_text(name)
    prefix = f"ops/{uuid.uuid4().hex[:8]}"

    with DAG(
        unique_dag_id("dataplane_ops"), schedule=None, start_date=datetime(2024, 1, 1), params={"sub": "home"}
    ) as dag:
        BacalhauS3StageOperator(
            task_id="stage",
            local_paths=str(tmp_path / "data") + "/*.txt",
            bucket=BUCKET,
            prefix=prefix + "/{{ params.sub }}",
        )
        BacalhauS3StageOperator(
            task_id="stage_nodes",
            local_paths=str(tmp_path / "data") + "/a.txt",
            bucket=BUCKET,
            prefix=prefix + "/nodes",
            s3_endpoint="http://s3.nodes.internal:{{ 8000 + 333 }}",
            s3_region="eu-central-1",
        )
        BacalhauFetchResultsOperator(
            task_id="fetch", job_id=gzip_job.job_id, destination=str(tmp_path) + "/{{ params.sub }}"
        )
        BacalhauFetchResultsOperator(
            task_id="restage",
            results=[gzip_result.to_dict()],
            restage_to=f"s3://{BUCKET}/ops-restaged/",
            s3_endpoint="http://s3.nodes.internal:8333",
        )
    run = run_dag(dag)
    assert run.state == "success", run.ti_states

    # The XCom spec is a job input: S3 as the nodes see it (the Bacalhau connection names no
    # s3_endpoint here), never the AWS connection's endpoint.
    assert run.xcom("stage") == {"Type": "s3", "Params": {"Bucket": BUCKET, "Key": f"{prefix}/home/"}}
    nodes = run.xcom("stage_nodes")["Params"]
    assert (nodes["Endpoint"], nodes["Region"]) == ("http://s3.nodes.internal:8333", "eu-central-1")
    listed = env.s3_client().list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/home/")
    assert sorted(o["Key"] for o in listed["Contents"]) == [f"{prefix}/home/a.txt", f"{prefix}/home/b.txt"]

    paths = run.xcom("fetch")
    assert paths == [str(tmp_path / "home" / gzip_result.execution_id)]
    assert (Path(paths[0]) / "outputs" / "a.txt").read_text() == "hello\n"

    [spec] = run.xcom("restage")
    assert spec["Params"]["Key"].startswith("ops-restaged/") and spec["Params"]["Key"].endswith("/")
    assert spec["Params"]["Endpoint"] == "http://s3.nodes.internal:8333"
    everything = json.dumps([run.xcom(t) for t in ("stage", "fetch", "restage")])
    assert FAKE_SECRET not in everything


def test_fetch_operator_reads_the_bacalhau_connection_once(env, monkeypatch):  # noqa: F811
    from airflow_provider_bacalhau.hooks.bacalhau import BacalhauHook

    reads: list[str] = []
    original = BacalhauHook.get_connection.__func__

    def counting(cls, conn_id):
        reads.append(conn_id)
        return original(cls, conn_id)

    with BacalhauClient(ClientConfig(base_url=env.api_url)) as api:
        managed = run_job(api, WRITE, publisher=PUBLISHERS["s3managed"])
    monkeypatch.setattr(BacalhauHook, "get_connection", classmethod(counting))
    # Results from the API, a fresh s3managed URL and the compute-side view: one connection read.
    op = BacalhauFetchResultsOperator(
        task_id="fetch_once", job_id=managed.job_id, restage_to=f"s3://{BUCKET}/once-restaged/"
    )
    [spec] = op.execute({})
    assert spec["Params"]["Key"].startswith("once-restaged/")
    assert reads == ["bacalhau_default"]
