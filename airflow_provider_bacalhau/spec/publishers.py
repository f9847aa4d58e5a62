"""Publishers: where a task's results go (``Task.Publisher``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import InitVar, dataclass
from typing import Any, ClassVar, Self, cast

from airflow_provider_bacalhau.errors import SpecError
from airflow_provider_bacalhau.spec._common import (
    LOG,
    as_mapping,
    check_text,
    get,
    warn_once,
    warn_unknown,
)
from airflow_provider_bacalhau.spec.custom import CustomSpec
from airflow_provider_bacalhau.spec.s3rules import check_bucket

PLACEHOLDERS = ("{jobID}", "{executionID}", "{nodeID}", "{date}", "{time}")
ENCODINGS = ("gzip", "plain")
_PLACEHOLDER = re.compile(r"\{[^{}]*\}")
_JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}")


def check_key_placeholders(owner: object, key: str, path: str) -> None:
    """Warn about ``{...}`` in a Key that Bacalhau will not replace.

    The node replaces only the literal, case-sensitive placeholders and keeps anything else as
    text (pkg/publisher/s3/utils.go ParsePublishedKey), so the publish still works, under a key
    with ``{jobid}`` in it: a warning, not an error.
    """
    # Unrendered Airflow templates are not Bacalhau placeholders: leave them to the renderer.
    for found in _PLACEHOLDER.findall(_JINJA.sub("", key)):
        if found in PLACEHOLDERS:
            continue
        near = [p for p in PLACEHOLDERS if p.lower() == found.lower()]
        if near:
            warn_once(
                owner,
                "%s: placeholder %s is not replaced (placeholders are "
                "case-sensitive): did you mean %s? It stays in the key as text",
                path,
                found,
                near[0],
            )
        else:
            warn_once(
                owner,
                "%s: %s is not a Bacalhau placeholder and stays in the key as text; known: %s",
                path,
                found,
                ", ".join(PLACEHOLDERS),
            )


def _compress_to_encoding(compress: Any, path: str) -> str:
    if isinstance(compress, str) and compress.strip().lower() in ("true", "false"):
        compress = compress.strip().lower() == "true"
    if not isinstance(compress, bool):
        raise SpecError(path, "must be true or false", compress)
    encoding = "gzip" if compress else "plain"
    LOG.info("%s: Compress is not a Bacalhau v1.9 parameter; sending Encoding=%r instead", path, encoding)
    return encoding


@dataclass
class S3Publisher:
    """Publish to an S3 bucket: one ``.tar.gz`` (``gzip``, default) or one object per file.

    :param bucket: bucket name.
    :param key: object key or prefix; may hold {jobID} {executionID} {nodeID} {date} {time}.
    :param endpoint: custom endpoint for S3-compatible stores.
    :param region: bucket region (set it: a wrong one fails the publish).
    :param encoding: ``gzip`` (one archive) or ``plain`` (one object per file).
    :param compress: the public docs' name: True means gzip, False means plain; overrides
        ``encoding`` when given.
    """

    TYPE: ClassVar[str] = "s3"
    bucket: str
    key: str = ""
    endpoint: str = ""
    region: str = ""
    encoding: str = "gzip"
    compress: InitVar[Any] = None

    def __post_init__(self, compress: Any) -> None:
        if compress is not None:
            self.encoding = _compress_to_encoding(compress, "Publisher.Params.Compress")
        if self.encoding in ("", None):
            self.encoding = "gzip"  # Bacalhau's own default

    @property
    def is_archive(self) -> bool:
        return self.encoding == "gzip"

    def to_spec(self) -> dict[str, Any]:
        params = {
            "Bucket": self.bucket,
            "Key": self.key,
            "Endpoint": self.endpoint,
            "Region": self.region,
            "Encoding": self.encoding,
        }
        return {"Type": self.TYPE, "Params": {k: v for k, v in params.items() if v}}

    @classmethod
    def from_params(cls, params: Mapping[str, Any], path: str = "Publisher.Params") -> S3Publisher:
        warn_unknown(
            params,
            ("Bucket", "Key", "Endpoint", "Region", "Encoding", "Compress"),
            path,
            ignored=("VersionID", "ChecksumSHA256"),
        )
        for name in ("VersionID", "ChecksumSHA256"):
            if get(params, name):
                LOG.warning(
                    "%s.%s is a published-result field, not a publisher parameter; ignored", path, name
                )
        compress = get(params, "Compress")
        encoding = get(params, "Encoding") or "gzip"
        if compress is not None:
            encoding = _compress_to_encoding(compress, f"{path}.Compress")
        return cls(
            get(params, "Bucket") or "",
            get(params, "Key") or "",
            get(params, "Endpoint") or "",
            get(params, "Region") or "",
            encoding,
        )

    def validate(self, path: str = "Publisher") -> None:
        p = f"{path}.Params"
        check_bucket(self.bucket, f"{p}.Bucket")
        key = check_text(self.key, f"{p}.Key")
        if not key:  # "invalid s3 params. key cannot be empty" on the node (s3/types.go)
            raise SpecError(
                f"{p}.Key", "the s3 publisher needs a Key (e.g. 'results/{jobID}/{executionID}')", self.key
            )
        check_key_placeholders(self, key, f"{p}.Key")
        check_text(self.endpoint, f"{p}.Endpoint")
        check_text(self.region, f"{p}.Region")
        if self.encoding not in ENCODINGS:
            raise SpecError(f"{p}.Encoding", "must be 'gzip' or 'plain'", self.encoding)


@dataclass
class _NoParams:
    TYPE: ClassVar[str] = ""

    def to_spec(self) -> dict[str, Any]:
        return {"Type": self.TYPE}

    @classmethod
    def from_params(cls, params: Mapping[str, Any], path: str = "Publisher.Params") -> Self:
        if params:
            LOG.warning("%s: the %s publisher takes no parameters; ignored", path, cls.TYPE)
        return cls()

    def validate(self, path: str = "Publisher") -> None:
        """Nothing to check: the publisher has no parameters."""


@dataclass
class S3ManagedPublisher(_NoParams):
    """Publish a ``.tar.gz`` to the orchestrator's managed bucket (v1.8+; no parameters)."""

    TYPE: ClassVar[str] = "s3managed"


