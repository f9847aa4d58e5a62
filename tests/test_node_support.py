"""Before a submit: does some compute node report the job's engine, sources and publisher installed?

v1.9.3 accepts a job no node can run and fails it later with "not enough nodes"; a node without
AWS credentials reports no ``s3`` source or publisher. The devstack's node can be started without
credentials (``serve --node-aws-credentials none``) to show it.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import pytest
from airflow.providers.common.compat.sdk import AirflowException
from airflow_helpers import FakeTaskInstance, fake_context, record_logs

from airflow_provider_bacalhau.client import AsyncBacalhauClient, BacalhauClient, ClientConfig
from airflow_provider_bacalhau.client.core import ENDPOINTS
from airflow_provider_bacalhau.devstack import stack
from airflow_provider_bacalhau.devstack.testing import Devstack
from airflow_provider_bacalhau.errors import NodeSupportError
from airflow_provider_bacalhau.operators import BacalhauJobOperator
from airflow_provider_bacalhau.operators._node_support import missing_support, needed_parts

NOOP_S3_JOB = {"Type": "batch", "Count": 1, "Tasks": [{"Name": "main", "Engine": {"Type": "noop"}}]}
API_KEY = "node-support-key-0123456789"


def node_state(
    sources=("s3", "urldownload"),
    publishers=("s3", "local"),
    engines=("docker",),
    membership="APPROVED",
    status="CONNECTED",
    node_type="Compute",
) -> dict:
    return {
        "Info": {
            "NodeID": "n",
            "NodeType": node_type,
            "ComputeNodeInfo": {
                "ExecutionEngines": list(engines),
                "Publishers": list(publishers),
                "StorageSources": list(sources),
            },
        },
        "Membership": membership,
        "Connection": status,
        "ConnectionState": {"Status": status},
    }


def s3_docker_job(publisher: str = "s3") -> dict:
    return {
        "Name": "j",
        "Tasks": [
            {
                "Name": "main",
                "Engine": {"Type": "docker"},
                "InputSources": [
                    {"Target": "/i", "Source": {"Type": "urlDownload"}},
                    {"Target": "/j", "Source": {"Type": "s3"}},
                ],
                "Publisher": {"Type": publisher},
            }
        ],
    }


def test_needed_parts_and_the_decision():
    needed = needed_parts(s3_docker_job())
    assert needed == [
        ("engine", "docker"),
        ("input source", "urlDownload"),
        ("input source", "s3"),
        ("publisher", "s3"),
    ]
    # Keys are compared as the node keeps them: lower case.
    assert missing_support([node_state()], needed) is None
    no_s3 = node_state(sources=("urldownload",), publishers=("local",))
    reason = missing_support([no_s3], needed)
    assert "input source 's3', publisher 's3'" in reason and "without AWS credentials" in reason
    # Parts spread over two nodes: no single one can take the job.
    split = [node_state(publishers=("local",)), node_state(sources=("urldownload",))]
    assert missing_support(split, needed).startswith("no single compute node (of 2)")
    # Only approved, connected compute nodes count.
    for other in (
        node_state(membership="PENDING"),
        node_state(status="DISCONNECTED"),
        node_state(node_type="Requester"),
    ):
        assert "no approved, connected compute node" in missing_support([other], needed)
    assert needed_parts({"Tasks": [{"Engine": {"Type": "docker"}, "Publisher": {"Type": ""}}]}) == [
        ("engine", "docker")
    ]


def test_both_clients_list_nodes_as_node_states(devstack):
    assert "list_nodes" in ENDPOINTS
    with BacalhauClient(ClientConfig(base_url=devstack.api_url)) as client:
        [node] = client.list_nodes()
        agent = client.node_info()
    info = node["Info"]
    assert (node["Membership"], node["Connection"], node["ConnectionState"]["Status"]) == (
        "APPROVED",
        "CONNECTED",
        "CONNECTED",
    )
    assert info["NodeType"] == agent["NodeType"] == "Compute"  # hybrid node, decorated as compute
    assert {"s3", "urldownload", "local"} <= set(info["ComputeNodeInfo"]["StorageSources"])
    assert {"s3", "s3managed"} <= set(info["ComputeNodeInfo"]["Publishers"])
    assert info["ComputeNodeInfo"]["StorageSources"] == agent["ComputeNodeInfo"]["StorageSources"]

    import asyncio

    async def listed() -> list:
        async with AsyncBacalhauClient(ClientConfig(base_url=devstack.api_url)) as client:
            return await client.list_nodes(**{"filter-status": "DISCONNECTED"})

    assert asyncio.run(listed()) == []


@pytest.fixture(scope="module")
def bare_node(s3_server):
    """A devstack whose compute node has no AWS credentials (API only: noop jobs)."""
    home = Path(tempfile.mkdtemp(prefix="bacalhau-devstack-nocreds-"))
    state = stack.up(
        home,
        api_port=0,
        s3_endpoint=s3_server.endpoint,
        with_engine=False,
        die_with_parent=True,
        extra_args=["--node-aws-credentials", "none", "--queue-backoff", "0.2"],
    )
    try:
        yield Devstack(state, s3_server)
    finally:
        stack.down(home, stop_engine=False)
        shutil.rmtree(home, ignore_errors=True)


def run_op(monkeypatch, stackhandle, conn_extra=None, **kwargs):
    monkeypatch.setenv("AIRFLOW_CONN_BACALHAU_DEFAULT", stackhandle.bacalhau_conn_json(**(conn_extra or {})))
    ti = FakeTaskInstance(dag_id="nodes", task_id="run", run_id=f"run-{time.time_ns()}")
    op = BacalhauJobOperator(
        task_id="run",
        job=NOOP_S3_JOB,
        inputs="s3://some-bucket/in/",
        aws_conn_id=None,
        poll_interval=0.2,
        deferrable=False,
        **kwargs,
    )
    with record_logs() as logs:
        try:
            return op.execute(fake_context(ti)), logs, ti
        except Exception as exc:  # noqa: BLE001 - the outcome is what the tests look at
            return exc, logs, ti


def test_node_credentials_modes(monkeypatch):
    from airflow_provider_bacalhau.devstack.__main__ import _node_credentials

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "from-env-id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "from-env-secret")
    assert _node_credentials("env") == {
        "node_aws_access_key_id": "from-env-id",
        "node_aws_secret_access_key": "from-env-secret",
    }
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    assert _node_credentials("env")["node_aws_secret_access_key"] == ""  # half a pair: no credentials
    assert _node_credentials("none") == {"node_aws_access_key_id": "", "node_aws_secret_access_key": ""}
    assert _node_credentials("devstack") == {}  # the server's own identity


def test_node_without_aws_credentials_reports_no_s3(bare_node):
    with BacalhauClient(ClientConfig(base_url=bare_node.api_url)) as client:
        [node] = client.list_nodes()
        agent = client.node_info()
    for info in (node["Info"]["ComputeNodeInfo"], agent["ComputeNodeInfo"]):
        assert "s3" not in info["StorageSources"] and "s3" not in info["Publishers"]
        assert "urldownload" in info["StorageSources"]


def test_fail_mode_refuses_before_submitting(bare_node, monkeypatch):
    before = len(bare_node.jobs())
    outcome, logs, ti = run_op(monkeypatch, bare_node, node_support_check="fail")
    assert isinstance(outcome, NodeSupportError)  # typed: callbacks can tell it apart
    assert "no compute node (of 1) reports input source 's3' as installed" in str(outcome)
    assert "not enough nodes" in str(outcome) and "AWS credentials" in str(outcome)
    assert "bacalhau_job_id" not in ti.xcoms and len(bare_node.jobs()) == before  # nothing submitted


def test_warn_mode_warns_then_bacalhau_fails_the_job(bare_node, monkeypatch):
    outcome, logs, ti = run_op(monkeypatch, bare_node, timeout=60)
    warnings = [m for m in logs.messages("warning") if "reports input source 's3'" in m]
    assert warnings and "node_support_check='warn'" in warnings[0]
    assert "bacalhau_job_id" in ti.xcoms  # submitted anyway
    assert isinstance(outcome, AirflowException) and "does not support s3" in str(outcome)


def test_listing_refused_is_logged_and_the_job_goes_on(bare_node, monkeypatch):
    # A key without read:node: the check cannot look, so it steps aside.
    bare_node.set_auth([{"api_key": API_KEY, "capabilities": ["read:job", "write:job", "read:agent"]}])
    try:
        outcome, logs, ti = run_op(
            monkeypatch, bare_node, conn_extra={"password": API_KEY}, node_support_check="fail", timeout=60
        )
    finally:
        bare_node.clear_auth()
    assert any("Could not list the network's nodes" in m and "403" in m for m in logs.messages("warning")), (
        logs.text
    )
    assert "bacalhau_job_id" in ti.xcoms
    assert isinstance(outcome, AirflowException) and "does not support s3" in str(outcome)
    assert json.dumps(logs.messages()).find(API_KEY) < 0
