"""Data plane end to end on the devstack (real Docker, SeaweedFS S3 over HTTP, the provider's
client): stage → job → publish → chain → fetch, for every publisher, no secret leaking."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import time
import uuid
from pathlib import Path

import pytest

from airflow_provider_bacalhau.client import BacalhauClient, ClientConfig
from airflow_provider_bacalhau.dataplane.inputs import resolve_inputs
from airflow_provider_bacalhau.dataplane.plane import S3DataPlane
from airflow_provider_bacalhau.devstack.testing import SECRET_IDENTITY
from airflow_provider_bacalhau.hooks.s3 import BacalhauS3Hook
from airflow_provider_bacalhau.spec import Job, JobStatus

pytestmark = [pytest.mark.docker, pytest.mark.slow]

# The Airflow connection's secret: a distinctive value to hunt for in logs, XCom and specs.
FAKE_SECRET = SECRET_IDENTITY.secret_key
BUCKET = "dataplane-e2e"
MiB = 1024 * 1024
# Checksums every regular file under /inputs, one "sha256  ./relative/path" line each.
LISTING = (
    "mkdir -p /outputs && cd /inputs && find . -type f | sort | "
    'while IFS= read -r f; do sha256sum "$f"; done > /outputs/listing'
)


@pytest.fixture
def env(devstack_env, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", devstack_env.aws_conn_json(SECRET_IDENTITY))
    client = devstack_env.s3_client()
    if BUCKET not in [b["Name"] for b in client.list_buckets()["Buckets"]]:
        client.create_bucket(Bucket=BUCKET)
    return devstack_env


@pytest.fixture
def api(env):
    with BacalhauClient(ClientConfig(base_url=env.api_url)) as client:
        yield client


SUBMITTED: list[dict] = []


def run_job(api, script: str, *, inputs=(), publisher=None, timeout: float = 90) -> JobStatus:
    task = {
        "Name": "main",
        "Engine": {
            "Type": "docker",
            "Params": {"Image": "busybox", "Entrypoint": ["sh", "-c"], "Parameters": [script]},
        },
        "InputSources": [i.to_dict() for i in inputs],
        "ResultPaths": [{"Name": "outputs", "Path": "/outputs"}],
        "Publisher": publisher
        or {
            "Type": "s3",
            "Params": {"Bucket": BUCKET, "Key": "out/{jobID}/{executionID}", "Encoding": "plain"},
        },
    }
    job = Job.from_dict({"Name": f"dp-{uuid.uuid4().hex[:8]}", "Type": "batch", "Count": 1, "Tasks": [task]})
    SUBMITTED.append(job.to_dict())
    job_id = api.submit_job(job)["JobID"]
    deadline = time.monotonic() + timeout
    while True:
        status = JobStatus.from_api(api.get_job(job_id))
        if status.is_terminal:
            assert status.succeeded, status.failure_summary()
            return status
        assert time.monotonic() < deadline, f"job {job_id} still {status.state}"
        time.sleep(0.2)


def local_sums(root: Path) -> dict[str, str]:
    return {
        "./" + p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file()
    }


def parse_listing(text: str) -> dict[str, str]:
    pairs = (line.split("  ", 1) for line in text.splitlines() if line)
    return {path: digest for digest, path in pairs}


def listing_of(hook, status: JobStatus, dest: Path) -> dict[str, str]:
    [result] = status.results
    out = S3DataPlane(hook).fetch_result(result, dest)
    return parse_listing((out / "outputs" / "listing").read_text())


def test_stage_tree_job_sees_it_byte_for_byte(env, api, tmp_path, monkeypatch):
    tree = tmp_path / "tree"
    (tree / "nested" / "deeper").mkdir(parents=True)
    (tree / "empty.txt").write_bytes(b"")
    (tree / "nested" / "deeper" / "ünïcødé-名前.txt").write_text("grüße\n")
    (tree / "nested" / "small.csv").write_text("a,b\n1,2\n")
    with open(tree / "big.bin", "wb") as out:
        for _ in range(100):
            out.write(os.urandom(MiB))
    hook = BacalhauS3Hook()
    prefix = f"stage/{uuid.uuid4().hex[:8]}"
    staged = S3DataPlane(hook).stage(str(tree), BUCKET, prefix)
    assert (staged.uploaded, staged.skipped) == (4, 0)

    status = run_job(api, LISTING, inputs=resolve_inputs(staged.to_spec()))
    assert listing_of(hook, status, tmp_path / "fetched") == local_sums(tree)

    # The job's listing equals the tree: the staging manifest is beside the prefix, not in it
    # (and may be rewritten below, once the files' stats have settled: not counted).
    puts: list[str] = []
    for op in ("PutObject", "UploadPart", "CreateMultipartUpload"):
        hook.client.meta.events.register(
            f"provide-client-params.s3.{op}", lambda params, **_: puts.append(params["Key"])
        )
    import obstore  # the uploads' engine: every upload the staging sends passes here

    real_put = obstore.put
    monkeypatch.setattr(
        obstore, "put", lambda store, key, *a, **k: puts.append(key) or real_put(store, key, *a, **k)
    )
    again = S3DataPlane(hook).stage(str(tree), BUCKET, prefix)
    assert (again.uploaded, again.skipped, again.bytes_uploaded) == (0, 4, 0)
    assert [key for key in puts if key.startswith(f"{prefix}/")] == []


PUBLISHERS = {
    "s3-gzip": {"Type": "s3", "Params": {"Bucket": BUCKET, "Key": "gz/{jobID}/{executionID}"}},
    "s3-plain": {
        "Type": "s3",
        "Params": {"Bucket": BUCKET, "Key": "pl/{jobID}/{executionID}", "Encoding": "plain"},
    },
    "s3managed": {"Type": "s3managed"},
    "local": {"Type": "local"},
}
WRITE = (
    "mkdir -p /outputs/sub && echo hello > /outputs/a.txt && "
    "head -c 200000 /dev/urandom > /outputs/sub/r.bin && : > /outputs/empty"
)


@pytest.mark.parametrize("publisher", list(PUBLISHERS))
def test_chain_and_fetch_every_publisher(env, api, tmp_path, caplog, publisher):
    caplog.set_level(logging.DEBUG)
    hook = BacalhauS3Hook()
    job_a = run_job(api, WRITE, publisher=PUBLISHERS[publisher])
    [result_a] = job_a.results
    xcom_value = [r.to_dict() for r in job_a.results]  # what the job operator pushes

    inputs = resolve_inputs(xcom_value, s3_hook=hook, bacalhau_client=api, staging_bucket=BUCKET)
    assert [i.target for i in inputs] == ["/inputs"]
    assert inputs[0].source.to_spec()["Params"]["Key"].endswith("/")  # a plain prefix input
    job_b = run_job(api, LISTING, inputs=inputs)
    seen_by_b = listing_of(hook, job_b, tmp_path / "b")

    fetched = S3DataPlane(hook).fetch_result(
        result_a, tmp_path / "a" / result_a.execution_id, bacalhau_client=api
    )
    home = local_sums(fetched)
    assert home == seen_by_b
    assert (fetched / "outputs" / "a.txt").read_text() == "hello\n"
    assert {"./outputs/sub/r.bin", "./outputs/empty", "./stdout"} <= set(home)

    # No secret in the job specs sent, the XCom-shaped values or any log record.
    shown = json.dumps([SUBMITTED, xcom_value, [i.to_dict() for i in inputs]])
    logs = "\n".join(r.getMessage() for r in caplog.records) + caplog.text
    for text in (shown, logs):
        assert FAKE_SECRET not in text
        assert base64.b64encode(FAKE_SECRET.encode()).decode() not in text
    assert "X-Amz-Signature" not in logs


def test_corrupted_published_archive_detected(env, api, tmp_path):
    hook = BacalhauS3Hook()
    status = run_job(api, WRITE, publisher=PUBLISHERS["s3-gzip"])
    [result] = status.results
    assert result.param("ChecksumSHA256")  # the devstack publishes to "AWS": checksum reported
    key = result.param("Key")
    client = env.s3_client()
    body = bytearray(client.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    body[len(body) // 2] ^= 0xFF
    client.put_object(Bucket=BUCKET, Key=key, Body=bytes(body))
    from airflow_provider_bacalhau.errors import ResultIntegrityError

    with pytest.raises(ResultIntegrityError, match="checksum mismatch"):
        S3DataPlane(hook).fetch_result(result, tmp_path / "dest" / "e")
    assert list((tmp_path / "dest").iterdir()) == []
