"""What only a real S3 server can show: SeaweedFS checks signatures, identities, checksums and
presigned-URL expiry, and the provider's answers to each are what a user would want."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from airflow_provider_bacalhau.client import BacalhauClient, ClientConfig
from airflow_provider_bacalhau.dataplane.plane import S3DataPlane
from airflow_provider_bacalhau.devstack.testing import LIMITED_BUCKET, LIMITED_IDENTITY
from airflow_provider_bacalhau.errors import ResultIntegrityError, S3AccessError
from airflow_provider_bacalhau.hooks.s3 import BacalhauS3Hook
from airflow_provider_bacalhau.spec import Job, JobStatus

WRONG_SECRET = "wrong-S3-secret-Zq81-must-not-show"


@pytest.fixture
def files(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    (root / "a.csv").write_text("x,y\n1,2\n")
    return root


def test_wrong_secret_names_the_connection_and_hides_the_secret(s3_server, monkeypatch, files):
    s3_server.client().create_bucket(Bucket="wrong-secret")
    conn = json.loads(s3_server.aws_conn_json())
    conn["password"] = WRONG_SECRET
    monkeypatch.setenv("AIRFLOW_CONN_AWS_STAGING", json.dumps(conn))

    with pytest.raises(S3AccessError) as caught:
        S3DataPlane(BacalhauS3Hook("aws_staging")).stage(str(files), "wrong-secret", "runs/1")

    message = str(caught.value)
    assert caught.value.code == "SignatureDoesNotMatch" and caught.value.conn_id == "aws_staging"
    assert "'aws_staging'" in message and "s3://wrong-secret/" in message
    assert "secret key does not match" in message
    assert WRONG_SECRET not in message and WRONG_SECRET not in repr(caught.value.__cause__)


def test_identity_without_access_gets_a_clear_access_denied(s3_server, monkeypatch, files):
    admin = s3_server.client()
    for bucket in ("not-for-limited", LIMITED_BUCKET):
        if bucket not in {b["Name"] for b in admin.list_buckets()["Buckets"]}:
            admin.create_bucket(Bucket=bucket)
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", s3_server.aws_conn_json(LIMITED_IDENTITY))

    with pytest.raises(
        S3AccessError, match=r"'aws_default' while staging to s3://not-for-limited/.*AccessDenied"
    ):
        S3DataPlane(BacalhauS3Hook()).stage(str(files), "not-for-limited", "runs/1")
    assert "Contents" not in admin.list_objects_v2(Bucket="not-for-limited")

    # The same connection works where its identity is allowed: the refusal was about access.
    staged = S3DataPlane(BacalhauS3Hook()).stage(str(files), LIMITED_BUCKET, "runs/1")
    assert staged.uploaded == 1


def test_object_overwritten_after_its_checksum_was_recorded_is_caught_on_fetch(
    s3_server, monkeypatch, tmp_path
):
    admin = s3_server.client()
    admin.create_bucket(Bucket="overwritten")
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", s3_server.aws_conn_json())
    source = tmp_path / "model.bin"
    source.write_bytes(b"the model as staged\n")
    spec = S3DataPlane(BacalhauS3Hook()).stage(str(source), "overwritten", "models").to_spec()
    assert spec["Params"]["ChecksumSHA256"]
    # Someone replaces the object; the server stores the new bytes with their own checksum.
    admin.put_object(
        Bucket="overwritten", Key=spec["Params"]["Key"], Body=b"something else\n", ChecksumAlgorithm="SHA256"
    )
    spec["Params"].pop("VersionID", None)  # the latest object, not the version staged

    with pytest.raises(ResultIntegrityError, match="published ChecksumSHA256"):
        S3DataPlane(BacalhauS3Hook()).fetch_result(spec, tmp_path / "fetched")
    assert not (tmp_path / "fetched").exists()


@pytest.fixture(scope="module")
def short_url_devstack(s3_server):
    """A second devstack whose s3managed URLs expire after 2 s (PreSignedURLExpiration)."""
    from airflow_provider_bacalhau.devstack import stack

    home = Path(tempfile.mkdtemp(prefix="bacalhau-devstack-expiry-"))
    state = stack.up(
        home,
        api_port=0,
        s3_endpoint=s3_server.endpoint,
        die_with_parent=True,
        extra_args=["--managed-url-expiration", "2"],
    )
    try:
        yield state
    finally:
        stack.down(home, stop_engine=False)
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.docker
@pytest.mark.slow
def test_expired_s3managed_url_is_resolved_afresh(short_url_devstack, s3_server, monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", s3_server.aws_conn_json())
    job = Job.from_dict(
        {
            "Name": "managed-expiry",
            "Type": "batch",
            "Count": 1,
            "Tasks": [
                {
                    "Name": "main",
                    "Engine": {
                        "Type": "docker",
                        "Params": {
                            "Image": "busybox",
                            "Entrypoint": ["sh", "-c"],
                            "Parameters": ["mkdir -p /outputs && echo fresh > /outputs/r.txt"],
                        },
                    },
                    "ResultPaths": [{"Name": "outputs", "Path": "/outputs"}],
                    "Publisher": {"Type": "s3managed"},
                }
            ],
        }
    )
    with BacalhauClient(ClientConfig(base_url=short_url_devstack.api_url)) as client:
        job_id = client.submit_job(job)["JobID"]
        deadline = time.monotonic() + 90
        while not (status := JobStatus.from_api(client.get_job(job_id, include=("executions",)))).is_terminal:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert status.succeeded, status.failure_summary()
        [result] = [e.published_result for e in status.executions if e.published_result]
        assert result.type == "s3managed"

        [old] = client.get_results(job_id)
        stale_url = old["Params"]["PreSignedURL"]
        time.sleep(3)
        expired = httpx.get(stale_url)
        assert expired.status_code == 403 and "expired" in expired.text  # the server checks expiry

        dest = S3DataPlane(BacalhauS3Hook()).fetch_result(
            result, tmp_path / "fetched", bacalhau_client=client
        )
    assert (dest / "outputs" / "r.txt").read_text() == "fresh\n"


def test_presigned_put_headers_as_the_devstack_s3managed_upload_relies_on(s3_server):
    """The s3managed publisher PUTs with an unsigned Content-Type (v1.9.3 url_uploader.go).
    Measured on SeaweedFS 4.48, as on AWS: the unsigned Content-Type is accepted, an unsigned
    x-amz-* header is not, and a signed Content-Type must be sent as signed."""
    client = s3_server.client()
    client.create_bucket(Bucket="presigned-put")
    url = client.generate_presigned_url(
        "put_object", Params={"Bucket": "presigned-put", "Key": "a"}, ExpiresIn=60
    )
    assert (
        httpx.put(url, content=b"x", headers={"Content-Type": "application/octet-stream"}).status_code == 200
    )
    assert httpx.put(url, content=b"x", headers={"x-amz-meta-extra": "1"}).status_code == 403
    signed = client.generate_presigned_url(
        "put_object",
        Params={"Bucket": "presigned-put", "Key": "b", "ContentType": "application/gzip"},
        ExpiresIn=60,
    )
    assert httpx.put(signed, content=b"x", headers={"Content-Type": "text/plain"}).status_code == 403
    assert httpx.put(signed, content=b"x", headers={"Content-Type": "application/gzip"}).status_code == 200


def test_a_body_that_contradicts_its_checksum_is_refused(s3_server):
    """Unlike moto, the server refuses bytes that do not match the client's ChecksumSHA256, so an
    object under a checksum of ours can only change by a new upload with its own checksum."""
    import botocore.exceptions

    client = s3_server.client()
    client.create_bucket(Bucket="bad-digest")
    good = client.put_object(Bucket="bad-digest", Key="f", Body=b"good", ChecksumAlgorithm="SHA256")
    with pytest.raises(botocore.exceptions.ClientError, match="BadDigest"):
        client.put_object(
            Bucket="bad-digest",
            Key="f",
            Body=b"evil",
            ChecksumAlgorithm="SHA256",
            ChecksumSHA256=good["ChecksumSHA256"],
        )
