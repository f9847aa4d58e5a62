"""Archives published the way a real node publishes them: the Go SDK's multipart uploader above
5 MiB, so the PublishedResult's ``ChecksumSHA256`` is S3's composite ``<b64>-<parts>``. The
provider fetches, verifies and re-stages such results against SeaweedFS, which stores composite
checksums as AWS does (sha256 of the concatenated part digests, ``-N``, ChecksumType COMPOSITE)."""

from __future__ import annotations

import base64
import hashlib
import time
import uuid

import pytest
from test_dataplane_devstack import run_job as run_devstack_job

from airflow_provider_bacalhau.client import BacalhauClient, ClientConfig
from airflow_provider_bacalhau.dataplane.inputs import resolve_inputs
from airflow_provider_bacalhau.dataplane.plane import S3DataPlane
from airflow_provider_bacalhau.devstack.publishers import PART_SIZE, upload
from airflow_provider_bacalhau.devstack.testing import SECRET_IDENTITY
from airflow_provider_bacalhau.errors import ResultIntegrityError
from airflow_provider_bacalhau.hooks.s3 import BacalhauS3Hook
from airflow_provider_bacalhau.spec import JobStatus

BUCKET = "dataplane-multipart"
MiB = 1024 * 1024
# 7 MB of random bytes: the gzip archive stays above one 5 MiB part, so it goes up in two.
WRITE_BIG = (
    "mkdir -p /outputs && head -c 7000000 /dev/urandom > /outputs/big.bin && echo ok > /outputs/small.txt"
)
LISTING = (
    "mkdir -p /outputs && cd /inputs && find . -type f | sort | "
    'while IFS= read -r f; do sha256sum "$f"; done > /outputs/listing'
)


def composite_b64(data: bytes, part_size: int = PART_SIZE) -> str:
    """AWS's composite SHA-256: the digest of the concatenated part digests, base64, ``-N``."""
    digests = [hashlib.sha256(data[i : i + part_size]).digest() for i in range(0, len(data), part_size)]
    return f"{base64.b64encode(hashlib.sha256(b''.join(digests)).digest()).decode()}-{len(digests)}"


@pytest.fixture
def s3(s3_server):
    client = s3_server.client()
    if BUCKET not in [b["Name"] for b in client.list_buckets()["Buckets"]]:
        client.create_bucket(Bucket=BUCKET)
    return client


