"""Upload local files to an S3 prefix: parallel, SHA-256 checksummed, unchanged files skipped.

This module decides, per file, whether to skip or upload; :mod:`.local_files` finds and hashes the
files and :mod:`.objects` talks to the store. It works on a boto3 S3 client and an obstore store
handed in by the data plane (:class:`.plane.S3DataPlane`, from
:class:`~airflow_provider_bacalhau.hooks.s3.BacalhauS3Hook`); both are shared by all threads.
Unchanged files are told by the manifest beside the prefix (:mod:`.manifest`) when it agrees with
the listing, else by the stored SHA-256 (HEAD).
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from airflow_provider_bacalhau.dataplane.archive import MiB, matches_stored_checksum
from airflow_provider_bacalhau.dataplane.local_files import LocalFile, collect_files, read_and_hash
from airflow_provider_bacalhau.dataplane.manifest import (
    Entry,
    manifest_key,
    read_manifest,
    settled,
    write_manifest,
)
from airflow_provider_bacalhau.dataplane.objects import delete_keys, list_store, put_object
from airflow_provider_bacalhau.spec import S3Source

log = logging.getLogger(__name__)

SMALL_FILE = 8 * MiB  # read whole into memory below this size


@dataclass
class StagedInput:
    """What a staging run did, and the S3 source that points at exactly what it staged."""

    bucket: str
    key: str
    region: str = ""
    endpoint: str = ""
    version_id: str = ""
    checksum_sha256: str = ""
    uploaded: int = 0
    skipped: int = 0
    deleted: int = 0
    bytes_uploaded: int = 0
    seconds: float = 0.0
    keys: list[str] = field(default_factory=list)

    @property
    def source(self) -> S3Source:
        """The S3 input source for what was staged: a prefix, or the one object with its version
        and checksum (S3Source decides which, and drops empty params)."""
        return S3Source(
            bucket=self.bucket,
            key=self.key,
            region=self.region,
            endpoint=self.endpoint,
            version_id=self.version_id,
            checksum_sha256=self.checksum_sha256,
        )

    @property
    def is_single_object(self) -> bool:
        return self.source.is_single_object

    def to_spec(self) -> dict[str, Any]:
        """``{"Type": "s3", "Params": {...}}`` with empty params left out (what a job input and
        the stage operator's XCom hold)."""
        return self.source.to_spec()


def normalize_prefix(prefix: str) -> str:
    """Strip a leading ``/``; a non-empty prefix always ends with ``/`` (it names a folder)."""
    prefix = (prefix or "").lstrip("/")
    return prefix if not prefix or prefix.endswith("/") else prefix + "/"


@dataclass
class _Outcome:
    uploaded: bool
    entry: Entry  # what the manifest records for the file
    version_id: str = ""
    full: str = ""  # the file's full SHA-256 (base64), when it was computed


class Uploader:
    """One staging run: compare each file with what is stored, upload what differs.

    The listing, the manifest and the uploads go through the obstore ``store`` (a fraction of
    boto3's CPU per request); HEAD and delete through the boto3 client, made only when needed
    (a no-change run needs none).

    :param store: obstore ``S3Store`` of the bucket staged to (``BacalhauS3Hook.object_store``).
    :param client_factory: returns the boto3 S3 client (``lambda: hook.client``).
    :param store_error: turns an obstore error into botocore's ``ClientError``.
    :param max_workers: files handled in parallel.
    :param multipart_threshold: files at least this big go through multipart upload.
    :param multipart_chunksize: part size of multipart uploads.
    """

    def __init__(
        self,
        store: Any,
        client_factory: Any,
        *,
        store_error: Any = None,
        max_workers: int = 64,  # as BacalhauS3Hook's MAX_WORKERS, which passes its own
        multipart_threshold: int = 64 * MiB,
        multipart_chunksize: int = 16 * MiB,
    ) -> None:
        self.store = store
        self.client_factory = client_factory
        self.store_error = store_error or (lambda exc, operation: exc)
        self.max_workers = max_workers
        self.multipart_threshold = multipart_threshold
        self.multipart_chunksize = multipart_chunksize

    @cached_property
    def client(self) -> Any:
        return self.client_factory()

    def _is_multipart(self, size: int) -> bool:
        return size >= self.multipart_threshold

    def _part_size(self, size: int) -> int:
        return self.multipart_chunksize if self._is_multipart(size) else 0

    def _checked_by_head(
        self, bucket: str, key: str, item: LocalFile, full_b64: str, listed: dict[str, Any]
    ) -> tuple[Entry, str] | None:
        """Without a manifest entry: the stored SHA-256 (HEAD) against ours."""
        part_size = self._part_size(item.size)
        head = self.client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        checksum = head.get("ChecksumSHA256") or ""
        if not checksum:  # stored without a SHA-256: re-upload so it gets one
            return None
        etag = head.get("ETag", listed["ETag"]).strip('"')
        same = matches_stored_checksum(
            item.path, checksum, full_b64=full_b64 or None, etag=etag, part_size=part_size or None
        )
        if not same:
            return None
        part = part_size if "-" in etag else 0
        return Entry(item.size, etag, checksum, part), head.get("VersionId", "")

    def _upload(
        self, bucket: str, key: str, item: LocalFile, data: bytes | None, full_b64: str, single: bool
    ) -> tuple[Entry, str]:
        part_size = self._part_size(item.size)
        etag, version = put_object(
            self.store,
            key,
            data if data is not None else item.path,
            multipart=bool(part_size),
            part_size=self.multipart_chunksize,
            concurrency=min(8, self.max_workers),
            store_error=self.store_error,
        )
        if not part_size:  # the store sent our bytes' SHA-256, and S3 checked it
            return Entry(item.size, etag, full_b64), version
        if single:  # no manifest to record the composite in, and no job input takes one
            return Entry(item.size, etag, "", part_size), version
        head = self.client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        return (
            Entry(item.size, head.get("ETag", etag).strip('"'), head.get("ChecksumSHA256", ""), part_size),
            head.get("VersionId", version),
        )

    @staticmethod
    def _trusted(
        item: LocalFile, listed: dict[str, Any] | None, entry: Entry | None, force: bool
    ) -> Entry | None:
        """The manifest's entry while it still describes what is stored, else None."""
        if entry is None or force or listed is None or entry.size != item.size:
            return None
        return entry if (listed["Size"], listed["ETag"]) == (entry.size, entry.etag) else None

    def _unchanged(
        self, item: LocalFile, listed: dict[str, Any] | None, entry: Entry | None, force: bool
    ) -> _Outcome | None:
        """Skipped without reading the file: the manifest agrees with S3 and the file's stat."""
        entry = self._trusted(item, listed, entry, force)
        if entry is not None and entry.stat and entry.stat == item.stat:
            return _Outcome(False, entry, full="" if entry.part_size else entry.sha256)
        return None

    def _one(
        self,
        bucket: str,
        key: str,
        item: LocalFile,
        listed: dict[str, Any] | None,
        entry: Entry | None,
        force: bool,
        single: bool,
    ) -> _Outcome:
        entry = self._trusted(item, listed, entry, force)
        hashed_at = time.time_ns()
        data, full_b64 = None, ""
        if not self._is_multipart(item.size):  # multipart: compared by the composite
            data, full_b64 = read_and_hash(item, whole=item.size <= SMALL_FILE)
        stat = settled(item.stat, hashed_at)
        if entry is not None:
            if matches_stored_checksum(
                item.path,
                entry.sha256,
                full_b64=full_b64 or None,
                etag=entry.etag,
                part_size=entry.part_size or None,
            ):
                return _Outcome(False, replace(entry, stat=stat), full=full_b64)
        elif listed is not None and not force and listed["Size"] == item.size:
            checked = self._checked_by_head(bucket, key, item, full_b64, listed)
            if checked is not None:
                return _Outcome(False, replace(checked[0], stat=stat), checked[1], full_b64)
        stored, version = self._upload(bucket, key, item, data, full_b64, single)
        return _Outcome(True, replace(stored, stat=stat), version, full_b64)

    def stage(
        self, local_paths: Any, bucket: str, prefix: str, *, force: bool = False, delete_extra: bool = False
    ) -> StagedInput:
        started = time.monotonic()
        prefix = normalize_prefix(prefix)
        files, single = collect_files(local_paths)
        existing = list_store(self.store, prefix, self.store_error)
        # One file staged as an object is checked by one HEAD: it needs no manifest.
        manifest = "" if single else manifest_key(prefix)
        known = read_manifest(self.store, manifest, self.store_error) if manifest and not force else {}
        keys = [f"{prefix}{item.relative}" for item in files]
        outcomes: list[_Outcome | None] = [
            self._unchanged(item, existing.get(key), known.get(item.relative), force)
            for key, item in zip(keys, files, strict=True)
        ]
        todo = [index for index, outcome in enumerate(outcomes) if outcome is None]
        if todo:
            with ThreadPoolExecutor(
                max_workers=self.max_workers, thread_name_prefix="bacalhau-stage"
            ) as pool:
                done = pool.map(
                    lambda index: self._one(
                        bucket,
                        keys[index],
                        files[index],
                        existing.get(keys[index]),
                        known.get(files[index].relative),
                        force,
                        single,
                    ),
                    todo,
                )
                for index, outcome in zip(todo, done, strict=True):
                    outcomes[index] = outcome
        finished = [outcome for outcome in outcomes if outcome is not None]
        result = StagedInput(bucket=bucket, key=keys[0] if single else prefix, keys=keys)
        for item, outcome in zip(files, finished, strict=False):
            if outcome.uploaded:
                result.uploaded += 1
                result.bytes_uploaded += item.size
            else:
                result.skipped += 1
        extra = sorted(set(existing) - set(keys))
        if extra and delete_extra and not single:
            delete_keys(self.client, bucket, extra)
            result.deleted = len(extra)
        elif extra and not single:
            log.warning(
                "s3://%s/%s holds %d object(s) that were not part of this staging; the "
                "job will see them too (pass delete_extra=True to remove them)",
                bucket,
                prefix,
                len(extra),
            )
        entries = {item.relative: outcome.entry for item, outcome in zip(files, finished, strict=False)}
        if manifest and entries != known:  # written last: it describes what is stored now
            write_manifest(self.store, manifest, entries, self.store_error)
        if single:
            outcome = finished[0]
            result.version_id = outcome.version_id
            if outcome.entry.sha256 == outcome.full and not outcome.entry.part_size:
                result.checksum_sha256 = outcome.full
            else:
                # A multipart object stores a composite checksum ("<b64>-N" on AWS). Job specs
                # accept only a full 32-byte digest there, and whether a compute node's
                # comparison accepts a composite is unverified: leave it out.
                log.info(
                    "s3://%s/%s was uploaded in parts: its stored checksum is a composite, "
                    "so the input carries no ChecksumSHA256",
                    bucket,
                    result.key,
                )
        result.seconds = time.monotonic() - started
        return result
