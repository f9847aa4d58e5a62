"""Re-staging: make an archive result (s3 gzip, s3managed, urlDownload) a plain-object S3 prefix
that a compute node can mount, once per archive.

The files go to ``<prefix><sha256 of the archive>/``; a marker object
``<prefix><sha256>.restaged.json`` written last means the work is done, so a second call (a
retry, another task) only checks the marker. A multipart archive is found again through its alias
marker (:mod:`.alias`).
"""

from __future__ import annotations

import base64
import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from airflow_provider_bacalhau.dataplane.alias import alias_key, read_alias, write_alias
from airflow_provider_bacalhau.dataplane.archive import (
    is_composite,
    matches_stored_checksum,
    safe_extract,
)
from airflow_provider_bacalhau.dataplane.fetch import as_result, download_archive, part_size
from airflow_provider_bacalhau.dataplane.staging import normalize_prefix
from airflow_provider_bacalhau.spec import PublishedResult, S3Source

log = logging.getLogger(__name__)

MARKER_SUFFIX = ".restaged.json"


def _write_alias(
    hook: Any, bucket: str, alias: str, archive: Path, result: PublishedResult, digest: str
) -> None:
    """Record composite -> SHA-256, but only for bytes that were checked against the composite
    (a store that cannot tell the part size leaves it unchecked: then no alias)."""
    source = (str(result.param("Bucket")), str(result.param("Key")), str(result.param("VersionID")))
    checked = matches_stored_checksum(
        archive, str(result.param("ChecksumSHA256")), part_size=part_size(hook, *source)
    )
    if checked:
        write_alias(hook.client, bucket, alias, digest)


def _prefix_spec(hook: Any, bucket: str, key: str) -> dict[str, Any]:
    view = hook.compute_s3
    return S3Source(bucket=bucket, key=key, region=view.region, endpoint=view.endpoint).to_spec()


def restage_result(
    plane: Any, result: Any, bucket: str, prefix: str = "bacalhau-staging/", *, bacalhau_client: Any = None
) -> dict[str, Any]:
    """Re-stage ``result`` under ``s3://bucket/prefix<sha256>/`` through ``plane`` (an
    :class:`.plane.S3DataPlane`, which stages the files); returns the prefix source spec."""
    if not bucket:
        raise ValueError("staging_bucket: must not be empty")
    prefix = normalize_prefix(prefix)
    with plane.hook.explained_access_errors("re-staging a result into", bucket):
        return _restage(plane, as_result(result), bucket, prefix, bacalhau_client)


def _already(hook: Any, bucket: str, prefix: str, digest: str) -> dict[str, Any] | None:
    if not hook.object_exists(bucket, f"{prefix}{digest}{MARKER_SUFFIX}"):
        return None
    log.info("Result already re-staged at s3://%s/%s%s/", bucket, prefix, digest)
    return _prefix_spec(hook, bucket, f"{prefix}{digest}/")


def _restage(
    plane: Any, result: PublishedResult, bucket: str, prefix: str, bacalhau_client: Any
) -> dict[str, Any]:
    hook = plane.hook
    published = str(result.param("ChecksumSHA256"))
    if result.type == "s3" and published and not is_composite(published):
        done = _already(hook, bucket, prefix, base64.b64decode(published).hex())
        if done:
            return done
    alias = ""
    if result.type == "s3" and published and is_composite(published):
        # A multipart archive's own SHA-256 is known only after downloading it; an alias
        # marker named by the published composite (which pins the bytes as firmly) points at
        # the prefix, so a second call downloads nothing either.
        alias = alias_key(prefix, published, MARKER_SUFFIX)
        known = read_alias(hook.client, bucket, alias)
        done = _already(hook, bucket, prefix, known) if known else None
        if done:
            return done
    scratch = Path(tempfile.mkdtemp(prefix="bacalhau-restage-"))
    try:
        (scratch / "download").mkdir()
        with hook.explained_access_errors("downloading a result from", str(result.param("Bucket") or bucket)):
            archive, digest = download_archive(
                hook, result, scratch / "download", bacalhau_client=bacalhau_client
            )
        if alias:
            _write_alias(hook, bucket, alias, archive, result, digest)
        done = _already(hook, bucket, prefix, digest)
        if done:
            return done
        target = f"{prefix}{digest}/"
        safe_extract(archive, scratch / "files")
        staged = plane.stage_quietly(str(scratch / "files"), bucket, target, delete_extra=True)
        manifest = {
            "Result": {"Type": result.type, "JobID": result.job_id, "ExecutionID": result.execution_id},
            "SHA256": digest,
            "Files": len(staged.keys),
        }
        hook.client.put_object(
            Bucket=bucket,
            Key=f"{prefix}{digest}{MARKER_SUFFIX}",
            ChecksumAlgorithm="SHA256",
            Body=json.dumps(manifest).encode(),
            ContentType="application/json",
        )
        log.info(
            "Re-staged %s result (%d file(s)) at s3://%s/%s", result.type, len(staged.keys), bucket, target
        )
        return _prefix_spec(hook, bucket, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
