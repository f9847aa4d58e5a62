"""Two views of S3: Airflow reaches the S3 server at one address, the compute node at another.

A devstack of this module's own gives its compute node its own S3 address (``serve
--node-s3-endpoint URL --node-s3-forward``: a TCP forwarder to the session's SeaweedFS) and lets the
node reach S3 only there. A job spec that names Airflow's address fails at the node, as on a real
network; the provider must write the compute side's address into every spec it builds.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from airflow_helpers import airflow_db, run_dag, unique_dag_id  # noqa: F401 (airflow_db: fixture)
from devstack_helpers import JOBS, busybox_job, get_job, submit, wait_for

from airflow_provider_bacalhau.devstack import procs, stack
from airflow_provider_bacalhau.devstack.testing import Devstack

pytestmark = [pytest.mark.docker, pytest.mark.slow]

BUCKET = "two-views"


@pytest.fixture(scope="module")
def split(s3_server):
    """A devstack whose compute node reaches S3 only at its own address (not Airflow's)."""
    home = Path(tempfile.mkdtemp(prefix="bacalhau-devstack-split-"))
    node_endpoint = f"http://127.0.0.1:{procs.free_port()}"
    state = stack.up(
        home,
        api_port=0,
        s3_endpoint=s3_server.endpoint,
        die_with_parent=True,
        extra_args=["--node-s3-endpoint", node_endpoint, "--node-s3-forward"],
    )
    s3_server.keep_buckets.update((stack.MANAGED_BUCKET, stack.RESULTS_BUCKET, BUCKET))
    client = s3_server.client()
    if BUCKET not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
        client.create_bucket(Bucket=BUCKET)
    try:
        yield Devstack(state, s3_server), node_endpoint
    finally:
        stack.down(home, stop_engine=False)
        shutil.rmtree(home, ignore_errors=True)


def s3_input(key: str, endpoint: str | None) -> dict:
    params = {"Bucket": BUCKET, "Key": key}
    if endpoint is not None:
        params["Endpoint"] = endpoint
    return {"Target": "/in", "Source": {"Type": "s3", "Params": params}}


def last_execution(body: dict) -> dict:
    return sorted(body["Executions"]["Items"], key=lambda e: e["ModifyTime"])[-1]


def test_the_node_reaches_s3_only_at_its_own_address(split, s3_server):
    stackhandle, node_endpoint = split
    key = f"reach/{uuid.uuid4().hex[:8]}.txt"
    s3_server.client().put_object(Bucket=BUCKET, Key=key, Body=b"seen by the node\n")
    with httpx.Client(base_url=stackhandle.api_url, timeout=30) as api:
        # Airflow's address is not the node's: the node cannot connect there.
        job = busybox_job("cat /in/*", InputSources=[s3_input(key, s3_server.endpoint)])
        failed = wait_for(api, submit(api, job)["JobID"], timeout=60)
        assert failed["Job"]["State"]["StateType"] == "Failed"
        message = last_execution(failed)["ComputeState"]["Message"]
        host_port = s3_server.endpoint.split("://", 1)[1]
        assert f"dial tcp {host_port}: connect: connection refused" in message, message
        assert "operation error S3: HeadObject" in message
        assert "RunOutput" not in last_execution(failed) or not last_execution(failed)["RunOutput"]
        # Its own address works (through the forwarder to the same SeaweedFS), and so does no
        # Endpoint at all: the node's default is its own view.
        for endpoint in (node_endpoint, None):
            ok = wait_for(
                api,
                submit(api, busybox_job("cat /in/*", InputSources=[s3_input(key, endpoint)]))["JobID"],
                timeout=60,
            )
            assert ok["Job"]["State"]["StateType"] == "Completed", last_execution(ok)["ComputeState"]
            assert last_execution(ok)["RunOutput"]["Stdout"] == "seen by the node\n"
        # Publishing to Airflow's address fails the same way, after the run.
        publish_there = busybox_job(
            "echo hi",
            Publisher={
                "Type": "s3",
                "Params": {
                    "Bucket": BUCKET,
                    "Key": "reach/out/{executionID}",
                    "Endpoint": s3_server.endpoint,
                },
            },
        )
        failed = wait_for(api, submit(api, publish_there)["JobID"], timeout=60)
        message = last_execution(failed)["ComputeState"]["Message"]
        assert failed["Job"]["State"]["StateType"] == "Failed"
        assert "failed to publish result" in message and "connection refused" in message, message


def test_job_specs_carry_the_compute_side_endpoint_not_airflows(
    split,
    s3_server,
    airflow_db,  # noqa: F811
    monkeypatch,
    tmp_path,
):
    """Stage, run with an s3:// input and an s3 publisher, re-stage the archive into a second
    job: every S3 address in both specs is the node's, and both jobs succeed on it."""
    from airflow.providers.common.compat.sdk import DAG

    from airflow_provider_bacalhau.operators import BacalhauDockerJobOperator
    from airflow_provider_bacalhau.operators.s3 import BacalhauS3StageOperator

    stackhandle, node_endpoint = split
    monkeypatch.setenv(
        "AIRFLOW_CONN_BACALHAU_DEFAULT",
        stackhandle.bacalhau_conn_json(s3_endpoint=node_endpoint, s3_region=s3_server.region),
    )
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", s3_server.aws_conn_json())  # Airflow's view
    run = uuid.uuid4().hex[:8]
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.txt").write_text("staged\n")
    s3_server.client().put_object(Bucket=BUCKET, Key=f"raw/{run}/b.txt", Body=b"uri\n")

    with DAG(unique_dag_id("two_views"), schedule=None, start_date=datetime(2024, 1, 1)) as dag:
        stage = BacalhauS3StageOperator(
            task_id="stage", local_paths=str(tmp_path / "data"), bucket=BUCKET, prefix=f"staged/{run}"
        )
        first = BacalhauDockerJobOperator(
            task_id="first",
            image="busybox",
            entrypoint=["sh", "-c"],
            parameters="cat /inputs/0/a.txt /inputs/1/b.txt > /outputs/both.txt",
            inputs=[stage.output, f"s3://{BUCKET}/raw/{run}/"],
            publisher=f"s3://{BUCKET}/out/{run}/{{executionID}}",
            node_support_check="fail",
            poll_interval=0.5,
            deferrable=False,
        )
        second = BacalhauDockerJobOperator(
            task_id="second",
            image="busybox",
            entrypoint=["sh", "-c"],
            parameters="cat /inputs/outputs/both.txt",
            inputs=first.output,
            staging_bucket=BUCKET,
            poll_interval=0.5,
            deferrable=False,
        )
        stage >> first >> second
    result = run_dag(dag)
    assert result.state == "success", result.ti_states

    assert result.xcom("stage")["Params"]["Endpoint"] == node_endpoint
    with httpx.Client(base_url=stackhandle.api_url, timeout=30) as api:
        for task in ("first", "second"):
            job_id = result.xcom(task, key="bacalhau_job_id")
            spec = api.get(f"{JOBS}/{job_id}").json()["Job"]
            places = [s["Source"]["Params"] for s in spec["Tasks"][0]["InputSources"]]
            if spec["Tasks"][0].get("Publisher", {}).get("Type") == "s3":
                places.append(spec["Tasks"][0]["Publisher"]["Params"])
            assert places and {p.get("Endpoint") for p in places} == {node_endpoint}, places
            assert s3_server.endpoint not in json.dumps(spec)
        second_id = result.xcom("second", key="bacalhau_job_id")
        out = last_execution(get_job(api, second_id))["RunOutput"]["Stdout"]
    assert out == "staged\nuri\n"
