"""BacalhauS3Hook: stage local data to S3, fetch published results, re-stage them as inputs.

Everything goes through the Airflow AWS connection via the amazon provider's ``S3Hook``, so any
S3-compatible store that connection reaches works (``endpoint_url`` in its extra: MinIO, GCS HMAC,
SeaweedFS). The connection's credentials stay on the Airflow side: a source spec returned here never
carries them, and compute nodes read the data with their own. Nor does a source spec carry the
connection's endpoint or region: it names S3 as the compute nodes see it (``compute_s3``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_bacalhau._archive import (
    b64_digest,
    is_composite,
    matches_stored_checksum,
    safe_extract,
)
from airflow_provider_bacalhau._staging import MiB, StagedInput, Uploader, normalize_prefix
from airflow_provider_bacalhau._url_download import (
    download_node_url,
    download_url,
    managed_url,
    safe_url,
)
from airflow_provider_bacalhau.errors import ResultIntegrityError, S3AccessError
from airflow_provider_bacalhau.hooks._alias import alias_key, read_alias, write_alias
from airflow_provider_bacalhau.hooks._compute_s3 import ComputeS3View
from airflow_provider_bacalhau.spec import PublishedResult

log = logging.getLogger(__name__)

MARKER_SUFFIX = ".restaged.json"
# S3's answers to credentials it rejects, and what each means for the Airflow connection.
_ACCESS_ERRORS = {
    "SignatureDoesNotMatch": "its secret key does not match its access key id",
    "InvalidAccessKeyId": "S3 does not know its access key id",
    "InvalidToken": "its session token is invalid",
    "ExpiredToken": "its session token has expired",
    "AccessDenied": "its identity may not do this",
}


def _as_result(result: Any) -> PublishedResult:
    """A PublishedResult from itself, its XCom dict or a bare ``{"Type", "Params"}``."""
    if isinstance(result, PublishedResult):
        return result
    return PublishedResult.from_dict(result.to_dict() if hasattr(result, "to_dict") else result)


def _replace_dir(source: Path, dest: Path, scratch: Path) -> None:
    """Move ``source`` to ``dest``; an existing ``dest`` is swapped out, then removed."""
    if dest.exists():
        old = scratch / "previous"
        os.replace(dest, old)
    os.replace(source, dest)


class BacalhauS3Hook(BaseHook):
    """S3 side of Bacalhau pipelines, through an Airflow AWS connection.

    :param aws_conn_id: Airflow AWS connection (``endpoint_url``/``region_name`` in its extra for
        S3-compatible stores).
    :param max_workers: files transferred in parallel.
    :param multipart_threshold: files at least this big are uploaded in parts.
    :param multipart_chunksize: part size of multipart uploads.
    :param compute_s3: S3 as the compute nodes reach it: the Endpoint/Region of the source specs
        this hook returns (staged and re-staged prefixes). Default: none (AWS or the nodes'
        default), never this AWS connection's endpoint, which is Airflow's view.
    """

    conn_name_attr = "aws_conn_id"
    default_conn_name = "aws_default"
    hook_name = "Bacalhau S3 (through an AWS connection)"

    def __init__(self, aws_conn_id: str | None = "aws_default", *, max_workers: int = 16,
                 multipart_threshold: int = 64 * MiB, multipart_chunksize: int = 16 * MiB,
                 compute_s3: ComputeS3View | None = None) -> None:
        super().__init__()
        self.compute_s3 = compute_s3 or ComputeS3View()
        self.aws_conn_id = aws_conn_id
        self.max_workers = max_workers
        self.multipart_threshold = multipart_threshold
        self.multipart_chunksize = multipart_chunksize

    @cached_property
    def s3_hook(self) -> Any:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        return S3Hook(aws_conn_id=self.aws_conn_id)

    def _make_client(self, **config_kwargs: Any) -> Any:
        from botocore.config import Config

        hook = self.s3_hook
        config = hook.config.merge(Config(max_pool_connections=self.max_workers + 4,
                                          **config_kwargs))
        return hook.get_client_type(region_name=hook.region_name, config=config)

    @cached_property
    def client(self) -> Any:
        """One boto3 S3 client for all threads, its pool sized for ``max_workers``."""
        return self._make_client()

    @cached_property
    def _multipart_client(self) -> Any:
        # botocore checks a GET against a stored checksum unless that has AWS's "-N" suffix;
        # some S3-compatible stores keep a multipart composite without it, so such objects are read
        # unchecked by botocore and verified here against the composite instead.
        return self._make_client(response_checksum_validation="when_required")

    @contextmanager
    def _explained_access_errors(self, action: str, bucket: str) -> Iterator[None]:
        """Turn S3's refusal of this connection's credentials into an :class:`S3AccessError`
        that names the connection, the bucket and what to fix (S3's own text holds no secret)."""
        from botocore.exceptions import ClientError

        try:
            yield
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            if code not in _ACCESS_ERRORS:
                raise
            raise S3AccessError(
                f"S3 refused the AWS connection {self.aws_conn_id!r} while {action} "
                f"s3://{bucket}/: {_ACCESS_ERRORS[code]} ({code}: {error.get('Message', '')}). "
                f"Check the connection's credentials and the bucket's access rights.",
                conn_id=self.aws_conn_id, code=code) from exc

    @property
    def endpoint_url(self) -> str:
        """The connection's S3 endpoint, or "" for AWS itself."""
        return self.s3_hook.conn_config.get_service_endpoint_url("s3") or ""

    @property
    def region_name(self) -> str:
        return self.s3_hook.region_name or self.client.meta.region_name or ""

    # ---- staging --------------------------------------------------------------------------

    def stage(self, local_paths: str | os.PathLike | list, bucket: str, prefix: str = "", *,
              force: bool = False, delete_extra: bool = False) -> StagedInput:
        """Upload files, directories and globs to ``s3://bucket/prefix/``.

        Unchanged files (same size and stored SHA-256) are skipped. The returned
        :class:`StagedInput` has counts and ``source_spec()``: a prefix for a tree, the object
        (with VersionID and ChecksumSHA256) when ``local_paths`` is one plain file.
        """
        if not bucket:
            raise ValueError("bucket: must not be empty")
        uploader = Uploader(self.client, max_workers=self.max_workers,
                            multipart_threshold=self.multipart_threshold,
                            multipart_chunksize=self.multipart_chunksize)
        with self._explained_access_errors("staging to", bucket):
            staged = uploader.stage(local_paths, bucket, prefix, force=force,
                                    delete_extra=delete_extra)
        # The spec is read by compute nodes: their view of S3, not this connection's.
        staged.region, staged.endpoint = self.compute_s3.region, self.compute_s3.endpoint
        rate = staged.bytes_uploaded / MiB / staged.seconds if staged.seconds else 0.0
        self.log.info("Staged to s3://%s/%s: %d uploaded (%.1f MiB, %.1f MiB/s), %d unchanged "
                      "skipped, %d extra deleted, %.2f s", bucket, staged.key, staged.uploaded,
                      staged.bytes_uploaded / MiB, rate, staged.skipped, staged.deleted,
                      staged.seconds)
        return staged

    # ---- downloads ------------------------------------------------------------------------

    def _download_object(self, bucket: str, key: str, path: Path, *, version_id: str = "",
                         expected_b64: str = "", etag: str | None = None) -> str:
        """GET one object to ``path``; verify it against S3's stored SHA-256 and ``expected_b64``.
        ``etag`` (from a listing) tells a multipart object; None means HEAD to find out.
        Returns the hex SHA-256 of the bytes received."""
        from botocore.exceptions import FlexibleChecksumError

        versioned: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if version_id:
            versioned["VersionId"] = version_id
        stored = ""
        if etag is None or "-" in etag:
            head = self.client.head_object(**versioned, ChecksumMode="ENABLED")
            etag, stored = head.get("ETag", ""), head.get("ChecksumSHA256") or ""
        multipart = "-" in etag
        sha = hashlib.sha256()
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            if multipart:
                answer = self._multipart_client.get_object(**versioned)
            else:
                answer = self.client.get_object(**versioned, ChecksumMode="ENABLED")
                stored = answer.get("ChecksumSHA256") or ""
            with open(path, "wb") as out:
                for chunk in answer["Body"].iter_chunks(MiB):
                    sha.update(chunk)
                    out.write(chunk)
        except FlexibleChecksumError as exc:
            raise ResultIntegrityError(f"s3://{bucket}/{key}: checksum mismatch, the bytes "
                                       f"received do not match the SHA-256 S3 stored") from exc
        got = b64_digest(sha.digest())
        for label, want in (("stored", stored), ("published", expected_b64)):
            if not want:
                continue
            if not multipart:
                same = want == got
            else:  # recompute the composite with the object's part size
                same = matches_stored_checksum(path, want, etag=etag,
                                               part_size=self._part_size(bucket, key, version_id))
            if same is False:
                raise ResultIntegrityError(
                    f"s3://{bucket}/{key}: checksum mismatch, {label} ChecksumSHA256 is {want} "
                    f"but the downloaded bytes give {got}")
        return sha.hexdigest()

    def _part_size(self, bucket: str, key: str, version_id: str) -> int | None:
        args: dict[str, Any] = {"Bucket": bucket, "Key": key, "PartNumber": 1}
        if version_id:
            args["VersionId"] = version_id
        try:
            return int(self.client.head_object(**args)["ContentLength"])
        except Exception:  # a store without part-number HEAD: cannot check, say so
            log.warning("s3://%s/%s: multipart checksum cannot be checked here", bucket, key)
            return None

    def _download_prefix(self, bucket: str, prefix: str, dest: Path) -> tuple[int, int]:
        """Every object under ``prefix`` into ``dest`` with its relative path; (count, bytes)."""
        from airflow_provider_bacalhau._staging import list_prefix

        objects = {k: v for k, v in list_prefix(self.client, bucket, prefix).items()
                   if not k.endswith("/")}
        root = dest.resolve()
        jobs = []
        for key in objects:
            relative = PurePosixPath(key[len(prefix):])
            target = (root / relative).resolve()
            if ".." in relative.parts or relative.is_absolute() or not target.is_relative_to(root):
                raise ResultIntegrityError(f"s3://{bucket}/{key}: key escapes the destination")
            jobs.append((key, target))
        dest.mkdir(parents=True, exist_ok=True)
        with ThreadPoolExecutor(self.max_workers, thread_name_prefix="bacalhau-fetch") as pool:
            list(pool.map(lambda job: self._download_object(
                bucket, job[0], job[1], etag=objects[job[0]]["ETag"]), jobs))
        return len(jobs), sum(v["Size"] for v in objects.values())

    def download_archive(self, result: Any, workdir: Path, *,
                         bacalhau_client: Any = None) -> tuple[Path, str]:
        """Bring a single-object result (s3 archive, s3managed, urlDownload) into ``workdir``,
        verified where a checksum was published. Returns ``(path, sha256 hex)``."""
        result = _as_result(result)
        if result.type == "s3":
            key = str(result.param("Key"))
            path = workdir / (PurePosixPath(key).name or "object")
            digest = self._download_object(str(result.param("Bucket")), key, path,
                                           version_id=str(result.param("VersionID")),
                                           expected_b64=str(result.param("ChecksumSHA256")))
        elif result.type == "s3managed":
            url = managed_url(result.job_id, result.execution_id, bacalhau_client)
            path = workdir / (PurePosixPath(urlsplit(url).path).name or "result.tar.gz")
            self.log.info("s3managed result has no published checksum; downloading %s",
                          safe_url(url))
            digest = download_url(url, path)
        elif result.type == "urlDownload":
            url = str(result.param("URL"))
            if not url:
                raise ValueError("result.Params.URL: missing")
            path = workdir / (PurePosixPath(urlsplit(url).path).name or "result.tar.gz")
            digest = download_node_url(url, path)  # the node's own address: best effort
        else:
            raise ValueError(f"result.Type: {result.type!r} cannot be downloaded (s3, s3managed or "
                             f"urlDownload)")
        return path, digest

    def fetch_result(self, result: Any, destination: str | os.PathLike, *,
                     bacalhau_client: Any = None) -> Path:
        """Download a published result into ``destination`` (a directory, replaced if present).

        s3 plain: every object under the prefix; archives (s3 gzip, s3managed, urlDownload):
        downloaded, verified, extracted safely. Work happens in a temporary directory beside
        ``destination`` and moves into place only when all checks passed.
        """
        started = time.monotonic()
        result = _as_result(result)
        dest = Path(destination)
        dest.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
        try:
            with self._explained_access_errors("fetching from", str(result.param("Bucket"))):
                content = scratch / "content"
                key = str(result.param("Key"))
                if result.type == "s3" and (key.endswith("/") or not key):
                    count, size = self._download_prefix(str(result.param("Bucket")), key, content)
                else:
                    (scratch / "download").mkdir()
                    archive, _ = self.download_archive(result, scratch / "download",
                                                       bacalhau_client=bacalhau_client)
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
        self.log.info("Fetched %s result into %s: %d file(s), %.1f MiB in %.2f s", result.type, dest,
                      count, size / MiB, time.monotonic() - started)
        return dest

    # ---- re-staging -----------------------------------------------------------------------

    def _marker_exists(self, bucket: str, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def _write_alias(self, bucket: str, alias: str, archive: Path, result: PublishedResult,
                     digest: str) -> None:
        """Record composite -> SHA-256, but only for bytes that were checked against the composite
        (a store that cannot tell the part size leaves it unchecked: then no alias)."""
        source = (str(result.param("Bucket")), str(result.param("Key")), str(result.param("VersionID")))
        checked = matches_stored_checksum(archive, str(result.param("ChecksumSHA256")),
                                          part_size=self._part_size(*source))
        if checked:
            write_alias(self.client, bucket, alias, digest)

    def _prefix_spec(self, bucket: str, key: str) -> dict[str, Any]:
        return StagedInput(bucket=bucket, key=key, region=self.compute_s3.region,
                           endpoint=self.compute_s3.endpoint).source_spec()

    def restage_result(self, result: Any, bucket: str, prefix: str = "bacalhau-staging/", *,
                       bacalhau_client: Any = None) -> dict[str, Any]:
        """Make an archive result (s3 gzip, s3managed, urlDownload) a plain-object prefix input.

        The files go to ``<prefix><sha256 of the archive>/``; a marker object
        ``<prefix><sha256>.restaged.json`` written last means the work is done, so a second call
        (a retry, another task) only checks the marker. Returns the prefix source spec.
        """
        if not bucket:
            raise ValueError("staging_bucket: must not be empty")
        prefix = normalize_prefix(prefix)
        with self._explained_access_errors("re-staging a result into", bucket):
            return self._restage(_as_result(result), bucket, prefix, bacalhau_client)

    def _restage(self, result: PublishedResult, bucket: str, prefix: str,
                 bacalhau_client: Any) -> dict[str, Any]:
        published = str(result.param("ChecksumSHA256"))
        if result.type == "s3" and published and not is_composite(published):
            import base64

            known = base64.b64decode(published).hex()
            if self._marker_exists(bucket, f"{prefix}{known}{MARKER_SUFFIX}"):
                self.log.info("Result already re-staged at s3://%s/%s%s/", bucket, prefix, known)
                return self._prefix_spec(bucket, f"{prefix}{known}/")
        alias = ""
        if result.type == "s3" and published and is_composite(published):
            # A multipart archive's own SHA-256 is known only after downloading it; an alias
            # marker named by the published composite (which pins the bytes as firmly) points at
            # the prefix, so a second call downloads nothing either.
            alias = alias_key(prefix, published, MARKER_SUFFIX)
            known = read_alias(self.client, bucket, alias)
            if known and self._marker_exists(bucket, f"{prefix}{known}{MARKER_SUFFIX}"):
                self.log.info("Result already re-staged at s3://%s/%s%s/", bucket, prefix, known)
                return self._prefix_spec(bucket, f"{prefix}{known}/")
        scratch = Path(tempfile.mkdtemp(prefix="bacalhau-restage-"))
        try:
            (scratch / "download").mkdir()
            with self._explained_access_errors("downloading a result from",
                                               str(result.param("Bucket") or bucket)):
                archive, digest = self.download_archive(result, scratch / "download",
                                                        bacalhau_client=bacalhau_client)
            target = f"{prefix}{digest}/"
            marker = f"{prefix}{digest}{MARKER_SUFFIX}"
            if alias:
                self._write_alias(bucket, alias, archive, result, digest)
            if self._marker_exists(bucket, marker):
                self.log.info("Result already re-staged at s3://%s/%s", bucket, target)
                return self._prefix_spec(bucket, target)
            safe_extract(archive, scratch / "files")
            staged = self.stage(str(scratch / "files"), bucket, target, delete_extra=True)
            manifest = {"Result": {"Type": result.type, "JobID": result.job_id,
                                   "ExecutionID": result.execution_id},
                        "SHA256": digest, "Files": len(staged.keys)}
            self.client.put_object(Bucket=bucket, Key=marker, ChecksumAlgorithm="SHA256",
                                   Body=json.dumps(manifest).encode(),
                                   ContentType="application/json")
            self.log.info("Re-staged %s result (%d file(s)) at s3://%s/%s", result.type,
                          len(staged.keys), bucket, target)
            return self._prefix_spec(bucket, target)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
