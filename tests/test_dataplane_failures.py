"""The data plane's failures say what happened, against real S3 servers (SeaweedFS over HTTP).

- a per-key refusal in DeleteObjects (``delete_extra``) fails the staging, naming key and code;
- a refused HTTP download (expired presigned URL, no such object) is no integrity error;
- staging into a whole bucket is a prefix input, as S3Source says of an empty key;
- an ``s3://`` URI that ``S3Hook.parse_s3_url`` would cut is refused, naming the field.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import pytest

from airflow_provider_bacalhau.dataplane.download import download_url
from airflow_provider_bacalhau.dataplane.inputs import parse_s3_uri
from airflow_provider_bacalhau.dataplane.plane import S3DataPlane
from airflow_provider_bacalhau.devstack import procs, s3server
from airflow_provider_bacalhau.errors import (
    ResultDownloadError,
    ResultIntegrityError,
    S3DeleteError,
    SpecError,
)
from airflow_provider_bacalhau.hooks.s3 import BacalhauS3Hook

BUCKET = "dp-deletes"


@dataclass(frozen=True)
class GrantedIdentity(s3server.Identity):
    """An identity with SeaweedFS grants written out, e.g. ``Write:bucket/prefix*``: SeaweedFS
    checks Write per object key, so such an identity may upload some keys of a prefix and not
    delete others (measured: DeleteObjects then answers 200 with AccessDenied per key)."""

    grants: tuple[str, ...] = ()

    def config(self) -> dict:
        return {
            "name": self.access_key,
            "actions": list(self.grants),
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
        }


PARTIAL = GrantedIdentity(
    "dp-partial-key",
    "dp-partial-secret",
    grants=(f"Read:{BUCKET}", f"List:{BUCKET}", f"Write:{BUCKET}/runs/1/a*"),
)


@pytest.fixture(scope="module")
def partial_server(tmp_path_factory):
    """A SeaweedFS of its own: the session server's identities cannot express per-key grants."""
    home = tmp_path_factory.mktemp("s3-partial")
    server = s3server.SeaweedServer(
        home, log_path=home / "weed.log", die_with_parent=True, identities=(PARTIAL,)
    ).start()
    try:
        procs.s3_client(server.endpoint).create_bucket(Bucket=BUCKET)
        yield server
    finally:
        server.stop()


def test_a_refused_delete_fails_the_staging_naming_key_and_code(partial_server, tmp_path, monkeypatch):
    admin = procs.s3_client(partial_server.endpoint)
    admin.put_object(Bucket=BUCKET, Key="runs/1/stray.txt", Body=b"from an older run")
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_DEFAULT",
        procs.aws_conn_json(
            partial_server.endpoint, access_key=PARTIAL.access_key, secret_key=PARTIAL.secret_key
        ),
    )
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "a.txt").write_text("new")

    with pytest.raises(S3DeleteError) as caught:
        S3DataPlane(BacalhauS3Hook()).stage(str(tmp_path / "files"), BUCKET, "runs/1", delete_extra=True)
    assert caught.value.bucket == BUCKET
    assert list(caught.value.failed) == ["runs/1/stray.txt"]
    assert caught.value.failed["runs/1/stray.txt"].startswith("AccessDenied")
    message = str(caught.value)
    assert "runs/1/stray.txt (AccessDenied" in message and "1 of 1" in message
    assert PARTIAL.secret_key not in message
    # The stray object is still there: that is what the job would have read.
    keys = [o["Key"] for o in admin.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert sorted(keys) == ["runs/1/a.txt", "runs/1/stray.txt"]


@pytest.fixture
def dl_bucket(s3_server, request):
    name = "dl-" + hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:16]
    s3_server.client().create_bucket(Bucket=name)
    return name


def test_an_expired_presigned_url_is_named_not_a_checksum_failure(s3_server, dl_bucket, tmp_path):
    client = s3_server.client()
    client.put_object(Bucket=dl_bucket, Key="results/e-1.tar.gz", Body=b"archive")
    url = client.generate_presigned_url(
        "get_object", ExpiresIn=1, Params={"Bucket": dl_bucket, "Key": "results/e-1.tar.gz"}
    )
    time.sleep(2.5)  # past its expiry (SigV4 counts whole seconds)
    with pytest.raises(ResultDownloadError) as caught:
        download_url(url, tmp_path / "e-1.tar.gz")
    assert not isinstance(caught.value, ResultIntegrityError)
    assert caught.value.status == 403
    message = str(caught.value)
    assert "presigned URL has expired" in message and "Request has expired" in message
    assert "X-Amz-Signature" not in message and caught.value.url == url.split("?")[0]


def test_a_missing_result_is_named_not_a_checksum_failure(s3_server, dl_bucket, tmp_path):
    url = s3_server.client().generate_presigned_url(
        "get_object", ExpiresIn=600, Params={"Bucket": dl_bucket, "Key": "results/gone.tar.gz"}
    )
    with pytest.raises(ResultDownloadError, match="HTTP 404.*no such result") as caught:
        download_url(url, tmp_path / "gone.tar.gz")
    assert caught.value.status == 404


def test_staging_into_a_whole_bucket_is_a_prefix_input(s3_server, dl_bucket, tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", s3_server.aws_conn_json())
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "x.txt").write_text("x")
    staged = S3DataPlane(BacalhauS3Hook()).stage(str(tmp_path / "tree"), dl_bucket)
    assert staged.key == "" and not staged.is_single_object
    assert staged.to_spec() == {"Type": "s3", "Params": {"Bucket": dl_bucket}}


def test_an_s3_uri_that_the_amazon_parser_would_cut_is_refused():
    assert parse_s3_uri("s3://b/runs/1/") == ("b", "runs/1/")
    assert parse_s3_uri("s3://b") == ("b", "")
    with pytest.raises(SpecError, match="^restage_to: the s3:// URI has no bucket"):
        parse_s3_uri("s3:///key", "restage_to")
    with pytest.raises(SpecError, match=r"^inputs: an s3:// URI here cannot hold '\?'"):
        parse_s3_uri("s3://b/k?versionId=1")
