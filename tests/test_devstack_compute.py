"""The devstack compute node on real parts: Docker Engine, a SeaweedFS S3 server over HTTP, busybox.

ComputeNode.run is called directly (the HTTP layer is tested with the devstack API).
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import tarfile
import threading
import uuid
from pathlib import Path

import pytest

from airflow_provider_bacalhau.devstack import engine
from airflow_provider_bacalhau.devstack.compute import (
    DEFAULT_IMAGE_ALIASES,
    ComputeNode,
    ComputeSettings,
    ExecutionRequest,
)


@pytest.fixture(scope="session")
def docker_host() -> str:
    host = engine.ensure_engine()
    engine.ensure_busybox_image(host)
    return host


@pytest.fixture
def bucket(s3_server) -> str:
    name = f"b-{uuid.uuid4().hex[:12]}"
    s3_server.client().create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3(s3_server):
    return s3_server.client()


def make_node(tmp_path: Path, s3_server, docker_host: str | None, **overrides) -> ComputeNode:
    settings = dict(
        data_dir=tmp_path / "compute",
        node_id="n-devstack-test",
        docker_host=docker_host,
        image_aliases=dict(DEFAULT_IMAGE_ALIASES),
        s3_default_endpoint=s3_server.endpoint,
        aws_access_key_id=s3_server.aws_access_key_id,
        aws_secret_access_key=s3_server.aws_secret_access_key,
        region=s3_server.region,
        allow_listed_local_paths=[f"{tmp_path}/allowed/**:rw", f"{tmp_path}/readonly/**:ro"],
        local_publisher_dir=tmp_path / "local-publisher",
        local_publisher_base_url="http://127.0.0.1:9/devstack/v1/local-results",
    )
    settings.update(overrides)
    return ComputeNode(ComputeSettings(**settings))


@pytest.fixture
def node(tmp_path, s3_server, docker_host) -> ComputeNode:
    return make_node(tmp_path, s3_server, docker_host)


class Recorder:
    """Collects what a run reports through its callbacks."""

    def __init__(self) -> None:
        self.logs: list[tuple[int, str]] = []
        self.events: list[tuple[str, str]] = []
        self.running = threading.Event()
        self.cancel = threading.Event()

    def request(self, job: dict, job_id: str = "", execution_id: str = "", presign=None) -> ExecutionRequest:
        return ExecutionRequest(
            job=job,
            job_id=job_id or f"j-{uuid.uuid4()}",
            execution_id=execution_id or f"e-{uuid.uuid4()}",
            presign_managed_put=presign,
            on_log=lambda stream, chunk: self.logs.append((stream, chunk)),
            on_event=lambda topic, message: self.events.append((topic, message)),
            on_running=self.running.set,
            cancel=self.cancel,
        )


def docker_job(
    script: str, *, image: str = "busybox:1.36", inputs=(), results=True, publisher=None, **task
) -> dict:
    body = {
        "Name": "main",
        "Engine": {
            "Type": "docker",
            "Params": {"Image": image, "Entrypoint": ["/bin/sh", "-c"], "Parameters": [script]},
        },
        "InputSources": list(inputs),
        "ResultPaths": [{"Name": "outputs", "Path": "/outputs"}] if results else [],
        "Publisher": publisher or {"Type": ""},
    }
    body.update(task)
    return {"Type": "batch", "Count": 1, "Tasks": [body]}


def s3_input(target: str, bucket: str, key: str, **params) -> dict:
    return {"Target": target, "Source": {"Type": "s3", "Params": {"Bucket": bucket, "Key": key, **params}}}


def tar_members(data: bytes) -> dict[str, bytes | None]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name: (tar.extractfile(m).read() if m.isfile() else None) for m in tar.getmembers()}


def run(node: ComputeNode, job: dict, **kw):
    recorder = Recorder()
    request = recorder.request(job, **kw)
    return node.run(request), recorder, request


# --- S3 in, S3 out -----------------------------------------------------------------------------


def test_s3_prefix_and_checksummed_object_published_as_gzip(node, s3, bucket):
    s3.put_object(Bucket=bucket, Key="data/in/", Body=b"")  # directory marker: dropped
    s3.put_object(Bucket=bucket, Key="data/in/a.txt", Body=b"alpha\n")
    s3.put_object(Bucket=bucket, Key="data/in/sub/b.txt", Body=b"beta\n")
    put = s3.put_object(
        Bucket=bucket, Key="data/single/one.csv", Body=b"x,y\n1,2\n", ChecksumAlgorithm="SHA256"
    )
    job = docker_job(
        "cd /in && find . -type f | sort > /outputs/listing; "
        "cp /single/one.csv /outputs/copy.csv; echo hello",
        inputs=[
            s3_input("/in", bucket, "data/in/"),
            s3_input("/single", bucket, "data/single/one.csv", ChecksumSHA256=put["ChecksumSHA256"]),
        ],
        publisher={
            "Type": "s3",
            "Params": {"Bucket": bucket, "Key": "res/{jobID}/{executionID}", "Region": "us-east-1"},
        },
    )
    outcome, recorder, request = run(node, job)
    assert outcome.error is None, outcome.error
    assert outcome.run_output == {
        "Stdout": "hello\n",
        "StdoutTruncated": False,
        "stderr": "",
        "StderrTruncated": False,
        "ExitCode": 0,
        "ErrorMsg": "",
    }
    key = f"res/{request.job_id}/{request.execution_id}.tar.gz"
    params = outcome.published_result["Params"]
    assert outcome.published_result["Type"] == "s3"
    assert params["Key"] == key and params["Bucket"] == bucket and params["Endpoint"] == ""
    assert params["Partition"] == {
        "Type": "",
        "Pattern": "",
        "StartIndex": 0,
        "EndIndex": 0,
        "DateFormat": "",
    }
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert params["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(body).digest()).decode()
    members = tar_members(body)
    assert set(members) == {
        ".",
        "exitCode",
        "stderr",
        "stdout",
        "outputs",
        "outputs/listing",
        "outputs/copy.csv",
    }
    assert members["outputs/listing"] == b"./a.txt\n./sub/b.txt\n"
    assert members["outputs/copy.csv"] == b"x,y\n1,2\n"
    assert members["exitCode"] == b"0" and members["stdout"] == b"hello\n"
    assert list(dict.fromkeys(topic for topic, _ in recorder.events)) == [
        "Downloading Inputs",
        "Preparing Environment",
        "Running Execution",
        "Publishing Results",
    ]
    assert (1, "hello\n") in recorder.logs
    assert recorder.running.is_set()


def test_plain_publish_to_explicit_endpoint_with_placeholders(node, s3, bucket, s3_server):
    job = docker_job(
        "echo result > /outputs/r.txt",
        publisher={
            "Type": "s3",
            "Params": {
                "bucket": bucket,
                "key": "p/{nodeID}/{date}-{time}/{jobID}",
                "encoding": "plain",
                "endpoint": s3_server.endpoint,
            },
        },
    )
    outcome, _, request = run(node, job)
    assert outcome.error is None, outcome.error
    params = outcome.published_result["Params"]
    assert re.fullmatch(rf"p/n-devstack-test/\d{{8}}-\d{{6}}/{request.job_id}/", params["Key"])
    assert params["ChecksumSHA256"] == "" and params["VersionID"] == ""
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=params["Key"])["Contents"]
    assert sorted(item["Key"][len(params["Key"]) :] for item in listed) == [
        "exitCode",
        "outputs/r.txt",
        "stderr",
        "stdout",
    ]
    assert s3.get_object(Bucket=bucket, Key=params["Key"] + "outputs/r.txt")["Body"].read() == b"result\n"


def test_versioned_bucket_reports_version_id(node, s3, bucket):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    job = docker_job(
        "true", results=False, publisher={"Type": "s3", "Params": {"Bucket": bucket, "Key": "v/out"}}
    )
    outcome, _, _ = run(node, job)
    assert outcome.error is None, outcome.error
    head = s3.head_object(Bucket=bucket, Key="v/out.tar.gz")
    assert outcome.published_result["Params"]["VersionID"] == head["VersionId"] != ""


def test_wrong_checksum_fails_with_the_real_message(node, s3, bucket):
    put = s3.put_object(Bucket=bucket, Key="c/f.txt", Body=b"data", ChecksumAlgorithm="SHA256")
    job = docker_job("true", inputs=[s3_input("/in", bucket, "c/f.txt", ChecksumSHA256="AAAA")])
    outcome, recorder, _ = run(node, job)
    assert (
        outcome.error
        == f"checksum mismatch for s3://{bucket}/c/f.txt, expected AAAA, got {put['ChecksumSHA256']}"
    )
    assert outcome.run_output["ErrorMsg"] == outcome.error and outcome.published_result is None
    assert not recorder.running.is_set()


def test_checksum_given_for_object_without_one_fails(node, s3, bucket):
    s3.put_object(Bucket=bucket, Key="c/plain.txt", Body=b"data")
    job = docker_job("true", inputs=[s3_input("/in", bucket, "c/plain.txt", ChecksumSHA256="abc=")])
    outcome, _, _ = run(node, job)
    assert outcome.error == f"checksum mismatch for s3://{bucket}/c/plain.txt, expected abc=, got "


def test_missing_object_fails(node, bucket):
    outcome, _, _ = run(node, docker_job("true", inputs=[s3_input("/in", bucket, "nope.txt")]))
    assert "HeadObject" in outcome.error and "404" in outcome.error


def test_wildcard_and_filter_layouts(node, s3, bucket):
    for key in (
        "logs/2024/log-a.txt",
        "logs/2024/log-b.csv",
        "logs/2024/other.txt",
        "logs/2024/deep/log-c.txt",
    ):
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    job = docker_job(
        "cd /wild && find . -type f | sort; echo ---; cd /filtered && find . -type f | sort",
        results=False,
        inputs=[
            s3_input("/wild", bucket, "logs/2024/log-*"),
            s3_input("/filtered", bucket, "logs/", Filter=r"\.txt$"),
        ],
    )
    outcome, _, _ = run(node, job)
    assert outcome.error is None, outcome.error
    assert outcome.run_output["Stdout"] == (
        "./log-a.txt\n./log-b.csv\n---\n./2024/deep/log-c.txt\n./2024/log-a.txt\n./2024/other.txt\n"
    )


# --- exit codes, output, timeouts, cancel ------------------------------------------------------


def test_nonzero_exit_completes_and_local_publisher_writes_the_archive(node, tmp_path):
    job = docker_job("echo oops >&2; exit 3", results=False, publisher={"Type": "local"})
    outcome, _, request = run(node, job)
    assert outcome.error is None
    assert outcome.run_output["ExitCode"] == 3 and outcome.run_output["stderr"] == "oops\n"
    name = f"{request.execution_id}.tar.gz"
    assert outcome.published_result == {
        "Type": "urlDownload",
        "Params": {"URL": f"http://127.0.0.1:9/devstack/v1/local-results/{name}"},
    }
    members = tar_members((tmp_path / "local-publisher" / name).read_bytes())
    assert members["exitCode"] == b"3" and members["stderr"] == b"oops\n"


def test_stdout_is_cut_at_2_kib_with_flags(node, tmp_path):
    job = docker_job(
        "head -c 5000 /dev/zero | tr '\\0' a; echo short >&2", results=False, publisher={"Type": "local"}
    )
    outcome, _, request = run(node, job)
    output = outcome.run_output
    assert output["Stdout"] == "a" * 2048 and output["StdoutTruncated"] is True
    assert output["stderr"] == "short\n" and output["StderrTruncated"] is False
    members = tar_members((tmp_path / "local-publisher" / f"{request.execution_id}.tar.gz").read_bytes())
    assert members["stdout"] == b"a" * 5000


def test_s3managed_uploads_through_a_presigned_put(node, s3, bucket):
    def presign(job_id: str, execution_id: str) -> str:
        return s3.generate_presigned_url(
            "put_object",
            Params={"Bucket": bucket, "Key": f"managed/{job_id}/{execution_id}.tar.gz"},
            ExpiresIn=600,
        )

    job = docker_job("echo managed > /outputs/m.txt", publisher={"Type": "s3managed"})
    outcome, _, request = run(node, job, presign=presign)
    assert outcome.error is None, outcome.error
    assert outcome.published_result == {
        "Type": "s3managed",
        "Params": {"JobID": request.job_id, "ExecutionID": request.execution_id},
    }
    body = s3.get_object(Bucket=bucket, Key=f"managed/{request.job_id}/{request.execution_id}.tar.gz")[
        "Body"
    ].read()
    assert tar_members(body)["outputs/m.txt"] == b"managed\n"


def test_s3managed_without_orchestrator_config_fails(node):
    def refuse(job_id: str, execution_id: str) -> str:
        raise RuntimeError("not configured")

    for presign in (None, refuse):
        outcome, _, _ = run(
            node, docker_job("true", results=False, publisher={"Type": "s3managed"}), presign=presign
        )
        assert outcome.error == "failed to publish result: Managed S3 publisher is not available"


# --- container set-up --------------------------------------------------------------------------


def test_inputs_are_read_only_and_local_rw_paths_writable(node, s3, bucket, tmp_path):
    s3.put_object(Bucket=bucket, Key="ro/f.txt", Body=b"f")
    (tmp_path / "allowed").mkdir()
    job = docker_job(
        "touch /in/new 2>&1; echo rc=$?; echo written > /work/out.txt",
        results=False,
        inputs=[
            s3_input("/in", bucket, "ro/f.txt"),
            {
                "Target": "/work",
                "Source": {
                    "Type": "local",
                    "Params": {
                        "SourcePath": f"{tmp_path}/allowed/work",
                        "ReadWrite": "true",
                        "CreateAs": "dir",
                    },
                },
            },
        ],
    )
    outcome, _, _ = run(node, job)
    assert outcome.error is None, outcome.error
    assert "Read-only file system" in outcome.run_output["Stdout"] and "rc=1" in outcome.run_output["Stdout"]
    assert (tmp_path / "allowed" / "work" / "out.txt").read_text() == "written\n"


@pytest.mark.parametrize(
    "path, read_write, message",
    [
        ("/etc", False, "volume /etc is not allowlisted"),
        ("{tmp}/readonly/x", True, "volume {tmp}/readonly/x is not granted write access"),
        (
            "{tmp}/readonly/missing",
            False,
            "volume {tmp}/readonly/missing does not exist and read-write access is not allowed",
        ),
    ],
)
def test_local_input_rules(node, tmp_path, path, read_write, message):
    (tmp_path / "readonly" / "x").mkdir(parents=True)
    source = {
        "Type": "localDirectory",
        "Params": {"SourcePath": path.format(tmp=tmp_path), "ReadWrite": read_write},
    }
    outcome, _, _ = run(node, docker_job("true", results=False, inputs=[{"Target": "/l", "Source": source}]))
    assert outcome.error == message.format(tmp=tmp_path)


def test_url_and_inline_inputs(node):
    import http.server

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self, body: bool) -> None:
            code = 200 if self.path == "/files/data.txt" else 404
            self.send_response(code)
            self.send_header("Content-Length", "6")
            self.end_headers()
            if body:
                self.wfile.write(b"remote" if code == 200 else b"absent")

        def do_HEAD(self):  # noqa: N802
            self._answer(False)

        def do_GET(self):  # noqa: N802
            self._answer(True)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        inline = "data:text/plain;base64," + base64.b64encode(b"inline!").decode()
        job = docker_job(
            "cat /url/data.txt; echo; cat /cfg/settings.txt",
            results=False,
            inputs=[
                {
                    "Target": "/url",
                    "Source": {"Type": "urlDownload", "Params": {"URL": f"{base}/files/data.txt"}},
                },
                {"Target": "/cfg/settings.txt", "Source": {"Type": "inline", "Params": {"URL": inline}}},
            ],
        )
        outcome, _, _ = run(node, job)
        assert outcome.error is None, outcome.error
        assert outcome.run_output["Stdout"] == "remote\ninline!"

        missing = docker_job(
            "true",
            results=False,
            inputs=[
                {
                    "Target": "/url",
                    "Source": {"Type": "urlDownload", "Params": {"URL": f"{base}/files/gone.txt"}},
                }
            ],
        )
        outcome, _, _ = run(node, missing)
        assert outcome.error == "received non-OK response code 404 while fetching size of file download"
    finally:
        server.shutdown()
