"""BacalhauS3Hook against a real SeaweedFS S3 server over HTTP: stage, skip, fetch, re-stage."""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import os
import tarfile
from pathlib import Path

import pytest

from airflow_provider_bacalhau.dataplane.fetch import part_size
from airflow_provider_bacalhau.dataplane.plane import S3DataPlane
from airflow_provider_bacalhau.devstack.testing import SECRET_IDENTITY
from airflow_provider_bacalhau.errors import ResultIntegrityError
from airflow_provider_bacalhau.hooks.s3 import BacalhauS3Hook

# The Airflow connection's secret: a distinctive value to hunt for in logs, XCom and specs.
FAKE_SECRET = SECRET_IDENTITY.secret_key
MiB = 1024 * 1024


@pytest.fixture
def aws_conn(s3_server, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", s3_server.aws_conn_json(SECRET_IDENTITY))
    return s3_server


@pytest.fixture
def bucket(aws_conn, request):
    name = "dp-" + hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:16]
    client = aws_conn.client()
    client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def hook(aws_conn):
    return BacalhauS3Hook()


def versioned(client, bucket: str) -> str:
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    return bucket


def stored_versions(client, bucket: str, prefix: str) -> int:
    """Object versions under ``prefix``: on a versioned bucket every upload makes one, whichever
    client (boto3 or the staging's obstore) sent it, so this counts PUTs at the server."""
    pages = client.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix)
    return sum(len(page.get("Versions", [])) for page in pages)


def sha_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def make_tree(root: Path) -> dict[str, bytes]:
    files = {
        "a.txt": b"alpha\n",
        "empty.dat": b"",
        "sub/deeper/b.bin": os.urandom(3000),
        "sub/ünïcødé 名前.txt": "grüße\n".encode(),
    }
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def test_stage_tree_then_nothing_changed(hook, bucket, tmp_path, s3_server):
    versioned(s3_server.client(), bucket)
    files = make_tree(tmp_path / "tree")
    staged = S3DataPlane(hook).stage(str(tmp_path / "tree"), bucket, "runs/r1")
    # The spec is for compute nodes: it names no store unless told where the nodes see S3.
    assert staged.to_spec() == {"Type": "s3", "Params": {"Bucket": bucket, "Key": "runs/r1/"}}
    assert (staged.uploaded, staged.skipped) == (4, 0)
    client = s3_server.client()
    for rel, data in files.items():
        got = client.get_object(Bucket=bucket, Key=f"runs/r1/{rel}", ChecksumMode="ENABLED")
        assert got["Body"].read() == data
        assert got["ChecksumSHA256"] == sha_b64(data)

    assert stored_versions(client, bucket, "runs/r1/") == 4
    # The manifest is beside the prefix, not in what a job mounts.
    assert client.head_object(Bucket=bucket, Key="runs/r1.bacalhau-staged.json")
    again = S3DataPlane(hook).stage(str(tmp_path / "tree"), bucket, "runs/r1/")
    assert (again.uploaded, again.skipped) == (0, 4)
    assert stored_versions(client, bucket, "runs/r1/") == 4

    (tmp_path / "tree" / "a.txt").write_bytes(b"ALPHA\n")  # same size, new content
    third = S3DataPlane(hook).stage(str(tmp_path / "tree"), bucket, "runs/r1/")
    assert (third.uploaded, third.skipped) == (1, 3)
    assert stored_versions(client, bucket, "runs/r1/") == 5


def test_stage_single_file_carries_checksum_and_version(hook, bucket, tmp_path, s3_server):
    s3_server.client().put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    data = os.urandom(1000)
    (tmp_path / "one.bin").write_bytes(data)
    params = S3DataPlane(hook).stage(str(tmp_path / "one.bin"), bucket, "single").to_spec()["Params"]
    assert params["Key"] == "single/one.bin"
    assert params["ChecksumSHA256"] == sha_b64(data)
    head = s3_server.client().head_object(Bucket=bucket, Key="single/one.bin")
    assert params["VersionID"] == head["VersionId"]


def test_stage_globs_and_stale_objects(hook, bucket, tmp_path, s3_server, caplog):
    for name in ("x1.csv", "x2.csv", "y.txt"):
        (tmp_path / name).write_text(name)
    s3_server.client().put_object(Bucket=bucket, Key="g/stale.csv", Body=b"old")
    with caplog.at_level(logging.WARNING):
        staged = S3DataPlane(hook).stage([str(tmp_path / "x*.csv")], bucket, "g")
    assert staged.key == "g/" and sorted(staged.keys) == ["g/x1.csv", "g/x2.csv"]
    assert "1 object(s) that were not part of this staging" in caplog.text
    cleaned = S3DataPlane(hook).stage([str(tmp_path / "x*.csv")], bucket, "g", delete_extra=True)
    assert cleaned.deleted == 1
    keys = [o["Key"] for o in s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]]
    assert sorted(keys) == ["g.bacalhau-staged.json", "g/x1.csv", "g/x2.csv"]  # manifest beside
    with pytest.raises(ValueError, match="local_paths"):
        S3DataPlane(hook).stage(str(tmp_path / "nothing-*.csv"), bucket, "g")


