"""The object-store side of staging: listing a prefix, putting an object and deleting keys.

Listings and PUTs go through an obstore store (requests signed and parsed in Rust: a fraction
of boto3's CPU per request, which is what limits staging when client and server share cores);
DeleteObjects through the boto3 client, whose per-key error report this reads.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_bacalhau.errors import S3DeleteError


def list_prefix(client: Any, bucket: str, prefix: str) -> dict[str, dict[str, Any]]:
    """Every object under ``prefix`` with one ListObjectsV2 walk: key -> {Size, ETag,
    ChecksumAlgorithm}."""
    found: dict[str, dict[str, Any]] = {}
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            found[obj["Key"]] = {
                "Size": obj["Size"],
                "ETag": obj.get("ETag", "").strip('"'),
                "ChecksumAlgorithm": obj.get("ChecksumAlgorithm") or [],
            }
    return found


def list_store(store: Any, prefix: str, store_error: Any) -> dict[str, dict[str, Any]]:
    """Key -> {Size, ETag} under ``prefix`` through an obstore store: the listing parsed in Rust
    (botocore spends most of a 2,000-object listing parsing its timestamps). No
    ChecksumAlgorithm, which some stores never list: the staging manifest answers instead."""
    import obstore

    found: dict[str, dict[str, Any]] = {}
    try:
        for batch in obstore.list(store, prefix or None, chunk_size=1000):
            for meta in batch:
                found[meta["path"]] = {"Size": meta["size"], "ETag": (meta["e_tag"] or "").strip('"')}
    except Exception as exc:  # obstore's errors carry S3's answer: made botocore's
        raise store_error(exc, "ListObjectsV2") from exc
    return found


def delete_keys(client: Any, bucket: str, keys: list[str]) -> None:
    """DeleteObjects in batches of 1000 (S3's limit), failing on any per-key error.

    DeleteObjects answers 200 even when it deletes nothing: each key it refused is listed in
    ``Errors`` (SeaweedFS: AccessDenied for a key the identity may not write). A key left behind
    under a staged prefix is read by the next job, so that is a failure, not a count.
    ``S3Hook.delete_objects`` does check ``Errors`` but keeps only the keys, not S3's codes, and
    takes the bucket through its own client; this keeps the codes the user needs.
    """
    failed: dict[str, str] = {}
    for start in range(0, len(keys), 1000):
        batch = [{"Key": k} for k in keys[start : start + 1000]]
        answer = client.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
        for error in answer.get("Errors") or []:
            failed[str(error.get("Key", ""))] = (
                f"{error.get('Code', '?')}: {error.get('Message', '')}".rstrip(": ")
            )
    if failed:
        shown = ", ".join(f"{key} ({why})" for key, why in sorted(failed.items())[:10])
        more = f" and {len(failed) - 10} more" if len(failed) > 10 else ""
        raise S3DeleteError(
            f"s3://{bucket}/: S3 refused to delete {len(failed)} of {len(keys)} object(s) that are "
            f"not part of this staging: {shown}{more}. They would stay in the input the job reads; "
            f"check that the AWS connection may delete under this prefix.",
            bucket=bucket,
            failed=failed,
        )


def put_object(
    store: Any, key: str, body: Any, *, multipart: bool, part_size: int, concurrency: int, store_error: Any
) -> tuple[str, str]:
    """Upload ``body`` (bytes, or a path streamed from disk) to ``key``: one PUT, or multipart in
    parts of ``part_size``. The store sends a SHA-256 with every request, which S3 checks.
    Returns ``(ETag, VersionId)``."""
    import obstore

    try:
        answer = obstore.put(
            store, key, body, use_multipart=multipart, chunk_size=part_size, max_concurrency=concurrency
        )
    except Exception as exc:  # obstore's errors carry S3's answer: made botocore's
        raise store_error(exc, "PutObject") from exc
    return str(answer.get("e_tag") or "").strip('"'), str(answer.get("version") or "")
