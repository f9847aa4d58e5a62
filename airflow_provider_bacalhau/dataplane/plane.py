"""S3DataPlane: what operators and ``@task`` code call to move data (stage, fetch, re-stage).

It holds a :class:`~airflow_provider_bacalhau.hooks.s3.BacalhauS3Hook` (S3 I/O through the Airflow
AWS connection) and delegates to the modules of this package, where each behaviour lives:
:mod:`.staging`, :mod:`.fetch`, :mod:`.restage`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from airflow_provider_bacalhau.dataplane import fetch, restage
from airflow_provider_bacalhau.dataplane.archive import MiB
from airflow_provider_bacalhau.dataplane.staging import StagedInput, Uploader
from airflow_provider_bacalhau.lineage import assets as lineage
from airflow_provider_bacalhau.lineage import names

log = logging.getLogger(__name__)


class S3DataPlane:
    """The data side of Bacalhau pipelines over one S3 hook.

    :param hook: a :class:`~airflow_provider_bacalhau.hooks.s3.BacalhauS3Hook` (its connection,
        ``max_workers`` and ``compute_s3`` view); made for ``aws_default`` when None.
    :param multipart_threshold: files at least this big are uploaded in parts.
    :param multipart_chunksize: part size of multipart uploads.
    """

    def __init__(
        self, hook: Any = None, *, multipart_threshold: int = 64 * MiB, multipart_chunksize: int = 16 * MiB
    ) -> None:
        if hook is None:
            from airflow_provider_bacalhau.hooks.s3 import BacalhauS3Hook

            hook = BacalhauS3Hook()
        self.hook = hook
        self.multipart_threshold = multipart_threshold
        self.multipart_chunksize = multipart_chunksize

    def stage(
        self,
        local_paths: str | os.PathLike | list,
        bucket: str,
        prefix: str = "",
        *,
        force: bool = False,
        delete_extra: bool = False,
    ) -> StagedInput:
        """Upload files, directories and globs to ``s3://bucket/prefix/``.

        Unchanged files (same size and stored SHA-256) are skipped. The returned
        :class:`StagedInput` has counts and ``to_spec()``: a prefix for a tree, the object
        (with VersionID and ChecksumSHA256) when ``local_paths`` is one plain file.
        """
        staged = self.stage_quietly(local_paths, bucket, prefix, force=force, delete_extra=delete_extra)
        paths = local_paths if isinstance(local_paths, (list, tuple)) else [local_paths]
        lineage.record(
            self.hook,
            inputs=[names.local_dataset(p) for p in paths],
            outputs=[names.s3_dataset(bucket, staged.key)],
        )
        return staged

    def stage_quietly(
        self,
        local_paths: str | os.PathLike | list,
        bucket: str,
        prefix: str = "",
        *,
        force: bool = False,
        delete_extra: bool = False,
    ) -> StagedInput:
        """:meth:`stage` without the hook-lineage report (for staging scratch files, which are
        nobody's lineage)."""
        if not bucket:
            raise ValueError("bucket: must not be empty")
        hook = self.hook
        uploader = Uploader(
            hook.object_store(bucket),
            lambda: hook.client,
            store_error=hook.client_error_from_store,
            max_workers=hook.max_workers,
            multipart_threshold=self.multipart_threshold,
            multipart_chunksize=self.multipart_chunksize,
        )
        with hook.explained_access_errors("staging to", bucket):
            staged = uploader.stage(local_paths, bucket, prefix, force=force, delete_extra=delete_extra)
        # The spec is read by compute nodes: their view of S3, not this connection's.
        staged.region, staged.endpoint = hook.compute_s3.region, hook.compute_s3.endpoint
        rate = staged.bytes_uploaded / MiB / staged.seconds if staged.seconds else 0.0
        log.info(
            "Staged to s3://%s/%s: %d uploaded (%.1f MiB, %.1f MiB/s), %d unchanged "
            "skipped, %d extra deleted, %.2f s",
            bucket,
            staged.key,
            staged.uploaded,
            staged.bytes_uploaded / MiB,
            rate,
            staged.skipped,
            staged.deleted,
            staged.seconds,
        )
        return staged

    def download_archive(
        self, result: Any, workdir: Path, *, bacalhau_client: Any = None
    ) -> tuple[Path, str]:
        """See :func:`.fetch.download_archive`."""
        return fetch.download_archive(self.hook, result, workdir, bacalhau_client=bacalhau_client)

    def fetch_result(
        self, result: Any, destination: str | os.PathLike, *, bacalhau_client: Any = None
    ) -> Path:
        """Download a published result into ``destination`` (see :func:`.fetch.fetch_result`)."""
        path = fetch.fetch_result(self.hook, result, destination, bacalhau_client=bacalhau_client)
        lineage.record(
            self.hook, inputs=_s3_only([names.result_dataset(result)]), outputs=[names.local_dataset(path)]
        )
        return path

    def restage_result(
        self, result: Any, bucket: str, prefix: str = "bacalhau-staging/", *, bacalhau_client: Any = None
    ) -> dict[str, Any]:
        """Make an archive result a plain-object prefix input (see :mod:`.restage`); returns
        the prefix source spec."""
        spec = restage.restage_result(self, result, bucket, prefix, bacalhau_client=bacalhau_client)
        lineage.record(
            self.hook,
            inputs=_s3_only([names.result_dataset(result)]),
            outputs=_s3_only([names.source_dataset(spec)]),
        )
        return spec


def _s3_only(found: list[names.DatasetName | None]) -> list[names.DatasetName]:
    """S3 datasets only: other kinds (an s3managed result) have no Asset factory to report to."""
    return [n for n in found if n is not None and n.namespace.startswith("s3://")]