@dataclass
class LocalPublisher(_NoParams):
    """Keep the results on the compute node, served over HTTP (not for production)."""

    TYPE: ClassVar[str] = "local"


@dataclass
class IPFSPublisher(_NoParams):
    """Publish the results to the IPFS node the compute node is connected to."""

    TYPE: ClassVar[str] = "ipfs"


@dataclass
class NoopPublisher(_NoParams):
    """Publish nothing useful (tests)."""

    TYPE: ClassVar[str] = "noop"


Publisher = S3Publisher | S3ManagedPublisher | LocalPublisher | IPFSPublisher | NoopPublisher | CustomSpec
PUBLISHER_TYPES: dict[
    str, type[S3Publisher | S3ManagedPublisher | LocalPublisher | IPFSPublisher | NoopPublisher]
] = {
    "s3": S3Publisher,
    "s3managed": S3ManagedPublisher,
    "local": LocalPublisher,
    "ipfs": IPFSPublisher,
    "noop": NoopPublisher,
}
KNOWN_PUBLISHERS = "s3, s3managed, local, ipfs, noop"


def publisher_from_spec(spec: Any, path: str = "Publisher") -> Publisher:
    """Build a publisher from ``{"Type": ..., "Params": {...}}`` written with keys in any case."""
    if isinstance(spec, (*PUBLISHER_TYPES.values(), CustomSpec)):
        return cast("Publisher", spec)  # mypy does not narrow on a tuple built at run time
    spec = as_mapping(spec, path)
    warn_unknown(spec, ("Type", "Params"), path)
    # A blank Type with Params passes submit (SpecConfig.ValidateAllowBlank) but no node has a
    # publisher named "", so such a job never runs: refused here.
    ptype = check_text(get(spec, "Type", ""), f"{path}.Type", required=True).strip()
    cls = PUBLISHER_TYPES.get(ptype.lower())
    params = as_mapping(get(spec, "Params") or {}, f"{path}.Params")
    if cls is None:  # a publisher plugin: see spec/custom.py
        return CustomSpec(ptype, dict(params), "publisher", KNOWN_PUBLISHERS)
    return cls.from_params(params, f"{path}.Params")