def test_multipart_file_skip_and_no_checksum_on_single_object(aws_conn, bucket, tmp_path, caplog):
    versioned(aws_conn.client(), bucket)
    hook = BacalhauS3Hook()
    plane = S3DataPlane(hook, multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    (tmp_path / "big.bin").write_bytes(os.urandom(12 * MiB))
    with caplog.at_level(logging.INFO):
        staged = plane.stage(str(tmp_path / "big.bin"), bucket, "mp")
    assert staged.uploaded == 1 and "ChecksumSHA256" not in staged.to_spec()["Params"]
    assert "composite" in caplog.text
    assert stored_versions(aws_conn.client(), bucket, "mp/") == 1
    assert plane.stage(str(tmp_path / "big.bin"), bucket, "mp").skipped == 1
    assert stored_versions(aws_conn.client(), bucket, "mp/") == 1


def gzip_tar(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def publish(client, bucket: str, key: str, body: bytes) -> dict:
    answer = client.put_object(Bucket=bucket, Key=key, Body=body, ChecksumAlgorithm="SHA256")
    return {
        "Type": "s3",
        "Params": {
            "Bucket": bucket,
            "Key": key,
            "Region": "us-east-1",
            "ChecksumSHA256": answer["ChecksumSHA256"],
            "Filter": "",
            "Partition": {"Type": "", "StartIndex": 0},
        },
        "JobID": "j-1",
        "ExecutionID": "e-1",
    }


def test_fetch_gzip_and_plain(hook, bucket, tmp_path, s3_server):
    client = s3_server.client()
    result = publish(
        client, bucket, "res/j-1/e-1.tar.gz", gzip_tar({"stdout": b"hi\n", "outputs/a/b.txt": b"deep"})
    )
    out = S3DataPlane(hook).fetch_result(result, tmp_path / "dest" / "e-1")
    assert (out / "stdout").read_bytes() == b"hi\n"
    assert (out / "outputs/a/b.txt").read_bytes() == b"deep"

    for rel, data in {"stdout": b"x", "outputs/ü.txt": b"y"}.items():
        client.put_object(Bucket=bucket, Key=f"plain/e-2/{rel}", Body=data, ChecksumAlgorithm="SHA256")
    plain = {"Type": "s3", "Params": {"Bucket": bucket, "Key": "plain/e-2/"}}
    out = S3DataPlane(hook).fetch_result(plain, tmp_path / "dest" / "e-2")
    assert (out / "outputs/ü.txt").read_bytes() == b"y"
    assert sorted(p.name for p in (tmp_path / "dest").iterdir()) == ["e-1", "e-2"]


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink", "hardlink", "device"])
def test_unsafe_archives_refused(hook, bucket, tmp_path, s3_server, kind):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("ok.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"ok"))
        bad = tarfile.TarInfo({"dotdot": "../escape.txt", "absolute": "/tmp/abs.txt"}.get(kind, "link"))
        if kind == "symlink":
            bad.type, bad.linkname = tarfile.SYMTYPE, "../../outside"
        elif kind == "hardlink":
            bad.type, bad.linkname = tarfile.LNKTYPE, "../outside"
        elif kind == "device":
            bad.type = tarfile.CHRTYPE
        bad.size = 0 if kind in ("symlink", "hardlink", "device") else 3
        tar.addfile(bad, io.BytesIO(b"bad") if bad.size else None)
    result = publish(s3_server.client(), bucket, f"evil/{kind}.tar.gz", buf.getvalue())
    with pytest.raises(ResultIntegrityError, match="refused"):
        S3DataPlane(hook).fetch_result(result, tmp_path / "dest" / "e")
    assert list((tmp_path / "dest").iterdir()) == []
    assert not (tmp_path / "escape.txt").exists()


def test_specs_name_s3_as_the_compute_nodes_see_it(aws_conn, bucket, tmp_path, s3_server):
    """Staged and re-staged specs carry the compute-side view, never the AWS connection's endpoint."""
    from airflow_provider_bacalhau.hooks._compute_s3 import ComputeS3View

    nodes = ComputeS3View("http://s3.nodes.internal:8333", "eu-central-1")
    hook = BacalhauS3Hook(compute_s3=nodes)
    (tmp_path / "a.txt").write_text("a")
    staged = S3DataPlane(hook).stage(str(tmp_path / "a.txt"), bucket, "view").to_spec()["Params"]
    assert (staged["Endpoint"], staged["Region"]) == (nodes.endpoint, nodes.region)
    assert s3_server.endpoint not in str(staged)
    result = publish(s3_server.client(), bucket, "res/e-view.tar.gz", gzip_tar({"stdout": b"v"}))
    spec = S3DataPlane(hook).restage_result(result, bucket, "stage-view")
    assert (spec["Params"]["Endpoint"], spec["Params"]["Region"]) == (nodes.endpoint, nodes.region)


def test_restage_gzip_once(hook, bucket, tmp_path, s3_server):
    client = s3_server.client()
    archive = gzip_tar({"stdout": b"1", "outputs/x.csv": b"a,b\n"})
    result = publish(client, bucket, "res/e-9.tar.gz", archive)
    spec = S3DataPlane(hook).restage_result(result, bucket, "stage")
    digest = hashlib.sha256(archive).hexdigest()
    assert spec["Params"]["Key"] == f"stage/{digest}/"
    listed = client.list_objects_v2(Bucket=bucket, Prefix=f"stage/{digest}/")["Contents"]
    assert sorted(o["Key"] for o in listed) == [f"stage/{digest}/outputs/x.csv", f"stage/{digest}/stdout"]
    gets = []
    hook.client.meta.events.register("before-call.s3.GetObject", lambda **_: gets.append(1))
    assert S3DataPlane(hook).restage_result(result, bucket, "stage") == spec
    assert gets == []  # the marker answered: nothing downloaded again


def test_fetch_multipart_objects_checked_by_composite(hook, bucket, tmp_path, s3_server):
    from boto3.s3.transfer import TransferConfig

    client = s3_server.client()
    payload = os.urandom(7 * MiB)
    archive = tmp_path / "e-mp.tar.gz"
    archive.write_bytes(gzip_tar({"outputs/big.bin": payload}))
    parts = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    client.upload_file(
        str(archive), bucket, "mp/e-mp.tar.gz", Config=parts, ExtraArgs={"ChecksumAlgorithm": "SHA256"}
    )
    head = client.head_object(Bucket=bucket, Key="mp/e-mp.tar.gz", ChecksumMode="ENABLED")
    assert head["ETag"].strip('"').endswith("-2")
    assert part_size(hook, bucket, "mp/e-mp.tar.gz", "") == 5 * MiB  # so the check is real
    result = {
        "Type": "s3",
        "Params": {"Bucket": bucket, "Key": "mp/e-mp.tar.gz", "ChecksumSHA256": head["ChecksumSHA256"]},
    }
    out = S3DataPlane(hook).fetch_result(result, tmp_path / "dest" / "ok")
    assert (out / "outputs" / "big.bin").read_bytes() == payload

    wrong = dict(result, Params=dict(result["Params"], ChecksumSHA256=sha_b64(b"other")))
    with pytest.raises(ResultIntegrityError, match="checksum mismatch"):
        S3DataPlane(hook).fetch_result(wrong, tmp_path / "dest" / "bad")
    assert sorted(p.name for p in (tmp_path / "dest").iterdir()) == ["ok"]

    client.upload_file(
        str(archive), bucket, "mpplain/e/file.bin", Config=parts, ExtraArgs={"ChecksumAlgorithm": "SHA256"}
    )
    plain = {"Type": "s3", "Params": {"Bucket": bucket, "Key": "mpplain/e/"}}
    out = S3DataPlane(hook).fetch_result(plain, tmp_path / "dest" / "plain")
    assert (out / "file.bin").read_bytes() == archive.read_bytes()


@pytest.fixture
def signed_url_server():
    """A real HTTP server answering every GET with one result archive, as a presigned URL would."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    body = gzip_tar({"stdout": b"signed\n"})

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # keep the server's own access log out of caplog
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class ResultsOnly:
    """Stands in for BacalhauClient.get_results: /results hands out a fresh presigned URL."""

    def __init__(self, url: str) -> None:
        self.url = url

    def get_results(self, job_id: str) -> list[dict]:
        return [{"Type": "urlDownload", "Params": {"PresignedURL": self.url}}]


SIGNED_QUERY = "?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=deadbeef0123&X-Amz-Expires=900"


@pytest.mark.parametrize("kind", ["urlDownload", "s3managed"])
def test_presigned_signature_stays_out_of_the_httpx_log(signed_url_server, tmp_path, caplog, kind):
    url = f"{signed_url_server}/results/j-1/e-1.tar.gz{SIGNED_QUERY}"
    if kind == "urlDownload":
        result, client = {"Type": kind, "Params": {"URL": url}}, None
    else:
        result, client = {"Type": kind, "Params": {"JobID": "j-1", "ExecutionID": "e-1"}}, ResultsOnly(url)
    hook = BacalhauS3Hook(aws_conn_id=None)
    with caplog.at_level(logging.INFO, logger="httpx"), caplog.at_level(logging.INFO):
        out = S3DataPlane(hook).fetch_result(result, tmp_path / "e-1", bacalhau_client=client)
        # the filter is added once
        S3DataPlane(hook).fetch_result(result, tmp_path / "e-1", bacalhau_client=client)
    assert (out / "stdout").read_bytes() == b"signed\n"
    requests = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert len(requests) == 2 and "/results/j-1/e-1.tar.gz" in requests[0]  # httpx did log
    assert "X-Amz-Signature" not in caplog.text
    assert not any("X-Amz-Signature" in r.getMessage() for r in caplog.records)
    assert [type(f).__name__ for f in logging.getLogger("httpx").filters].count("_HideSignedQueries") == 1
