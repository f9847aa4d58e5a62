"""Operators for the data side of Bacalhau pipelines: stage inputs into S3, bring results home."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from contextlib import ExitStack
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_bacalhau.failures import TemplateErrorsFailMixin, invalid_arguments_fail
from airflow_provider_bacalhau.operators._arguments import bucket_name, local_paths, optional_text

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


class BacalhauS3StageOperator(TemplateErrorsFailMixin, BaseOperator):
    """Upload local files, directories or globs to S3 and return the job input for them.

    Unchanged files (same size and stored SHA-256) are skipped, so a retry or a re-run uploads
    only what changed. The XCom value is an S3 source spec (``{"Type": "s3", "Params": ...}``):
    a prefix for a tree, or the object with its ChecksumSHA256 when ``local_paths`` is one file.
    Pass it to a job operator's inputs (it goes through ``resolve_inputs``).

    The spec is read by compute nodes, so its Endpoint and Region are S3 as *they* see it: the
    Bacalhau connection's ``s3_endpoint``/``s3_region`` extras, or ``s3_endpoint``/``s3_region``
    given here. The upload itself goes through the AWS connection (Airflow's view).

    :param local_paths: a path or glob, or a list of them. A directory uploads its contents
        (relative paths kept); a file or glob match keeps its base name.
    :param bucket: destination bucket.
    :param prefix: destination key prefix (a folder; ``/`` is appended).
    :param aws_conn_id: Airflow AWS connection.
    :param force: upload every file even when the stored copy matches.
    :param delete_extra: delete objects under the prefix that are not part of this staging, so
        the input holds exactly the staged files.
    :param bacalhau_conn_id: Bacalhau connection whose ``s3_endpoint``/``s3_region`` extras name
        S3 as the compute nodes see it; None: only the two arguments below count.
    :param s3_endpoint: Endpoint for the returned spec (None: the connection's; "": none, i.e.
        AWS or the nodes' default).
    :param s3_region: Region for the returned spec (None: the connection's; "": none).
    """

    template_fields: Sequence[str] = (
        "local_paths",
        "bucket",
        "prefix",
        "aws_conn_id",
        "bacalhau_conn_id",
        "s3_endpoint",
        "s3_region",
    )
    ui_color = "#cfe8fc"

    def __init__(
        self,
        *,
        local_paths: str | list[str],
        bucket: str,
        prefix: str = "",
        aws_conn_id: str | None = "aws_default",
        force: bool = False,
        delete_extra: bool = False,
        bacalhau_conn_id: str | None = "bacalhau_default",
        s3_endpoint: str | None = None,
        s3_region: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.bacalhau_conn_id = bacalhau_conn_id
        self.s3_endpoint = s3_endpoint
        self.s3_region = s3_region
        self.local_paths = local_paths
        self.bucket = bucket
        self.prefix = prefix
        self.aws_conn_id = aws_conn_id
        self.force = force
        self.delete_extra = delete_extra

    @cached_property
    def hook(self) -> Any:
        """The Bacalhau hook whose connection gives the compute-side view; None without one."""
        from airflow_provider_bacalhau.hooks.bacalhau import BacalhauHook

        return BacalhauHook(bacalhau_conn_id=self.bacalhau_conn_id) if self.bacalhau_conn_id else None

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_bacalhau.dataplane.plane import S3DataPlane
        from airflow_provider_bacalhau.hooks._compute_s3 import (
            compute_s3_view_for,
            warn_if_nodes_miss_airflows_store,
        )
        from airflow_provider_bacalhau.hooks.s3 import BacalhauS3Hook

        with invalid_arguments_fail("BacalhauS3StageOperator"):
            bucket = bucket_name(self.bucket, "bucket")
            local_paths(self.local_paths)
            prefix = optional_text(self.prefix, "prefix") or ""
            view = compute_s3_view_for(self.hook, self.s3_endpoint, self.s3_region)
            hook = BacalhauS3Hook(aws_conn_id=self.aws_conn_id, compute_s3=view)
            # Files that are missing and AWS settings botocore refuses are ValueErrors too.
            staged = S3DataPlane(hook).stage(
                self.local_paths, bucket, prefix, force=self.force, delete_extra=self.delete_extra
            )
        warn_if_nodes_miss_airflows_store(
            view, hook.endpoint_url, self.aws_conn_id, self.log, "The staged spec and the jobs reading it"
        )
        self._staged_key = staged.key
        return staged.to_spec()

    _staged_key: str | None = None

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """The local paths as inputs, the staged prefix (or object) as the output."""
        from airflow_provider_bacalhau.dataplane.staging import normalize_prefix
        from airflow_provider_bacalhau.lineage import names
        from airflow_provider_bacalhau.lineage.openlineage import operator_lineage

        paths = self.local_paths if isinstance(self.local_paths, (list, tuple)) else [self.local_paths]
        key = self._staged_key if self._staged_key is not None else normalize_prefix(self.prefix)
        return operator_lineage(
            inputs=[names.local_dataset(p) for p in paths], outputs=[names.s3_dataset(self.bucket, key)]
        )

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        return self.get_openlineage_facets_on_complete(task_instance)


class BacalhauFetchResultsOperator(TemplateErrorsFailMixin, BaseOperator):
    """Download a job's published results to a local directory, or re-stage them in S3.

    Each result lands in ``<destination>/<execution_id>/`` (the list index when the execution is
    unknown), verified against its published SHA-256 and extracted safely; nothing partial is
    left behind on failure. The XCom value is the list of those directories. With
    ``restage_to`` the results are instead made into plain-object S3 inputs under that prefix
    (archives extracted once, keyed by their checksum) and the XCom value is the list of input
    source specs.

    :param results: published results (the job operator's XCom list, or one result dict).
    :param job_id: instead of ``results``: read the results of this job from the Bacalhau API.
    :param destination: local directory to fetch into.
    :param restage_to: ``s3://bucket/prefix/``: re-stage instead of downloading.
    :param aws_conn_id: Airflow AWS connection (s3 results and re-staging).
    :param bacalhau_conn_id: Bacalhau connection (``job_id``, s3managed results, and with
        ``restage_to`` its ``s3_endpoint``/``s3_region`` extras for the returned specs).
    :param s3_endpoint: with ``restage_to``: Endpoint of the returned specs, S3 as the compute
        nodes see it (None: the Bacalhau connection's; "": none).
    :param s3_region: with ``restage_to``: Region of the returned specs (None: the connection's).
    """

    template_fields: Sequence[str] = (
        "results",
        "job_id",
        "destination",
        "restage_to",
        "aws_conn_id",
        "bacalhau_conn_id",
        "s3_endpoint",
        "s3_region",
    )
    ui_color = "#cfe8fc"

    def __init__(
        self,
        *,
        results: Any = None,
        job_id: str | None = None,
        destination: str | None = None,
        restage_to: str | None = None,
        aws_conn_id: str | None = "aws_default",
        bacalhau_conn_id: str = "bacalhau_default",
        s3_endpoint: str | None = None,
        s3_region: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.s3_endpoint = s3_endpoint
        self.s3_region = s3_region
        self.results = results
        self.job_id = job_id
        self.destination = destination
        self.restage_to = restage_to
        self.aws_conn_id = aws_conn_id
        self.bacalhau_conn_id = bacalhau_conn_id

    @cached_property
    def hook(self) -> Any:
        """The task's one BacalhauHook: results, s3managed URLs and the compute-side view."""
        from airflow_provider_bacalhau.hooks.bacalhau import BacalhauHook

        return BacalhauHook(bacalhau_conn_id=self.bacalhau_conn_id)

    def _bacalhau_client(self, stack: ExitStack) -> Any:
        client = self.hook.get_client()
        stack.callback(client.close)
        return client

    def _results(self, client: Any) -> list[dict[str, Any]]:
        from airflow_provider_bacalhau.spec import JobStatus, PublishedResult

        results = self.results
        if isinstance(results, str):  # a template rendered to text
            try:
                results = json.loads(results)
            except ValueError:
                raise ValueError(
                    "results: got text that is not JSON; pass the job operator's "
                    ".output (an XComArg) or render templates as native objects"
                ) from None
        if results is None:
            if not self.job_id:
                raise ValueError("results: give results (an XCom list) or job_id")
            status = JobStatus.from_api(client.get_job(self.job_id, include=("executions",)))
            results = [r.to_dict() for r in status.results]
            self.log.info(
                "Job %s: %d published result(s) from completed executions", self.job_id, len(results)
            )
        if not isinstance(results, list):
            results = [results]
        out = []
        for i, result in enumerate(results):
            if hasattr(result, "to_dict"):
                result = result.to_dict()
            if not isinstance(result, dict):
                raise ValueError(
                    f"results[{i}]: a published result is a mapping {{Type, Params, "
                    f"JobID, ExecutionID}}, got {type(result).__name__}"
                )
            try:
                out.append(PublishedResult.from_dict(result).to_dict())
            except ValueError as exc:
                raise ValueError(f"results[{i}]: {exc}") from None
        return out

    _lineage_results: list[dict[str, Any]] | None = None
    _lineage_outputs: list[Any] | None = None

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """The results as inputs; the local directories or re-staged prefixes as outputs."""
        from airflow_provider_bacalhau.lineage import names
        from airflow_provider_bacalhau.lineage.openlineage import operator_lineage

        try:
            orchestrator = names.orchestrator_host(self.hook.client_config().base_url)
        except Exception:
            orchestrator = ""
        inputs = [names.result_dataset(r, orchestrator) for r in self._lineage_results or []]
        outputs = [
            names.source_dataset(o) if isinstance(o, dict) else names.local_dataset(o)
            for o in self._lineage_outputs or []
        ]
        return operator_lineage(inputs=names.unique(inputs), outputs=names.unique(outputs))

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        return self.get_openlineage_facets_on_complete(task_instance)

    def execute(self, context: Context) -> list[Any]:
        outputs = self._fetch()
        self._lineage_outputs = outputs
        return outputs

    def _fetch(self) -> list[Any]:
        from airflow_provider_bacalhau.dataplane.inputs import parse_s3_uri
        from airflow_provider_bacalhau.dataplane.plane import S3DataPlane
        from airflow_provider_bacalhau.hooks.s3 import BacalhauS3Hook

        started = time.monotonic()
        with ExitStack() as stack:
            with invalid_arguments_fail("BacalhauFetchResultsOperator"):  # before any download
                if self.restage_to:
                    parse_s3_uri(self.restage_to, "restage_to")
                elif not isinstance(self.destination, str) or not self.destination.strip():
                    raise ValueError("destination: give a local directory (or restage_to)")
                client = self._bacalhau_client(stack) if self.results is None else None
                results = self._results(client)
                self._lineage_results = results
                if client is None and any(str(r["Type"]).lower() == "s3managed" for r in results):
                    client = self._bacalhau_client(stack)
            hook = BacalhauS3Hook(aws_conn_id=self.aws_conn_id)
            if self.restage_to:
                return self._restage(results, hook, client, started)
            paths = []
            for index, result in enumerate(results):
                name = result.get("ExecutionID") or str(index)
                path = S3DataPlane(hook).fetch_result(
                    result, Path(self.destination, name), bacalhau_client=client
                )
                paths.append(str(path))
        self.log.info(
            "Fetched %d result(s) into %s in %.2f s", len(paths), self.destination, time.monotonic() - started
        )
        return paths

    def _restage(
        self, results: list[dict[str, Any]], hook: Any, client: Any, started: float
    ) -> list[dict[str, Any]]:
        from airflow_provider_bacalhau.dataplane.inputs import parse_s3_uri, resolve_inputs
        from airflow_provider_bacalhau.hooks._compute_s3 import compute_s3_view_for

        bucket, prefix = parse_s3_uri(self.restage_to, "restage_to")
        view = compute_s3_view_for(self.hook, self.s3_endpoint, self.s3_region)
        specs = []
        for result in results:
            [item] = resolve_inputs(
                result,
                s3_hook=hook,
                bacalhau_client=client,
                staging_bucket=bucket,
                staging_prefix=prefix or "",
                compute_s3=view,
            )
            specs.append(item.source.to_spec())
        self.log.info(
            "Re-staged %d result(s) under %s in %.2f s",
            len(specs),
            self.restage_to,
            time.monotonic() - started,
        )
        return specs
