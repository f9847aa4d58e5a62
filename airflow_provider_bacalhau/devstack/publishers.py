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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

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
_PUT_ATTEMPTS = 5


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


def _publish_s3(params: Any, results_dir: Path, context: PublishContext) -> dict:
    bucket, endpoint, region = text(params, "Bucket"), text(params, "Endpoint"), text(params, "Region")
    encoding = text(params, "Encoding") or "gzip"
    key = published_key(text(params, "Key"), encoding, context)
    client = context.clients.client(endpoint, region)
    version_id = checksum = ""
    if encoding == "plain":
        for path in sorted(p for p in results_dir.rglob("*") if p.is_file()):
            object_key = key + path.relative_to(results_dir).as_posix()
            try:
                with open(path, "rb") as body:
                    client.put_object(Bucket=bucket, Key=object_key, Body=body)
            except Exception as exc:
                raise ComputeError(s3_error("PutObject", exc)) from exc
    else:
        archive = results_dir.parent / f"{context.execution_id}-publish.tar.gz"
        write_tarball(results_dir, archive)
        request: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if is_aws_endpoint(endpoint):
            request["ChecksumAlgorithm"] = "SHA256"
        try:
            with open(archive, "rb") as body:
                answer = client.put_object(Body=body, **request)
        except Exception as exc:
            raise ComputeError(s3_error("PutObject", exc)) from exc
        finally:
            archive.unlink(missing_ok=True)
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
    """One HTTP PUT of the archive, retried with exponential backoff (as the managed uploader)."""
    size = archive.stat().st_size
    last = ""
    for attempt in range(_PUT_ATTEMPTS):
        if attempt:
            time.sleep(min(0.5 * 2 ** (attempt - 1), 30.0))
        try:
            with open(archive, "rb") as body:
                request = urllib.request.Request(
                    url,
                    data=body,
                    method="PUT",
                    # moto can hang on a presigned PUT without an explicit Content-Type.
                    headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
                )
                with urllib.request.urlopen(request, timeout=120) as response:
                    if 200 <= response.status < 300:
                        return
                    last = f"unexpected status code {response.status}"
        except urllib.error.HTTPError as exc:
            last = f"upload failed with status {exc.code}"
            if exc.code < 500 and exc.code not in (408, 429):
                break
        except OSError as exc:
            last = f"upload failed: {exc}"
    # The presigned URL itself is a secret of sorts: never put it in the message.
    raise ComputeError(f"failed to upload results to managed storage: {last}")


def _publish_local(results_dir: Path, context: PublishContext) -> dict:
    context.local_publisher_dir.mkdir(parents=True, exist_ok=True)
    name = f"{context.execution_id}.tar.gz"
    partial = context.local_publisher_dir / f".{name}.partial"
    write_tarball(results_dir, partial)
    partial.replace(context.local_publisher_dir / name)
    return {"Type": "urlDownload", "Params": {"URL": f"{context.local_publisher_base_url.rstrip('/')}/{name}"}}
