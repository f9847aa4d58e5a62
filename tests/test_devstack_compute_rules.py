"""Devstack compute rules that need no container: params validation, capabilities, noop, S3 layouts
and partitioning (against the SeaweedFS S3 server over HTTP), key rules, the engine helpers."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import threading
import uuid
from pathlib import Path

import pytest

from airflow_provider_bacalhau.devstack import engine, inputs, publishers
from airflow_provider_bacalhau.devstack.compute import (
    DEFAULT_IMAGE_ALIASES,
    ComputeNode,
    ComputeSettings,
    ExecutionRequest,
)
from airflow_provider_bacalhau.devstack.compute_common import ComputeError, S3Clients, go_duration
from airflow_provider_bacalhau.devstack.compute_docker import parse_cpu, parse_memory


def settings_for(tmp_path: Path, s3_server, **overrides) -> ComputeSettings:
    values = dict(
        data_dir=tmp_path / "compute",
        node_id="n-rules",
        docker_host=None,
        image_aliases=dict(DEFAULT_IMAGE_ALIASES),
        s3_default_endpoint=s3_server.endpoint,
        aws_access_key_id=s3_server.aws_access_key_id,
        aws_secret_access_key=s3_server.aws_secret_access_key,
        region=s3_server.region,
        allow_listed_local_paths=[],
        local_publisher_dir=tmp_path / "local",
        local_publisher_base_url="http://127.0.0.1:1/results",
    )
    values.update(overrides)
    return ComputeSettings(**values)


@pytest.fixture
def node(tmp_path, s3_server) -> ComputeNode:
    return ComputeNode(settings_for(tmp_path, s3_server))


@pytest.fixture
def bucket(s3_server) -> str:
    name = f"r-{uuid.uuid4().hex[:12]}"
    s3_server.client().create_bucket(Bucket=name)
    return name


def request_for(job: dict, cancel: threading.Event | None = None) -> ExecutionRequest:
    return ExecutionRequest(
        job=job,
        job_id="j-1",
        execution_id=f"e-{uuid.uuid4()}",
        presign_managed_put=None,
        on_log=lambda *_: None,
        on_event=lambda *_: None,
        on_running=lambda: None,
        cancel=cancel or threading.Event(),
    )


def job_with(engine_spec: dict, **task) -> dict:
    return {"Type": "batch", "Count": 1, "Tasks": [{"Name": "main", "Engine": engine_spec, **task}]}


DOCKER = {"Type": "docker", "Params": {"Image": "busybox"}}


@pytest.mark.parametrize(
    "job, message",
    [
        (
            job_with({"Type": "docker", "Params": {"Image": ""}}),
            "invalid docker engine param: 'Image' cannot be empty",
        ),
        (
            job_with({"Type": "docker", "Params": {"image": "busybox", "workingdirectory": "rel"}}),
            "invalid docker engine param: 'WorkingDirectory' (\"rel\") must contain absolute path",
        ),
        (
            job_with(
                {"Type": "docker", "Params": {"Image": "busybox", "EnvironmentVariables": ["bacalhau_x=1"]}}
            ),
            "invalid docker engine param: environment variable 'bacalhau_x' cannot start with BACALHAU_",
        ),
        (
            job_with(DOCKER, Publisher={"Type": "s3", "Params": {"Key": "k"}}),
            "invalid s3 params. bucket cannot be empty",
        ),
        (
            job_with(DOCKER, Publisher={"Type": "s3", "Params": {"Bucket": "b"}}),
            "invalid s3 params. key cannot be empty",
        ),
        (
            job_with(
                DOCKER, Publisher={"Type": "s3", "Params": {"Bucket": "b", "Key": "k", "Encoding": "zip"}}
            ),
            "invalid s3 params. encoding must be either 'plain' or 'gzip'",
        ),
        (
            job_with(
                DOCKER, InputSources=[{"Target": "/i", "Source": {"Type": "s3", "Params": {"Key": "k"}}}]
            ),
            "invalid s3 storage params: bucket cannot be empty",
        ),
        (
            job_with(
                DOCKER,
                InputSources=[
                    {
                        "Target": "/i",
                        "Source": {"Type": "s3", "Params": {"Bucket": "b", "Partition": {"Type": "weird"}}},
                    }
                ],
            ),
            "unsupported partition key type weird",
        ),
        (
            job_with({"Type": "noop"}, Publisher={"Type": "s3", "Params": {"Bucket": "b"}}),
            "invalid s3 params. key cannot be empty",
        ),
    ],
)
def test_params_errors_fail_the_execution(node, job, message):
    outcome = node.run(request_for(job))
    assert outcome.error == message
    assert outcome.run_output["ErrorMsg"] == message and outcome.run_output["ExitCode"] == -1


def test_unsupported_types_and_node_info(tmp_path, s3_server):
    node = ComputeNode(settings_for(tmp_path, s3_server))
    assert node.unsupported_reason(job_with({"Type": "vroomvroom"})) == "does not support vroomvroom"
    assert node.unsupported_reason(job_with({"Type": "wasm"})) == "does not support wasm"
    assert node.unsupported_reason(job_with(DOCKER)) == "does not support docker"  # no engine configured
    noop = {"Type": "noop"}
    assert (
        node.unsupported_reason(
            job_with(
                noop, InputSources=[{"Target": "/i", "Source": {"Type": "ipfs", "Params": {"CID": "Qm"}}}]
            )
        )
        == "does not support ipfs"
    )
    assert node.unsupported_reason(job_with(noop, Publisher={"Type": "ipfs"})) == "does not support ipfs"
    assert node.unsupported_reason(job_with(noop, Publisher={"Type": ""})) is None
    info = node.node_info()
    # models.ComputeNodeInfo; provider keys lower-cased as v1.9.3's sanitizeKey keeps them.
    assert {k: info[k] for k in ("ExecutionEngines", "Publishers", "StorageSources")} == {
        "ExecutionEngines": ["noop"],
        "Publishers": ["local", "noop", "s3", "s3managed"],
        "StorageSources": ["inline", "local", "localdirectory", "s3", "urldownload"],
    }
    assert set(info) == {
        "ExecutionEngines",
        "Publishers",
        "StorageSources",
        "MaxCapacity",
        "QueueCapacity",
        "AvailableCapacity",
        "MaxJobRequirements",
        "RunningExecutions",
        "EnqueuedExecutions",
        "address",
    }
    assert isinstance(info["MaxCapacity"]["CPU"], float) and info["MaxCapacity"]["Memory"] > 0
    # Without AWS credentials (a real node's default chain finds none) s3 is not installed.
    bare = ComputeNode(settings_for(tmp_path, s3_server, aws_access_key_id="", aws_secret_access_key=""))
    assert "s3" not in bare.node_info()["StorageSources"] and "s3" not in bare.node_info()["Publishers"]
    assert "s3managed" in bare.node_info()["Publishers"]  # the orchestrator presigns for it
    s3_job = job_with(
        noop, InputSources=[{"Target": "/i", "Source": {"Type": "s3", "Params": {"Bucket": "b"}}}]
    )
    assert bare.unsupported_reason(s3_job) == "does not support s3"
    with_docker = ComputeNode(settings_for(tmp_path, s3_server, docker_host="unix:///nonexistent.sock"))
    assert with_docker.node_info()["ExecutionEngines"] == ["docker", "noop"]
    assert with_docker.unsupported_reason(job_with(DOCKER)) is None


def test_noop_engine_completes_and_publishes(tmp_path, s3_server, bucket):
    node = ComputeNode(settings_for(tmp_path, s3_server))
    outcome = node.run(request_for(job_with({"Type": "noop"})))
    assert outcome.error is None and outcome.published_result is None
    assert outcome.run_output == {
        "Stdout": "",
        "StdoutTruncated": False,
        "stderr": "",
        "StderrTruncated": False,
        "ExitCode": 0,
        "ErrorMsg": "",
    }
    outcome = node.run(request_for(job_with({"Type": "noop"}, Publisher={"Type": "noop"})))
    assert outcome.published_result == {"Type": ""}
    request = request_for(
        job_with({"Type": "noop"}, Publisher={"Type": "s3", "Params": {"Bucket": bucket, "Key": "n"}})
    )
    outcome = node.run(request)
    assert outcome.error is None and outcome.published_result["Params"]["Key"] == "n.tar.gz"
    body = s3_server.client().get_object(Bucket=bucket, Key="n.tar.gz")["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        assert sorted(tar.getnames()) == [".", "exitCode", "stderr", "stdout"]


def test_noop_delay_can_be_cancelled(tmp_path, s3_server):
    node = ComputeNode(settings_for(tmp_path, s3_server, noop_delay=30))
    cancel = threading.Event()
    threading.Timer(0.2, cancel.set).start()
    assert node.run(request_for(job_with({"Type": "noop"}), cancel)).error == "execution cancelled"


def _layout(tmp_path: Path, s3_server, params: dict, **context) -> list[str]:
    storage = tmp_path / f"storage-{uuid.uuid4().hex[:6]}"
    storage.mkdir()
    ctx = inputs.InputContext(S3Clients(settings_for(tmp_path, s3_server)), storage, [], **context)
    [mount] = inputs.prepare_inputs([{"Target": "/in", "Source": {"Type": "s3", "Params": params}}], ctx)
    return sorted(p.relative_to(mount.source).as_posix() for p in mount.source.rglob("*") if p.is_file())


def test_s3_layouts_follow_the_real_node(tmp_path, s3_server, bucket):
    client = s3_server.client()
    for key in ("a/b/file.csv", "a/b/c/deep.csv", "a/b/log-1.txt", "a/bx/z.txt", "top.txt"):
        client.put_object(Bucket=bucket, Key=key, Body=b"x")
    client.put_object(Bucket=bucket, Key="a/b", Body=b"", ContentType="application/x-directory")
    assert _layout(tmp_path, s3_server, {"Bucket": bucket, "Key": "a/b/file.csv"}) == ["file.csv"]
    assert _layout(tmp_path, s3_server, {"Bucket": bucket, "Key": "a/b/"}) == [
        "c/deep.csv",
        "file.csv",
        "log-1.txt",
    ]
    assert _layout(tmp_path, s3_server, {"Bucket": bucket, "Key": "a/b/log-*"}) == ["log-1.txt"]
    # A directory-typed object is listed as a prefix (as the Go code, without adding a slash).
    assert _layout(tmp_path, s3_server, {"Bucket": bucket, "Key": "a/b"}) == [
        "b/c/deep.csv",
        "b/file.csv",
        "b/log-1.txt",
        "bx/z.txt",
    ]
    assert _layout(tmp_path, s3_server, {"Bucket": bucket, "Key": "", "Filter": "csv"}) == [
        "a/b/c/deep.csv",
        "a/b/file.csv",
    ]
    with pytest.raises(ComputeError, match="invalid regex pattern"):
        _layout(tmp_path, s3_server, {"Bucket": bucket, "Key": "a/", "Filter": "("})


def test_s3_object_partitioning_splits_without_overlap(tmp_path, s3_server, bucket):
    client = s3_server.client()
    keys = [f"p/part-{i:02d}.txt" for i in range(12)]
    for key in keys:
        client.put_object(Bucket=bucket, Key=key, Body=b"x")
    params = {"Bucket": bucket, "Key": "p/", "Partition": {"Type": "object"}}
    parts = [_layout(tmp_path, s3_server, params, partition_index=i, partition_count=3) for i in range(3)]
    assert sorted(sum(parts, [])) == [k[2:] for k in keys]
    assert all(parts) and sum(len(p) for p in parts) == 12
    # FNV-1a 32 of the full key, as Bacalhau's getPartitionIndex
    assert inputs._fnv1a32("hello") == 0x4F9F2CAB
    with pytest.raises(ComputeError, match="job partitions/count must be greater than 0"):
        _layout(tmp_path, s3_server, params, partition_count=0)


def test_publish_key_rules():
    ctx = publishers.PublishContext(
        clients=None,
        job_id="j-1",
        execution_id="e-1",
        node_id="n-1",
        local_publisher_dir=Path("/tmp"),
        local_publisher_base_url="",
    )
    assert (
        publishers.published_key("pattern_gzip/{jobID}/{executionID}", "gzip", ctx)
        == "pattern_gzip/j-1/e-1.tar.gz"
    )
    assert publishers.published_key("x.tar.gz", "gzip", ctx) == "x.tar.gz"
    assert publishers.published_key("simple_plain", "plain", ctx) == "simple_plain/"
    assert publishers.published_key("{JOBID}/{nodeID}/", "plain", ctx) == "{JOBID}/n-1/"


def test_unit_parsers():
    assert (
        parse_memory("512mb") == 512_000_000
        and parse_memory("1gib") == 2**30
        and parse_memory("1 GB") == 10**9
    )
    assert parse_memory("1000") == 1000 and parse_memory("1.5kib") == 1536
    assert parse_cpu("500m") == 0.5 and parse_cpu("2") == 2.0
    with pytest.raises(ComputeError, match="invalid memory value"):
        parse_memory("lots")
    assert [go_duration(s) for s in (2, 90, 3600)] == ["2s", "1m30s", "1h0m0s"]
    assert inputs.glob_to_regex("/tmp/data/**").match("/tmp/data/x/y")
    assert inputs.glob_to_regex("/tmp/data/**").match("/tmp/data")
    assert not inputs.glob_to_regex("/tmp/*/x").match("/tmp/a/b/x")


def test_engine_helpers(tmp_path):
    assert engine.ping("unix:///nonexistent/docker.sock") is False
    assert engine.ping("ftp://nowhere") is False
    engine.stop_engine(tmp_path)  # nothing was started under this home: a no-op
    with tarfile.open(fileobj=io.BytesIO(engine.busybox_rootfs_tar())) as tar:
        names = set(tar.getnames())
        assert {"bin/busybox", "bin/sh", "tmp", "etc/passwd"} <= names
        assert tar.getmember("bin/sh").linkname == "/bin/busybox"


@pytest.mark.skipif(shutil.which("apt-get") is None or os.geteuid() != 0, reason="needs apt-get as root")
def test_apt_output_stays_off_stdout(capfd):
    """`devstack up` prints exports that users eval: apt-get's chatter must not reach stdout."""
    with pytest.raises(RuntimeError, match="apt-get install -y no-such-package-bacalhau-devstack failed"):
        engine._apt("install", "-y", "no-such-package-bacalhau-devstack")
    assert capfd.readouterr().out == ""
