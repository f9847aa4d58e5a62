"""Local-publisher results as v1.9.3 serves them: from the compute node's own address, on a port of
their own (``Publishers.Types.Local.Port``, default 6001), ``http://<Address>:<Port>/<executionID>.tar.gz``.
The devstack does the same; the provider fetches and re-stages them best effort, with an error
that says why and what to do when the node's address is out of reach."""

from __future__ import annotations

import io
import socket
import tarfile
import time
import uuid
from urllib.parse import urlsplit

import httpx
import pytest

from airflow_provider_bacalhau.dataplane.plane import S3DataPlane
from airflow_provider_bacalhau.devstack import local_results
from airflow_provider_bacalhau.devstack.testing import SECRET_IDENTITY
from airflow_provider_bacalhau.errors import ResultUnreachableError
from airflow_provider_bacalhau.hooks.s3 import BacalhauS3Hook


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# ---- the devstack's server -----------------------------------------------------------------


def test_port_6001_when_free_else_a_free_one_kept_for_restarts(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    holder = socket.socket()
    try:
        holder.bind(("127.0.0.1", local_results.DEFAULT_PORT))
        holder.listen(1)
    except OSError:  # 6001 is busy already (another devstack): the fallback is tested all the same
        pass
    try:
        first = local_results.choose_port(tmp_path / "a", "127.0.0.1")
        assert first != local_results.DEFAULT_PORT
        assert local_results.choose_port(tmp_path / "a", "127.0.0.1") == first  # remembered
        assert local_results.choose_port(tmp_path / "a", "127.0.0.1", configured=7123) == 7123
    finally:
        holder.close()
    if local_results._is_free("127.0.0.1", local_results.DEFAULT_PORT):
        assert local_results.choose_port(tmp_path / "b", "127.0.0.1") == 6001


def test_port_from_bacalhau_config_env(monkeypatch):
    monkeypatch.setenv(local_results.PORT_ENV, "7001")
    monkeypatch.setenv(local_results.ADDRESS_ENV, "localhost")
    assert (local_results.configured_port(), local_results.configured_address()) == (7001, "localhost")
    monkeypatch.setenv(local_results.PORT_ENV, "port")
    with pytest.raises(ValueError, match="BACALHAU_PUBLISHERS_TYPES_LOCAL_PORT"):
        local_results.configured_port()


def test_result_server_serves_the_directory_files(tmp_path):
    (tmp_path / "e-1.tar.gz").write_bytes(b"archive")
    port = _closed_port()
    server = local_results.LocalResultServer(tmp_path, "127.0.0.1", port).start()
    try:
        url = f"{local_results.base_url('127.0.0.1', port)}/e-1.tar.gz"
        assert httpx.get(url).content == b"archive"
        assert httpx.head(url).headers["content-length"] == "7"
        assert httpx.get(f"http://127.0.0.1:{port}/e-2.tar.gz").status_code == 404
    finally:
        server.stop()


# ---- through the devstack ------------------------------------------------------------------


def _run_local_job(devstack) -> dict:
    job = {
        "Name": f"local-{uuid.uuid4().hex[:8]}",
        "Type": "batch",
        "Count": 1,
        "Tasks": [
            {
                "Name": "main",
                "Publisher": {"Type": "local"},
                "ResultPaths": [{"Name": "outputs", "Path": "/outputs"}],
                "Engine": {
                    "Type": "docker",
                    "Params": {
                        "Image": "busybox",
                        "Entrypoint": ["sh", "-c"],
                        "Parameters": ["mkdir -p /outputs && echo local > /outputs/a.txt"],
                    },
                },
            }
        ],
    }
    with httpx.Client(base_url=devstack.api_url, timeout=30) as api:
        job_id = api.put("/api/v1/orchestrator/jobs", json={"Job": job})
        job_id = job_id.json()["JobID"]
        deadline = time.monotonic() + 60
        while True:
            body = api.get(f"/api/v1/orchestrator/jobs/{job_id}", params={"include": "executions"}).json()
            if body["Job"]["State"]["StateType"] in ("Completed", "Failed", "Stopped"):
                break
            assert time.monotonic() < deadline
            time.sleep(0.2)
    assert body["Job"]["State"]["StateType"] == "Completed", body["Job"]["State"]
    (execution,) = body["Executions"]["Items"]
    return execution


@pytest.mark.docker
def test_devstack_serves_local_results_at_the_nodes_own_port(devstack):
    execution = _run_local_job(devstack)
    result = execution["PublishedResult"]
    assert result["Type"] == "urlDownload"
    url = result["Params"]["URL"]
    info = httpx.get(f"{devstack.api_url}/devstack/v1/info").json()
    assert url == f"{info['LocalPublisherURL']}/{execution['ID']}.tar.gz"
    parts = urlsplit(url)
    assert (
        parts.hostname == "127.0.0.1"
        and parts.port != devstack.api_port
        and parts.path == f"/{execution['ID']}.tar.gz"
    )
    with tarfile.open(fileobj=io.BytesIO(httpx.get(url).content), mode="r:gz") as tar:
        assert tar.extractfile("outputs/a.txt").read() == b"local\n"
    devstack.restart()  # a restarted server keeps its port, so the URLs it gave out still work
    assert httpx.get(url).status_code == 200


# ---- the provider: best effort, with an error that says so ----------------------------------


@pytest.fixture
def hook(s3_server, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", s3_server.aws_conn_json(SECRET_IDENTITY))
    return BacalhauS3Hook()


@pytest.fixture
def unreachable_result():
    url = f"http://127.0.0.1:{_closed_port()}/e-{uuid.uuid4()}.tar.gz?X-Amz-Signature=not-for-logs"
    return {"Type": "urlDownload", "Params": {"URL": url}}


def _assert_says_why(error: ResultUnreachableError, url: str) -> None:
    text = str(error)
    assert url.split("?")[0] in text and error.url == url.split("?")[0]
    assert "not-for-logs" not in text and "X-Amz-Signature" not in text
    assert "compute node's own address" in text and "best effort" in text and "s3 publisher" in text


def test_fetching_an_unreachable_node_url_says_why(hook, unreachable_result, tmp_path):
    with pytest.raises(ResultUnreachableError) as caught:
        S3DataPlane(hook).fetch_result(unreachable_result, tmp_path / "dest")
    _assert_says_why(caught.value, unreachable_result["Params"]["URL"])
    assert list(tmp_path.iterdir()) == []


def test_restaging_an_unreachable_node_url_says_why(hook, s3_server, unreachable_result):
    bucket = f"local-{uuid.uuid4().hex[:8]}"
    s3_server.client().create_bucket(Bucket=bucket)
    with pytest.raises(ResultUnreachableError) as caught:
        S3DataPlane(hook).restage_result(unreachable_result, bucket)
    _assert_says_why(caught.value, unreachable_result["Params"]["URL"])


def test_a_node_url_answering_404_says_why(hook, tmp_path):
    port = _closed_port()
    server = local_results.LocalResultServer(tmp_path / "empty", "127.0.0.1", port).start()
    url = f"http://127.0.0.1:{port}/e-gone.tar.gz"
    try:
        with pytest.raises(ResultUnreachableError, match="HTTP 404") as caught:
            S3DataPlane(hook).fetch_result({"Type": "urlDownload", "Params": {"URL": url}}, tmp_path / "dest")
    finally:
        server.stop()
    _assert_says_why(caught.value, url)
