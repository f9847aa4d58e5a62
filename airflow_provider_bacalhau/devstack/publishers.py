"""Publishers of the devstack compute node (Bacalhau v1.9.3 ``pkg/publisher/*``).

The results directory holds ``stdout``, ``stderr``, ``exitCode`` and one directory per result path;
it is always published (even without result paths) when the task names a publisher.
"""

from __future__ import annotations

import logging
import os
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_provider_bacalhau.devstack.compute_common import (
    ComputeError,
    S3Clients,
    is_aws_endpoint,
    s3_error,
    same_type,
)
from airflow_provider_bacalhau.devstack.decode import field, text

log = logging.getLogger(__name__)

PUBLISHER_TYPES = ("s3", "s3managed", "local", "noop")
MANAGED_UNAVAILABLE = "Managed S3 publisher is not available"
_PUT_RETRIES = 5  # PreSignedURLUploadRetryCount
# The Go SDK uploader's defaults (feature/s3/manager upload.go: DefaultUploadPartSize =
# MinUploadPartSize = 5 MiB, DefaultUploadConcurrency = 5, MaxUploadParts = 10000).
PART_SIZE = 5 * 1024 * 1024
UPLOAD_CONCURRENCY = 5
MAX_PARTS = 10_000


@dataclass
class PublishContext:
    clients: S3Clients
    job_id: str
    execution_id: str
    node_id: str
    local_publisher_dir: Path
    local_publisher_base_url: str
    presign_managed_put: Callable[[str, str], str] | None = None


def publisher_type(publisher: Any) -> str:
    return text(publisher, "Type").strip()


def validate_publisher(publisher: Any) -> str | None:
    """The params error the real node reports for this publisher, or None."""
    if not same_type(publisher_type(publisher), "s3"):
        return None
    params = field(publisher, "Params") or {}
    if not text(params, "Bucket"):
        return "invalid s3 params. bucket cannot be empty"
    if not text(params, "Key"):
        return "invalid s3 params. key cannot be empty"
    if text(params, "Encoding") not in ("", "gzip", "plain"):
        return "invalid s3 params. encoding must be either 'plain' or 'gzip'"
    return None


def publish(publisher: Any, results_dir: Path, context: PublishContext) -> dict | None:
    """Publish ``results_dir``; return the raw ``PublishedResult`` (None when there is no publisher)."""
    kind = publisher_type(publisher)
    if not kind:
        return None
    try:
        if same_type(kind, "s3"):
            return _publish_s3(field(publisher, "Params") or {}, results_dir, context)
        if same_type(kind, "s3managed"):
            return _publish_managed(results_dir, context)
        if same_type(kind, "local"):
            return _publish_local(results_dir, context)
        if same_type(kind, "noop"):
            return {"Type": ""}  # Bacalhau's noop publisher returns an empty SpecConfig
    except ComputeError as exc:
        raise ComputeError(f"failed to publish result: {exc}") from exc
    raise ComputeError(f"failed to get publisher {kind}: does not support {kind}")


def write_tarball(results_dir: Path, destination: Path) -> None:
    """A gzip tar with relative members (``.``, ``exitCode``, ``stderr``, ``stdout``, ``<name>/...``)."""
    with tarfile.open(destination, "w:gz") as tar:
        tar.add(results_dir, arcname=".", recursive=False)
        for root, dirs, files in os.walk(results_dir):
            dirs.sort()
            for name in sorted(dirs) + sorted(files):
                path = Path(root) / name
                tar.add(path, arcname=path.relative_to(results_dir).as_posix(), recursive=False)


def published_key(key: str, encoding: str, context: PublishContext) -> str:
    """Bacalhau's ``ParsePublishedKey``: the suffix first, then the literal placeholders."""
    if encoding == "plain":
        if not key.endswith("/"):
            key += "/"
    elif not key.endswith(".tar.gz"):
        key += ".tar.gz"
    key = key.replace("{nodeID}", context.node_id)
    key = key.replace("{executionID}", context.execution_id)
    key = key.replace("{jobID}", context.job_id)
    key = key.replace("{date}", time.strftime("%Y%m%d"))
    return key.replace("{time}", time.strftime("%H%M%S"))


