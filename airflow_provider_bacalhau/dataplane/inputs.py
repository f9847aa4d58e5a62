"""Turn what a DAG author passes as a job input into InputSources a compute node can use.

One helper for every operator. Accepted, alone or in lists/dicts:

- an :class:`~airflow_provider_bacalhau.spec.InputSource` or ``{"Target", "Source"}`` dict
  (keeps its own Target; its Source is resolved like the items below);
- a staged-input spec (what ``BacalhauS3StageOperator`` returns) or any raw source dict
  ``{"Type", "Params"}`` (used as given, empty params dropped);
- a :class:`~airflow_provider_bacalhau.spec.PublishedResult` or its XCom dict
  ``{"Type", "Params", "JobID", "ExecutionID"}``;
- an ``s3://bucket/key`` URI (a key ending in ``/`` is a prefix). Its Endpoint and Region are S3
  as the compute nodes see it (``compute_s3``: the Bacalhau connection's ``s3_endpoint`` and
  ``s3_region``), never the Airflow AWS connection's, which is Airflow's own view.

**Targets** (where the data appears in the container), with the default ``target="/inputs"``:
one input → ``/inputs``; a list of several → ``/inputs/0``, ``/inputs/1``… in list order (a
nested list, e.g. one job's results with one entry per execution, nests the same way:
``/inputs/1/0``…); a dict ``{name: input}`` → ``/inputs/<name>``. A list of exactly one item
counts as one input. Inputs that bring their own Target keep it. Two inputs on one target are an
error.

**Published results:** an s3 result with Encoding plain (its Key ends in ``/``) is a prefix
input as it is. An archive (s3 gzip ``.tar.gz``, ``s3managed``, the local publisher's
``urlDownload``) is not usable as published — Bacalhau never extracts archives, s3managed is no
input type and its URL expires — so by default it is *re-staged*: downloaded through the Airflow
AWS connection, verified, extracted and uploaded as plain objects under
``s3://<staging_bucket>/<staging_prefix><sha256 of the archive>/`` (done once per archive), and
that prefix (with the compute-side Endpoint/Region) becomes the input. With ``restage=False`` an
s3 archive becomes a single-object input carrying its ChecksumSHA256 (the job must ``tar xzf``
it), a urlDownload stays a URL input, and an s3managed result is refused. A source that names
its own Endpoint (a published s3 result keeps the one the node reported, already the compute
side's) is used with it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from airflow_provider_bacalhau.dataplane.staging import StagedInput
from airflow_provider_bacalhau.errors import SpecError
from airflow_provider_bacalhau.hooks._compute_s3 import (
    ComputeS3View,
    warn_if_nodes_miss_airflows_store,
)
from airflow_provider_bacalhau.spec import (
    InputSource,
    IPFSSource,
    PublishedResult,
    S3Source,
    URLSource,
    source_from_spec,
)
from airflow_provider_bacalhau.spec.s3rules import check_bucket

log = logging.getLogger(__name__)

_ITEM_KEYS = {"type", "params", "target", "source", "alias", "jobid", "executionid"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def parse_s3_uri(uri: Any, field: str = "inputs") -> tuple[str, str]:
    """``s3://bucket/key`` -> ``(bucket, key)``; the key may be empty or end in ``/`` (a prefix).

    The amazon provider's ``S3Hook.parse_s3_url`` does the parsing; this adds the field name to
    its errors and refuses what it would silently change: it also reads ``https://`` URLs (not
    an S3 input here), and drops a ``?...`` part of the key (urlsplit takes it as a query).

    :raises SpecError: (a ValueError) naming ``field`` when ``uri`` is no such URI, or its bucket
        breaks the rules every S3 shares.
    """
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        raise SpecError(field, "expected an s3://bucket/key URI", uri)
    if "?" in uri or "#" in uri:
        raise SpecError(
            field, "an s3:// URI here cannot hold '?' or '#' (what follows would be cut off)", uri
        )
    from airflow.providers.amazon.aws.exceptions import S3HookUriParseFailure
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    try:
        bucket, key = S3Hook.parse_s3_url(uri)
    except S3HookUriParseFailure as exc:
        raise SpecError(field, "the s3:// URI has no bucket", uri) from exc
    if not bucket:
        raise SpecError(field, "the s3:// URI has no bucket", uri)
    try:
        check_bucket(bucket, field)
    except SpecError as exc:
        raise SpecError(field, f"in {uri!r}: {exc.message}", bucket) from None
    return bucket, key


class _Resolver:
    def __init__(
        self,
        *,
        s3_hook: Any,
        aws_conn_id: str | None,
        bacalhau_client: Any,
        restage: bool,
        staging_bucket: str | None,
        staging_prefix: str,
        compute_s3: ComputeS3View,
    ) -> None:
        self._s3_hook = s3_hook
        self.compute_s3 = compute_s3
        self.aws_conn_id = aws_conn_id
        self.bacalhau_client = bacalhau_client
        self.restage = restage
        self.staging_bucket = staging_bucket
        self.staging_prefix = staging_prefix
        self._view_checked = False

    @property
    def s3_hook(self) -> Any:
        if self._s3_hook is None:
            from airflow_provider_bacalhau.hooks.s3 import BacalhauS3Hook

            self._s3_hook = BacalhauS3Hook(aws_conn_id=self.aws_conn_id, compute_s3=self.compute_s3)
        return self._s3_hook

    def node_view(self) -> ComputeS3View:
        """The compute-side view for a location the provider writes (warned about once per
        resolver when it may miss the store Airflow uses)."""
        if not self._view_checked and not self.compute_s3.endpoint and self.aws_conn_id:
            self._view_checked = True
            warn_if_nodes_miss_airflows_store(
                self.compute_s3, self.s3_hook.endpoint_url, self.aws_conn_id, log
            )
        return self.compute_s3

    # -- shapes --------------------------------------------------------------------------

    def resolve(self, item: Any, target: str, out: list[InputSource]) -> None:
        if isinstance(item, (list, tuple)):
            if len(item) == 1:
                self.resolve(item[0], target, out)
            else:
                for index, sub in enumerate(item):
                    self.resolve(sub, _join(target, str(index)), out)
            return
        if isinstance(item, Mapping) and item and not ({str(k).lower() for k in item} & _ITEM_KEYS):
            for name, sub in item.items():
                if not isinstance(name, str) or not _NAME.match(name):
                    raise ValueError(
                        f"inputs: name {name!r} must be letters, digits, '.', '_' or "
                        f"'-' (it becomes the folder {target}/<name>)"
                    )
                self.resolve(sub, _join(target, name), out)
            return
        out.append(self.one(item, target))

    def one(self, item: Any, target: str) -> InputSource:
        if isinstance(item, InputSource):
            return InputSource(item.target or target, self.source(item.source.to_spec()), item.alias)
        if isinstance(item, StagedInput):  # from S3DataPlane.stage()
            item = item.to_spec()
        if isinstance(item, Mapping):
            lower = {str(k).lower(): v for k, v in item.items()}
            if "source" in lower:
                return InputSource(
                    str(lower.get("target") or target),
                    self.source(lower["source"]),
                    str(lower.get("alias") or ""),
                )
        return InputSource(target, self.source(item))

    # -- sources -------------------------------------------------------------------------

    def source(self, item: Any) -> Any:
        if isinstance(item, str):
            return self.from_uri(item)
        if isinstance(item, PublishedResult):
            return self.from_result(item)
        if not isinstance(item, Mapping):
            raise ValueError(
                f"inputs: cannot use {type(item).__name__} as an input (give an "
                f"s3:// URI, a staged input, a published result or a source dict)"
            )
        lower = {str(k).lower() for k in item}
        rtype = str(next((v for k, v in item.items() if str(k).lower() == "type"), "")).lower()
        if "jobid" in lower or "executionid" in lower or rtype in ("s3managed", "s3presigned"):
            return self.from_result(PublishedResult.from_dict(item))
        if rtype == "s3":
            return self.clean_s3(S3Source.from_params(_params(item)))
        return source_from_spec(item)

    def from_uri(self, uri: str) -> S3Source:
        bucket, key = parse_s3_uri(uri)
        # The node reads it: S3 where the nodes see it, whatever the AWS connection's endpoint.
        view = self.node_view()
        return S3Source(bucket=bucket, key=key, region=view.region, endpoint=view.endpoint)

    def clean_s3(self, source: S3Source) -> S3Source:
        if not source.is_single_object:  # these two apply to a single object only
            source.version_id = source.checksum_sha256 = ""
        elif source.checksum_sha256.rpartition("-")[2].isdigit():
            log.info(
                "s3://%s/%s: its ChecksumSHA256 is a multipart composite, which an input "
                "cannot carry; the input goes without it",
                source.bucket,
                source.key,
            )
            source.checksum_sha256 = ""
        source.filter = source.filter or ""
        source.validate()
        return source

    def from_result(self, result: PublishedResult) -> Any:
        rtype = result.type.lower()
        if rtype == "s3":
            source = S3Source.from_params(result.params)
            if not result.is_archive:
                return self.clean_s3(source)
            if not self.restage:
                log.info(
                    "Passing archive s3://%s/%s as-is: the job sees one .tar.gz file under "
                    "its target and must extract it",
                    source.bucket,
                    source.key,
                )
                return self.clean_s3(source)
            bucket = self.staging_bucket or source.bucket
        elif rtype == "s3managed":
            if not self.restage:
                raise ValueError(
                    "restage: an s3managed result cannot be an input as published "
                    "(no compute node can read it, and its URL expires); leave "
                    "restage=True and set staging_bucket"
                )
            bucket = self._need_bucket(result)
        elif rtype == "urldownload":
            url = str(result.param("URL"))
            if not self.restage or not result.is_archive:
                if result.is_archive:
                    log.info("Passing archive %s as a URL input: the job must extract it", url.split("?")[0])
                return URLSource(url)
            bucket = self._need_bucket(result)
        elif rtype == "ipfs":
            return IPFSSource(str(result.param("CID")))
        else:
            raise ValueError(f"inputs: a {result.type!r} result cannot be used as an input")
        from airflow_provider_bacalhau.dataplane.plane import S3DataPlane

        spec = S3DataPlane(self.s3_hook).restage_result(
            result, bucket, self.staging_prefix, bacalhau_client=self.bacalhau_client
        )
        params = {k: v for k, v in spec["Params"].items() if k not in ("Endpoint", "Region")}
        view = self.node_view()
        if rtype == "s3" and not view.endpoint and bucket == source.bucket:
            # Re-staged into the result's own bucket: where the node that published it reached
            # that bucket is the compute side's view of it.
            view = ComputeS3View(source.endpoint, source.region)
        return S3Source.from_params(view.fill(params))

    def _need_bucket(self, result: PublishedResult) -> str:
        if not self.staging_bucket:
            raise ValueError(
                f"staging_bucket: a {result.type} result (job {result.job_id or '?'}) "
                f"must be re-staged into S3 before a job can read it; name the "
                f"bucket to stage it in"
            )
        return self.staging_bucket


def _join(target: str, name: str) -> str:
    return f"{target.rstrip('/')}/{name}"


def _params(item: Mapping[str, Any]) -> Mapping[str, Any]:
    for key, value in item.items():
        if str(key).lower() == "params":
            if value is not None and not isinstance(value, Mapping):
                raise SpecError("inputs.Params", "must be a mapping", value)
            return value or {}
    return {}


def resolve_inputs(
    inputs: Any,
    *,
    target: str = "/inputs",
    s3_hook: Any = None,
    aws_conn_id: str | None = "aws_default",
    bacalhau_client: Any = None,
    restage: bool = True,
    staging_bucket: str | None = None,
    staging_prefix: str = "bacalhau-staging/",
    compute_s3: ComputeS3View | None = None,
) -> list[InputSource]:
    """Resolve ``inputs`` into validated InputSources (rules in the module docstring).

    :param inputs: one input, a list of them, or a dict ``{name: input}``; None gives [].
    :param target: base directory in the container.
    :param s3_hook: a :class:`~airflow_provider_bacalhau.hooks.s3.BacalhauS3Hook` used for
        re-staging (Airflow-side I/O); made from ``aws_conn_id`` when needed and not given.
    :param aws_conn_id: AWS connection for re-staging when no ``s3_hook`` is given.
    :param bacalhau_client: a BacalhauClient; needed to download s3managed results.
    :param restage: re-stage archive results as plain objects (default) or pass them as-is.
    :param staging_bucket: bucket for re-staged results; defaults to an s3 result's own bucket,
        required for s3managed and urlDownload results.
    :param staging_prefix: key prefix for re-staged results.
    :param compute_s3: S3 as the compute nodes see it: Endpoint/Region of ``s3://`` URIs and
        re-staged prefixes; default: ``s3_hook``'s ``compute_s3``, else none (AWS or the nodes'
        default).
    """
    if not target.startswith("/"):
        raise ValueError(f"target: must be an absolute path, got {target!r}")
    target = target.rstrip("/") or "/"
    if inputs is None:
        return []
    if compute_s3 is None:
        compute_s3 = getattr(s3_hook, "compute_s3", None) or ComputeS3View()
    resolver = _Resolver(
        s3_hook=s3_hook,
        aws_conn_id=aws_conn_id,
        bacalhau_client=bacalhau_client,
        restage=restage,
        staging_bucket=staging_bucket,
        staging_prefix=staging_prefix,
        compute_s3=compute_s3,
    )
    out: list[InputSource] = []
    resolver.resolve(inputs, target, out)
    seen: set[str] = set()
    for index, item in enumerate(out):
        item.validate(f"inputs[{index}]")
        if item.target in seen:
            raise ValueError(f"inputs: two inputs on target {item.target!r}; give each its own")
        seen.add(item.target)
    return out
