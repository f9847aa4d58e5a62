"""The staging manifest against a real SeaweedFS: it spares the per-object HEADs that SeaweedFS's
listing (no ChecksumAlgorithm) would need, and is trusted only while it agrees with S3 and the
local files."""

from __future__ import annotations

import json
import logging
import os
import uuid

import pytest

from airflow_provider_bacalhau.dataplane import manifest
from airflow_provider_bacalhau.dataplane.plane import S3DataPlane
from airflow_provider_bacalhau.hooks.s3 import BacalhauS3Hook

BUCKET = "manifest-tests"


@pytest.fixture
def admin(s3_server, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", s3_server.aws_conn_json())
    client = s3_server.client()
    if BUCKET not in {b["Name"] for b in client.list_buckets()["Buckets"]}:
        client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture
def prefix():
    return f"m/{uuid.uuid4().hex[:8]}"


def tree(root, count: int = 6) -> dict[str, bytes]:
    files = {f"d{i % 2}/f{i}.bin": os.urandom(100 + i) for i in range(count)}
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


def requests_of(hook: BacalhauS3Hook, *ops: str) -> list[str]:
    sent: list[str] = []
    for op in ops:
        hook.client.meta.events.register(
            f"provide-client-params.s3.{op}", lambda params, op=op, **_: sent.append(f"{op} {params['Key']}")
        )
    return sent


@pytest.fixture
def engine_puts(monkeypatch) -> list[str]:
    """Every key the staging uploads (obstore is its engine), recorded on the way out."""
    import obstore

    sent: list[str] = []
    real_put = obstore.put
    monkeypatch.setattr(
        obstore, "put", lambda store, key, *a, **k: sent.append(key) or real_put(store, key, *a, **k)
    )
    return sent


def read_manifest_json(admin, prefix: str) -> dict:
    return json.loads(admin.get_object(Bucket=BUCKET, Key=f"{prefix}.bacalhau-staged.json")["Body"].read())


def test_no_change_needs_no_head_and_the_manifest_stays_outside_the_prefix(
    admin, prefix, tmp_path, engine_puts
):
    files = tree(tmp_path / "t")
    hook = BacalhauS3Hook()
    assert S3DataPlane(hook).stage(str(tmp_path / "t"), BUCKET, prefix).uploaded == len(files)
    listed = [o["Key"] for o in admin.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/")["Contents"]]
    assert sorted(listed) == sorted(f"{prefix}/{rel}" for rel in files)
    entries = read_manifest_json(admin, prefix)["Objects"]
    for rel, data in files.items():
        head = admin.head_object(Bucket=BUCKET, Key=f"{prefix}/{rel}", ChecksumMode="ENABLED")
        assert entries[rel]["sha256"] == head["ChecksumSHA256"]
        assert entries[rel]["etag"] == head["ETag"].strip('"') and entries[rel]["size"] == len(data)

    assert len(engine_puts) == len(files) + 1  # and the manifest
    engine_puts.clear()
    sent = requests_of(hook, "HeadObject", "PutObject")
    again = S3DataPlane(hook).stage(str(tmp_path / "t"), BUCKET, prefix)
    assert (again.uploaded, again.skipped) == (0, len(files))
    # SeaweedFS lists no ChecksumAlgorithm: without the manifest this would be one HEAD each.
    assert sent == []
    assert [key for key in engine_puts if key.startswith(f"{prefix}/")] == []


def test_an_object_overwritten_by_someone_else_is_uploaded_again(admin, prefix, tmp_path):
    files = tree(tmp_path / "t")
    hook = BacalhauS3Hook()
    S3DataPlane(hook).stage(str(tmp_path / "t"), BUCKET, prefix)
    rel = "d0/f0.bin"
    admin.put_object(Bucket=BUCKET, Key=f"{prefix}/{rel}", Body=os.urandom(len(files[rel])))

    again = S3DataPlane(hook).stage(str(tmp_path / "t"), BUCKET, prefix)
    assert (again.uploaded, again.skipped) == (1, len(files) - 1)
    stored = admin.get_object(Bucket=BUCKET, Key=f"{prefix}/{rel}", ChecksumMode="ENABLED")
    assert stored["Body"].read() == files[rel] and stored["ChecksumSHA256"]


def test_a_same_size_write_is_seen_even_with_its_mtime_put_back(admin, prefix, tmp_path, monkeypatch):
    monkeypatch.setattr(manifest, "_SETTLED_NS", 0)  # trust the stats at once: no 2 s wait
    files = tree(tmp_path / "t")
    hook = BacalhauS3Hook()
    S3DataPlane(hook).stage(str(tmp_path / "t"), BUCKET, prefix)
    assert all(entry["stat"] for entry in read_manifest_json(admin, prefix)["Objects"].values())
    assert S3DataPlane(hook).stage(str(tmp_path / "t"), BUCKET, prefix).uploaded == 0

    path = tmp_path / "t" / "d1" / "f3.bin"
    before = path.stat()
    path.write_bytes(os.urandom(len(files["d1/f3.bin"])))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # as tar -x or cp -p would
    third = S3DataPlane(hook).stage(str(tmp_path / "t"), BUCKET, prefix)
    assert (third.uploaded, third.skipped) == (1, len(files) - 1)
    assert admin.get_object(Bucket=BUCKET, Key=f"{prefix}/d1/f3.bin")["Body"].read() == path.read_bytes()


def test_an_unreadable_manifest_falls_back_to_comparing_with_s3(admin, prefix, tmp_path, caplog):
    files = tree(tmp_path / "t")
    hook = BacalhauS3Hook()
    S3DataPlane(hook).stage(str(tmp_path / "t"), BUCKET, prefix)
    admin.put_object(Bucket=BUCKET, Key=f"{prefix}.bacalhau-staged.json", Body=b"{not json")

    sent = requests_of(hook, "HeadObject")
    with caplog.at_level(logging.WARNING):
        again = S3DataPlane(hook).stage(str(tmp_path / "t"), BUCKET, prefix)
    assert (again.uploaded, again.skipped) == (0, len(files))
    assert "no staging manifest this version reads" in caplog.text
    assert len(sent) == len(files)  # compared by HEAD, each
    assert set(read_manifest_json(admin, prefix)["Objects"]) == set(files)  # and rewritten


def test_force_uploads_everything_and_the_bucket_root_gets_no_manifest(admin, tmp_path):
    bucket = f"root-{uuid.uuid4().hex[:8]}"
    admin.create_bucket(Bucket=bucket)
    files = tree(tmp_path / "t", count=3)
    plane = S3DataPlane(BacalhauS3Hook())
    assert plane.stage(str(tmp_path / "t"), bucket).uploaded == 3
    assert plane.stage(str(tmp_path / "t"), bucket, force=True).uploaded == 3
    listed = [o["Key"] for o in admin.list_objects_v2(Bucket=bucket)["Contents"]]
    assert sorted(listed) == sorted(files)  # jobs reading the whole bucket see only the files


def test_an_identity_allowed_only_under_the_prefix_stages_without_the_manifest(tmp_path, monkeypatch, caplog):
    from airflow_provider_bacalhau.devstack import procs, s3server

    only = s3server.Identity("prefix-only-key", "prefix-only-secret", ("pfx-bucket/allowed/*",))
    server = s3server.SeaweedServer(
        tmp_path / "s3", log_path=tmp_path / "weed.log", die_with_parent=True, identities=(only,)
    ).start()
    try:
        procs.s3_client(server.endpoint).create_bucket(Bucket="pfx-bucket")
        monkeypatch.setenv(
            "AIRFLOW_CONN_AWS_DEFAULT",
            procs.aws_conn_json(server.endpoint, access_key=only.access_key, secret_key=only.secret_key),
        )
        files = tree(tmp_path / "t", count=3)
        with caplog.at_level(logging.WARNING):
            staged = S3DataPlane(BacalhauS3Hook()).stage(str(tmp_path / "t"), "pfx-bucket", "allowed")
            again = S3DataPlane(BacalhauS3Hook()).stage(str(tmp_path / "t"), "pfx-bucket", "allowed")
        assert (staged.uploaded, again.uploaded, again.skipped) == (3, 0, 3)
        assert "may not write allowed.bacalhau-staged.json (AccessDenied)" in caplog.text
        listed = procs.s3_client(server.endpoint).list_objects_v2(Bucket="pfx-bucket")["Contents"]
        assert sorted(o["Key"] for o in listed) == sorted(f"allowed/{rel}" for rel in files)
    finally:
        server.stop()
