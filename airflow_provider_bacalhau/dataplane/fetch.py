"""Bring published results to the Airflow side: S3 objects and prefixes, s3managed and local
publisher URLs, each verified against the checksum S3 stored or the node published.

Works through a :class:`~airflow_provider_bacalhau.hooks.s3.BacalhauS3Hook` (its clients and
its access-error translation); nothing here reads a connection.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_bacalhau.dataplane.archive import (
    MiB,
    b64_digest,
    matches_stored_checksum,
    safe_extract,
)
from airflow_provider_bacalhau.dataplane.download import (
    download_node_url,
    download_url,
    managed_url,
    safe_url,
)
from airflow_provider_bacalhau.dataplane.objects import list_prefix
from airflow_provider_bacalhau.errors import ResultIntegrityError
from airflow_provider_bacalhau.spec import PublishedResult

log = logging.getLogger(__name__)


def as_result(result: Any) -> PublishedResult:
    """A PublishedResult from itself, its XCom dict or a bare ``{"Type", "Params"}``."""
    if isinstance(result, PublishedResult):
        return result
    return PublishedResult.from_dict(result.to_dict() if hasattr(result, "to_dict") else result)


def part_size(hook: Any, bucket: str, key: str, version_id: str) -> int | None:
    """The first part's size of a multipart object (HEAD with PartNumber=1), None if unknown."""
    args: dict[str, Any] = {"Bucket": bucket, "Key": key, "PartNumber": 1}
    if version_id:
        args["VersionId"] = version_id
    try:
        return int(hook.client.head_object(**args)["ContentLength"])
    except Exception:  # a store without part-number HEAD: cannot check, say so
        log.warning("s3://%s/%s: multipart checksum cannot be checked here", bucket, key)
        return None


def download_object(
    hook: Any,
    bucket: str,
    key: str,
    path: Path,
    *,
    version_id: str = "",
    expected_b64: str = "",
    etag: str | None = None,
) -> str:
    """GET one object to ``path``; verify it against S3's stored SHA-256 and ``expected_b64``.
    ``etag`` (from a listing) tells a multipart object; None means HEAD to find out.
    Returns the hex SHA-256 of the bytes received."""
    from botocore.exceptions import FlexibleChecksumError

    versioned: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if version_id:
        versioned["VersionId"] = version_id
    stored = ""
    if etag is None or "-" in etag:
        head = hook.client.head_object(**versioned, ChecksumMode="ENABLED")
        etag, stored = head.get("ETag", ""), head.get("ChecksumSHA256") or ""
    multipart = "-" in etag
    sha = hashlib.sha256()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if multipart:
            answer = hook.multipart_client.get_object(**versioned)
        else:
            answer = hook.client.get_object(**versioned, ChecksumMode="ENABLED")
            stored = answer.get("ChecksumSHA256") or ""
        with open(path, "wb") as out:
            for chunk in answer["Body"].iter_chunks(MiB):
                sha.update(chunk)
                out.write(chunk)
    except FlexibleChecksumError as exc:
        raise ResultIntegrityError(
            f"s3://{bucket}/{key}: checksum mismatch, the bytes received do not match the SHA-256 S3 stored"
        ) from exc
    got = b64_digest(sha.digest())
    for label, want in (("stored", stored), ("published", expected_b64)):
        if not want:
            continue
        if not multipart:
            same = want == got
        else:  # recompute the composite with the object's part size
            same = matches_stored_checksum(
                path, want, etag=etag, part_size=part_size(hook, bucket, key, version_id)
            )
        if same is False:
            raise ResultIntegrityError(
                f"s3://{bucket}/{key}: checksum mismatch, {label} ChecksumSHA256 is {want} "
                f"but the downloaded bytes give {got}"
            )
    return sha.hexdigest()