def upload(client: Any, bucket: str, key: str, path: Path, *, aws: bool) -> dict:
    """Upload one file as the Go SDK's ``manager.Uploader`` (defaults) does for Bacalhau's s3
    publisher (pkg/publisher/s3/publisher.go ``publishArchive``/``publishDirectory``;
    feature/s3/manager ``upload.go``): one PutObject up to :data:`PART_SIZE` bytes, else a
    multipart upload of :data:`PART_SIZE` parts (larger only past 10,000 parts), five at a time.

    The publisher asks for SHA-256 only on AWS endpoints (``IsAWSEndpoint``); elsewhere the SDK's
    default (``RequestChecksumCalculationWhenSupported``) gives multipart parts CRC32. Returns the
    PutObject or CompleteMultipartUpload answer (``VersionId``, ``ChecksumSHA256``, ``ETag``).
    """
    size = path.stat().st_size
    part_size = PART_SIZE if size // PART_SIZE < MAX_PARTS else size // MAX_PARTS + 1
    if size <= part_size:
        request: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if aws:
            request["ChecksumAlgorithm"] = "SHA256"
        try:
            with open(path, "rb") as body:
                return client.put_object(Body=body, **request)
        except Exception as exc:
            raise ComputeError(s3_error("PutObject", exc)) from exc
    algorithm = "SHA256" if aws else "CRC32"
    try:
        upload_id = client.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm=algorithm)[
            "UploadId"
        ]
    except Exception as exc:
        raise ComputeError(s3_error("CreateMultipartUpload", exc)) from exc

    def send(number: int) -> dict:
        with open(path, "rb") as handle:
            handle.seek((number - 1) * part_size)
            body = handle.read(part_size)
        try:
            answer = client.upload_part(
                Bucket=bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                Body=body,
                ChecksumAlgorithm=algorithm,
            )
        except Exception as exc:
            raise ComputeError(s3_error("UploadPart", exc)) from exc
        part = {"PartNumber": number, "ETag": answer["ETag"]}
        part.update({k: v for k, v in answer.items() if k.startswith("Checksum") and k != "ChecksumType"})
        return part

    count = -(-size // part_size)
    try:
        with ThreadPoolExecutor(UPLOAD_CONCURRENCY, thread_name_prefix="devstack-upload") as pool:
            parts = list(pool.map(send, range(1, count + 1)))
        try:
            return client.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except Exception as exc:
            raise ComputeError(s3_error("CompleteMultipartUpload", exc)) from exc
    except BaseException:
        try:  # the manager's fail(): abort, so no parts are left behind
            client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        except Exception:  # noqa: BLE001 - best effort, the upload error is what matters
            log.warning("could not abort multipart upload of s3://%s/%s", bucket, key)
        raise


def _publish_s3(params: Any, results_dir: Path, context: PublishContext) -> dict:
    bucket, endpoint, region = text(params, "Bucket"), text(params, "Endpoint"), text(params, "Region")
    encoding = text(params, "Encoding") or "gzip"
    key = published_key(text(params, "Key"), encoding, context)
    client = context.clients.client(endpoint, region)
    version_id = checksum = ""
    if encoding == "plain":
        for path in sorted(p for p in results_dir.rglob("*") if p.is_file()):
            object_key = key + path.relative_to(results_dir).as_posix()
            upload(client, bucket, object_key, path, aws=is_aws_endpoint(endpoint))
    else:
        archive = results_dir.parent / f"{context.execution_id}-publish.tar.gz"
        write_tarball(results_dir, archive)
        try:
            answer = upload(client, bucket, key, archive, aws=is_aws_endpoint(endpoint))
        finally:
            archive.unlink(missing_ok=True)
        # publishArchive reports the uploader's answer as is: for a multipart upload that is
        # CompleteMultipartUpload's composite "<b64>-<parts>", not the archive's own SHA-256.
        version_id = answer.get("VersionId") or ""
        checksum = (answer.get("ChecksumSHA256") or "") if is_aws_endpoint(endpoint) else ""
    return {
        "Type": "s3",
        "Params": {
            "Bucket": bucket,
            "Key": key,
            "Filter": "",
            "Region": region,
            "Endpoint": endpoint,
            "VersionID": version_id,
            "ChecksumSHA256": checksum,
            "Partition": {"Type": "", "Pattern": "", "StartIndex": 0, "EndIndex": 0, "DateFormat": ""},
        },
    }


def _publish_managed(results_dir: Path, context: PublishContext) -> dict:
    if context.presign_managed_put is None:
        raise ComputeError(MANAGED_UNAVAILABLE)
    try:
        url = context.presign_managed_put(context.job_id, context.execution_id)
    except Exception as exc:
        log.info("managed publisher refused a URL: %s", exc)
        raise ComputeError(MANAGED_UNAVAILABLE) from exc
    archive = results_dir.parent / f"{context.execution_id}-managed.tar.gz"
    write_tarball(results_dir, archive)
    try:
        _put_with_retries(url, archive)
    finally:
        archive.unlink(missing_ok=True)
    return {"Type": "s3managed", "Params": {"JobID": context.job_id, "ExecutionID": context.execution_id}}


def _put_with_retries(url: str, archive: Path) -> None:
    """The managed uploader (pkg/publisher/s3managed/url_uploader.go): one plain HTTP PUT of the
    whole archive, no multipart, with ``Content-Type: application/octet-stream`` (not signed:
    ``GeneratePresignedPutURL`` presigns a bare PutObject). Any failure is retried, 5 retries
    after 1, 2, 4, 8, 16 s (capped at 30 s)."""
    size = archive.stat().st_size
    last = ""
    for attempt in range(_PUT_RETRIES + 1):
        if attempt:
            time.sleep(min(float(1 << (attempt - 1)), 30.0))
        try:
            with open(archive, "rb") as body:
                request = urllib.request.Request(
                    url,
                    data=body,
                    method="PUT",
                    headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
                )
                with urllib.request.urlopen(request, timeout=120) as response:
                    if 200 <= response.status < 300:
                        return
                    last = f"upload failed with status code: {response.status}"
        except urllib.error.HTTPError as exc:
            last = f"upload failed with status code: {exc.code}"
        except OSError as exc:
            last = f"failed to upload file: {exc}"
    # The presigned URL itself is a secret of sorts: never put it in the message.
    raise ComputeError(f"failed to upload after {_PUT_RETRIES + 1} attempts: {last}")


def _publish_local(results_dir: Path, context: PublishContext) -> dict:
    context.local_publisher_dir.mkdir(parents=True, exist_ok=True)
    name = f"{context.execution_id}.tar.gz"
    partial = context.local_publisher_dir / f".{name}.partial"
    write_tarball(results_dir, partial)
    partial.replace(context.local_publisher_dir / name)
    return {
        "Type": "urlDownload",
        "Params": {"URL": f"{context.local_publisher_base_url.rstrip('/')}/{name}"},
    }