@pytest.mark.parametrize(("size", "parts"), [(0, 1), (PART_SIZE, 1), (PART_SIZE + 1, 2), (11 * MiB, 3)])
def test_devstack_upload_switches_to_parts_above_5_mib_like_the_go_uploader(s3, tmp_path, size, parts):
    # feature/s3/manager upload.go: a body of at most PartSize bytes is one PutObject.
    data = (b"0123456789abcdef" * (size // 16 + 1))[:size]
    path = tmp_path / "archive.tar.gz"
    path.write_bytes(data)
    key = f"upload/{uuid.uuid4().hex}"
    answer = upload(s3, BUCKET, key, path, aws=True)
    head = s3.head_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
    if parts == 1:
        assert answer["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(data).digest()).decode()
        assert "-" not in head["ETag"]
    else:
        assert answer["ChecksumSHA256"] == composite_b64(data) == head["ChecksumSHA256"]
        assert head["ETag"].strip('"').endswith(f"-{parts}")
        assert s3.head_object(Bucket=BUCKET, Key=key, PartNumber=1)["ContentLength"] == PART_SIZE
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == data


def test_a_failed_part_aborts_the_upload(s3_server, s3, tmp_path):
    from airflow_provider_bacalhau.devstack.compute_common import ComputeError

    path = tmp_path / "archive.tar.gz"
    path.write_bytes(b"x" * (2 * PART_SIZE + 10))
    client = s3_server.client()  # a client of its own: the fault below stays on it

    def refuse_part_two(params, **_):
        if params.get("PartNumber") == 2:
            raise OSError("connection reset by peer")

    client.meta.events.register("provide-client-params.s3.UploadPart", refuse_part_two)
    key = f"abort/{uuid.uuid4().hex}"
    with pytest.raises(ComputeError, match="operation error S3: UploadPart, connection reset"):
        upload(client, BUCKET, key, path, aws=True)
    pending = s3.list_multipart_uploads(Bucket=BUCKET, Prefix=key).get("Uploads", [])
    assert pending == []  # aborted, as the manager's fail() does
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix=key)


@pytest.fixture
def env(devstack_env, s3, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", devstack_env.aws_conn_json(SECRET_IDENTITY))
    return devstack_env


@pytest.fixture
def api(env):
    with BacalhauClient(ClientConfig(base_url=env.api_url)) as client:
        yield client


def run_job(api, script: str, *, inputs=(), publisher=None) -> JobStatus:
    """The data-plane tests' job runner, publishing gzip archives here by default."""
    default = {"Type": "s3", "Params": {"Bucket": BUCKET, "Key": "mp/{jobID}/{executionID}"}}
    return run_devstack_job(api, script, inputs=inputs, publisher=publisher or default, timeout=120)


@pytest.fixture
def big_result(api):
    """One job's gzip result, published in parts; its raw PublishedResult."""
    [result] = run_job(api, WRITE_BIG).results
    return result


@pytest.mark.docker
@pytest.mark.slow
def test_published_checksum_is_the_composite_and_the_provider_verifies_it(env, s3, big_result, tmp_path):
    key = big_result.param("Key")
    published = big_result.param("ChecksumSHA256")
    archive = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert len(archive) > PART_SIZE
    # What v1.9.3 reports: CompleteMultipartUpload's ChecksumSHA256, as S3 stores it.
    assert published == composite_b64(archive)
    head = s3.head_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
    assert (head["ChecksumSHA256"], head["ChecksumType"]) == (published, "COMPOSITE")

    out = S3DataPlane(BacalhauS3Hook()).fetch_result(big_result, tmp_path / "fetched")
    assert (out / "outputs" / "small.txt").read_text() == "ok\n"
    assert (out / "outputs" / "big.bin").stat().st_size == 7_000_000


@pytest.mark.docker
@pytest.mark.slow
def test_an_archive_replaced_after_publishing_is_caught_by_the_composite(env, s3, big_result, tmp_path):
    from boto3.s3.transfer import TransferConfig

    key = big_result.param("Key")
    body = bytearray(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    body[-100] ^= 0xFF  # in the second part
    replaced = tmp_path / "replaced.tar.gz"
    replaced.write_bytes(bytes(body))
    parts = TransferConfig(multipart_threshold=PART_SIZE, multipart_chunksize=PART_SIZE)
    # Replaced the same way (5 MiB parts, SHA-256): S3's own stored checksum matches the new
    # bytes, so only the checksum the node published can tell.
    s3.upload_file(str(replaced), BUCKET, key, Config=parts, ExtraArgs={"ChecksumAlgorithm": "SHA256"})
    with pytest.raises(ResultIntegrityError, match="published ChecksumSHA256"):
        S3DataPlane(BacalhauS3Hook()).fetch_result(big_result, tmp_path / "dest" / "e")
    assert list((tmp_path / "dest").iterdir()) == []


@pytest.mark.docker
@pytest.mark.slow
def test_restage_a_multipart_result_once_and_chain_it(env, api, s3, big_result, tmp_path):
    hook = BacalhauS3Hook()
    spec = S3DataPlane(hook).restage_result(big_result, BUCKET, "restaged")
    archive = s3.get_object(Bucket=BUCKET, Key=big_result.param("Key"))["Body"].read()
    digest = hashlib.sha256(archive).hexdigest()
    assert spec["Params"]["Key"] == f"restaged/{digest}/"
    listed = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=spec["Params"]["Key"])["Contents"]}
    assert f"restaged/{digest}/outputs/big.bin" in listed
    calls: list[tuple[str, str]] = []
    for client in (hook.client, hook.multipart_client):  # the second one reads multipart objects
        for op in ("PutObject", "UploadPart", "GetObject"):
            client.meta.events.register(
                f"provide-client-params.s3.{op}", lambda params, op=op, **_: calls.append((op, params["Key"]))
            )
    assert S3DataPlane(hook).restage_result(big_result, BUCKET, "restaged") == spec
    # Done once: the markers answered the second call, and the archive was not downloaded again
    # (its composite checksum names an alias of the re-staged prefix).
    assert [op for op, _ in calls if op != "GetObject"] == []
    assert big_result.param("Key") not in [key for _, key in calls]
    # An alias that names no proper digest is ignored: the archive is downloaded and checked again.
    from airflow_provider_bacalhau.dataplane.alias import alias_key
    from airflow_provider_bacalhau.dataplane.restage import MARKER_SUFFIX

    s3.put_object(
        Bucket=BUCKET,
        Key=alias_key("restaged/", big_result.param("ChecksumSHA256"), MARKER_SUFFIX),
        Body=b'{"SHA256": "../../elsewhere"}',
    )
    calls.clear()
    assert S3DataPlane(hook).restage_result(big_result, BUCKET, "restaged") == spec
    assert big_result.param("Key") in [key for _, key in calls]

    inputs = resolve_inputs([big_result.to_dict()], s3_hook=hook, staging_bucket=BUCKET)
    [seen] = run_job(api, LISTING, inputs=inputs).results
    listing = (S3DataPlane(hook).fetch_result(seen, tmp_path / "b") / "outputs" / "listing").read_text()
    fetched = S3DataPlane(hook).fetch_result(big_result, tmp_path / "a")
    want = hashlib.sha256((fetched / "outputs" / "big.bin").read_bytes()).hexdigest()
    assert f"{want}  ./outputs/big.bin" in listing


def test_managed_upload_is_one_put_retried_on_any_failure(tmp_path):
    """s3managed/url_uploader.go: a single PUT of the whole archive (no multipart, whatever its
    size), Content-Type application/octet-stream, retried after any failure, 4xx included."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from airflow_provider_bacalhau.devstack.publishers import _put_with_retries

    seen: list[tuple[int, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self):  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            seen.append((len(body), self.headers.get("Content-Type", "")))
            self.send_response(403 if len(seen) < 3 else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    archive = tmp_path / "e-1.tar.gz"
    archive.write_bytes(b"z" * (PART_SIZE + 1))
    try:
        started = time.monotonic()
        _put_with_retries(
            f"http://127.0.0.1:{server.server_address[1]}/managed/e-1.tar.gz?X-Amz-Signature=s", archive
        )
    finally:
        server.shutdown()
        server.server_close()
    assert seen == [(PART_SIZE + 1, "application/octet-stream")] * 3
    assert time.monotonic() - started >= 3  # backoff 1 s, then 2 s


@pytest.mark.docker
@pytest.mark.slow
def test_managed_result_above_5_mib_is_one_object_and_fetches(env, api, s3, tmp_path):
    [result] = run_job(api, WRITE_BIG, publisher={"Type": "s3managed"}).results
    key = f"{result.job_id}/{result.execution_id}.tar.gz"
    head = s3.head_object(Bucket=env.managed_bucket, Key=key)
    assert head["ContentLength"] > PART_SIZE and "-" not in head["ETag"]  # one PUT, not parts
    out = S3DataPlane(BacalhauS3Hook()).fetch_result(result, tmp_path / "managed", bacalhau_client=api)
    assert (out / "outputs" / "big.bin").stat().st_size == 7_000_000