def download_prefix(hook: Any, bucket: str, prefix: str, dest: Path) -> tuple[int, int]:
    """Every object under ``prefix`` into ``dest`` with its relative path; (count, bytes)."""
    objects = {k: v for k, v in list_prefix(hook.client, bucket, prefix).items() if not k.endswith("/")}
    root = dest.resolve()
    jobs = []
    for key in objects:
        relative = PurePosixPath(key[len(prefix) :])
        target = (root / relative).resolve()
        if ".." in relative.parts or relative.is_absolute() or not target.is_relative_to(root):
            raise ResultIntegrityError(f"s3://{bucket}/{key}: key escapes the destination")
        jobs.append((key, target))
    dest.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(hook.max_workers, thread_name_prefix="bacalhau-fetch") as pool:
        list(
            pool.map(
                lambda job: download_object(hook, bucket, job[0], job[1], etag=objects[job[0]]["ETag"]), jobs
            )
        )
    return len(jobs), sum(v["Size"] for v in objects.values())


def download_archive(
    hook: Any, result: Any, workdir: Path, *, bacalhau_client: Any = None
) -> tuple[Path, str]:
    """Bring a single-object result (s3 archive, s3managed, urlDownload) into ``workdir``,
    verified where a checksum was published. Returns ``(path, sha256 hex)``."""
    result = as_result(result)
    if result.type == "s3":
        key = str(result.param("Key"))
        path = workdir / (PurePosixPath(key).name or "object")
        digest = download_object(
            hook,
            str(result.param("Bucket")),
            key,
            path,
            version_id=str(result.param("VersionID")),
            expected_b64=str(result.param("ChecksumSHA256")),
        )
    elif result.type == "s3managed":
        url = managed_url(result.job_id, result.execution_id, bacalhau_client)
        path = workdir / (PurePosixPath(urlsplit(url).path).name or "result.tar.gz")
        log.info("s3managed result has no published checksum; downloading %s", safe_url(url))
        digest = download_url(url, path)
    elif result.type == "urlDownload":
        url = str(result.param("URL"))
        if not url:
            raise ValueError("result.Params.URL: missing")
        path = workdir / (PurePosixPath(urlsplit(url).path).name or "result.tar.gz")
        digest = download_node_url(url, path)  # the node's own address: best effort
    else:
        raise ValueError(f"result.Type: {result.type!r} cannot be downloaded (s3, s3managed or urlDownload)")
    return path, digest


def _replace_dir(source: Path, dest: Path, scratch: Path) -> None:
    """Move ``source`` to ``dest``; an existing ``dest`` is swapped out, then removed."""
    if dest.exists():
        os.replace(dest, scratch / "previous")
    os.replace(source, dest)


def fetch_result(
    hook: Any, result: Any, destination: str | os.PathLike, *, bacalhau_client: Any = None
) -> Path:
    """Download a published result into ``destination`` (a directory, replaced if present).

    s3 plain: every object under the prefix; archives (s3 gzip, s3managed, urlDownload):
    downloaded, verified, extracted safely. Work happens in a temporary directory beside
    ``destination`` and moves into place only when all checks passed.
    """
    started = time.monotonic()
    result = as_result(result)
    dest = Path(destination)
    dest.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    try:
        with hook.explained_access_errors("fetching from", str(result.param("Bucket"))):
            content = scratch / "content"
            key = str(result.param("Key"))
            if result.type == "s3" and (key.endswith("/") or not key):
                count, size = download_prefix(hook, str(result.param("Bucket")), key, content)
            else:
                (scratch / "download").mkdir()
                archive, _ = download_archive(
                    hook, result, scratch / "download", bacalhau_client=bacalhau_client
                )
                size = archive.stat().st_size
                if archive.name.endswith((".tar.gz", ".tgz", ".tar")):
                    count = safe_extract(archive, content)
                else:
                    content.mkdir()
                    os.replace(archive, content / archive.name)
                    count = 1
            _replace_dir(content, dest, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    log.info(
        "Fetched %s result into %s: %d file(s), %.1f MiB in %.2f s",
        result.type,
        dest,
        count,
        size / MiB,
        time.monotonic() - started,
    )
    return dest
