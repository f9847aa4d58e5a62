"""Input sources: where a task's input data comes from (``InputSources[].Source``)."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, cast
from urllib.parse import urlparse

from airflow_provider_bacalhau.errors import SpecError
from airflow_provider_bacalhau.spec._common import (
    as_mapping,
    check_absolute,
    check_text,
    get,
    warn_once,
    warn_unknown,
)
from airflow_provider_bacalhau.spec.custom import CustomSpec
from airflow_provider_bacalhau.spec.s3rules import (
    PARTITION_TYPES,
    check_bucket,
    check_composite_checksum,
    check_go_regex,
    validate_partition,
)

_PARTITION_KEYS = ("Type", "Pattern", "StartIndex", "EndIndex", "DateFormat")
_CREATE_AS = {"": "", "dir": "dir", "file": "file", "nocreate": "noCreate"}


def _clean_partition(partition: Any) -> dict[str, Any] | None:
    if not isinstance(partition, Mapping):
        return partition  # type: ignore[no-any-return]  # not a map: validate() reports it
    out = {}
    for name in _PARTITION_KEYS:
        value = get(partition, name)
        if value not in (None, "", 0):
            out[name] = value
    ptype = out.get("Type")
    if isinstance(ptype, str) and ptype.strip().lower() in PARTITION_TYPES:
        # The node compares Type case-sensitively with lower-case constants
        # (pkg/s3/partitioning.go PartitionConfig.Validate) and no two types differ only in
        # case, so "Regex" can only mean "regex": send the one form the node accepts.
        out["Type"] = ptype.strip().lower()
    return out or None


@dataclass
class S3Source:
    """Objects in an S3 bucket: one key, a prefix (key ends with ``/``) or a trailing ``*``.

    :param bucket: bucket name (no ``s3://``).
    :param key: object key, prefix ending in ``/``, or prefix with a trailing ``*``; empty = all.
    :param filter: RE2 regex applied to listed keys after the prefix (prefix/wildcard mode only).
    :param region: bucket region.
    :param endpoint: custom endpoint for S3-compatible stores.
    :param version_id: object version (single object only).
    :param checksum_sha256: base64 SHA-256 the node verifies (single object only).
    :param partition: ``{Type, Pattern, StartIndex, EndIndex, DateFormat}`` for Count > 1.
    """

    TYPE: ClassVar[str] = "s3"
    bucket: str
    key: str = ""
    filter: str = ""
    region: str = ""
    endpoint: str = ""
    version_id: str = ""
    checksum_sha256: str = ""
    partition: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.partition = _clean_partition(self.partition)

    @property
    def is_single_object(self) -> bool:
        return bool(self.key) and not self.key.endswith(("/", "*"))

    def to_spec(self) -> dict[str, Any]:
        params = {
            "Bucket": self.bucket,
            "Key": self.key,
            "Filter": self.filter,
            "Region": self.region,
            "Endpoint": self.endpoint,
            "VersionID": self.version_id,
            "ChecksumSHA256": self.checksum_sha256,
            "Partition": self.partition,
        }
        return {"Type": self.TYPE, "Params": {k: v for k, v in params.items() if v}}

    @classmethod
    def from_params(cls, params: Mapping[str, Any], path: str = "Source.Params") -> S3Source:
        known = ("Bucket", "Key", "Filter", "Region", "Endpoint", "VersionID", "ChecksumSHA256", "Partition")
        warn_unknown(params, known, path)
        values = {_snake(k): get(params, k) for k in known}
        for name, value in values.items():
            if value is None and name != "partition":
                values[name] = ""
        return cls(**values)

    def validate(self, path: str = "Source") -> None:
        p = f"{path}.Params"
        check_bucket(self.bucket, f"{p}.Bucket")
        for name in ("key", "filter", "region", "endpoint", "version_id", "checksum_sha256"):
            check_text(getattr(self, name), f"{p}.{_pascal(name)}")
        if self.is_single_object:
            if self.checksum_sha256:
                check_composite_checksum(self.checksum_sha256, f"{p}.ChecksumSHA256")
            if self.filter:
                # explodeKey compiles Filter only when listing, so a single key ignores it
                warn_once(
                    self,
                    "%s.Filter is ignored by Bacalhau: Key %r names a single "
                    "object, and Filter applies to a prefix or a trailing '*' only",
                    p,
                    self.key,
                )
        else:
            if self.filter:
                check_go_regex(self.filter, f"{p}.Filter")
            kind = "a prefix" if self.key else "the whole bucket"
            for name, value in (("VersionID", self.version_id), ("ChecksumSHA256", self.checksum_sha256)):
                if value:
                    warn_once(
                        self,
                        "%s.%s is ignored by Bacalhau: Key %r names %s, and %s "
                        "applies to a single object only",
                        p,
                        name,
                        self.key,
                        kind,
                        name,
                    )
        if self.partition is not None:
            validate_partition(as_mapping(self.partition, f"{p}.Partition"), f"{p}.Partition")


@dataclass
class URLSource:
    """A file downloaded over HTTP(S) (``urlDownload``).

    :param url: http or https URL whose path ends in a file name.
    """

    TYPE: ClassVar[str] = "urlDownload"
    url: str

    def to_spec(self) -> dict[str, Any]:
        return {"Type": self.TYPE, "Params": {"URL": self.url}}

    @classmethod
    def from_params(cls, params: Mapping[str, Any], path: str = "Source.Params") -> URLSource:
        warn_unknown(params, ("URL",), path)
        return cls(get(params, "URL", ""))

    def validate(self, path: str = "Source") -> None:
        text = check_text(self.url, f"{path}.Params.URL", required=True)
        # the node trims blanks and quotes first (urldownload/storage.go IsURLSupported)
        if urlparse(text.strip(" '\"")).scheme not in ("http", "https"):
            raise SpecError(f"{path}.Params.URL", "must be an http:// or https:// URL", text)


@dataclass
class LocalSource:
    """A path on the compute node (must be allow-listed there).

    :param source_path: absolute host path.
    :param read_write: mount read-write.
    :param create_as: ``dir``, ``file`` or ``noCreate`` (Bacalhau's default).
    :param type: ``local`` or its deprecated alias ``localDirectory`` (kept as written).
    """

    TYPE: ClassVar[str] = "local"
    source_path: str
    read_write: bool = False
    create_as: str = ""
    type: str = "local"

    def to_spec(self) -> dict[str, Any]:
        params: dict[str, Any] = {"SourcePath": self.source_path}
        if self.read_write:
            params["ReadWrite"] = True
        if self.create_as:
            params["CreateAs"] = self.create_as
        return {"Type": self.type, "Params": params}

    @classmethod
    def from_params(
        cls, params: Mapping[str, Any], path: str = "Source.Params", type: str = "local"
    ) -> LocalSource:
        warn_unknown(params, ("SourcePath", "ReadWrite", "CreateAs"), path)
        rw = get(params, "ReadWrite", False)
        if isinstance(rw, str):
            rw = rw == "true"  # exactly what the node does (pkg/storage/local/types.go DecodeSpec)
        create_as = get(params, "CreateAs", "") or ""
        if isinstance(create_as, str):
            # the node matches it in any case (local/create_strategy.go CreateStrategyFromString)
            create_as = _CREATE_AS.get(create_as.lower(), create_as)
        return cls(get(params, "SourcePath", ""), rw, create_as, type)

    def validate(self, path: str = "Source") -> None:
        if self.type not in ("local", "localDirectory"):
            raise SpecError(f"{path}.Type", "must be 'local' or 'localDirectory'", self.type)
        if self.type == "localDirectory":
            warn_once(
                self, "%s.Type 'localDirectory' is a deprecated alias of 'local'", path, level=logging.INFO
            )
        check_absolute(self.source_path, f"{path}.Params.SourcePath")
        if not isinstance(self.read_write, bool):
            raise SpecError(f"{path}.Params.ReadWrite", "must be true or false", self.read_write)
        if self.create_as not in ("", "dir", "file", "noCreate"):
            raise SpecError(f"{path}.Params.CreateAs", "must be dir, file or noCreate", self.create_as)


@dataclass
class IPFSSource:
    """Content from IPFS by CID.

    :param cid: the content identifier.
    """

    TYPE: ClassVar[str] = "ipfs"
    cid: str

    def to_spec(self) -> dict[str, Any]:
        return {"Type": self.TYPE, "Params": {"CID": self.cid}}

    @classmethod
    def from_params(cls, params: Mapping[str, Any], path: str = "Source.Params") -> IPFSSource:
        warn_unknown(params, ("CID",), path)
        return cls(get(params, "CID", ""))

    def validate(self, path: str = "Source") -> None:
        check_text(self.cid, f"{path}.Params.CID", required=True)


@dataclass
class InlineSource:
    """Small content embedded in the spec as a ``data:`` URL.

    :param url: the ``data:`` URL.
    """

    TYPE: ClassVar[str] = "inline"
    url: str

    def to_spec(self) -> dict[str, Any]:
        return {"Type": self.TYPE, "Params": {"URL": self.url}}

    @classmethod
    def from_params(cls, params: Mapping[str, Any], path: str = "Source.Params") -> InlineSource:
        warn_unknown(params, ("URL",), path)
        return cls(get(params, "URL", ""))

    def validate(self, path: str = "Source") -> None:
        check_text(self.url, f"{path}.Params.URL", required=True)


Source = S3Source | URLSource | LocalSource | IPFSSource | InlineSource | CustomSpec
SOURCE_TYPES: dict[str, type[S3Source | URLSource | LocalSource | IPFSSource | InlineSource]] = {
    "s3": S3Source,
    "urldownload": URLSource,
    "local": LocalSource,
    "localdirectory": LocalSource,
    "ipfs": IPFSSource,
    "inline": InlineSource,
}
KNOWN_SOURCES = "s3, urlDownload, local, localDirectory, ipfs, inline"


def source_from_spec(spec: Any, path: str = "Source") -> Source:
    """Build a source from ``{"Type": ..., "Params": {...}}`` written with keys in any case."""
    if isinstance(spec, (*SOURCE_TYPES.values(), CustomSpec)):
        return cast("Source", spec)  # mypy does not narrow on a tuple built at run time
    spec = as_mapping(spec, path)
    warn_unknown(spec, ("Type", "Params"), path)
    stype = check_text(get(spec, "Type", ""), f"{path}.Type", required=True).strip()
    params = as_mapping(get(spec, "Params") or {}, f"{path}.Params")
    cls = SOURCE_TYPES.get(stype.lower())
    if stype.lower() in ("s3managed", "s3presigned"):
        # Kept as an error: these are Bacalhau's result and downloader types
        # (pkg/downloader/util/utils.go), which no storage provider registers, and a user who
        # writes one means a published result, which the inputs helper turns into an input.
        raise SpecError(
            f"{path}.Type",
            f"unknown input source type; known: {KNOWN_SOURCES} "
            f"(that is a result type, not an input type; use "
            f"PublishedResult and the inputs helper to turn it into "
            f"an input)",
            stype,
        )
    if cls is None:  # a storage plugin: see spec/custom.py
        return CustomSpec(stype, dict(params), "input source", KNOWN_SOURCES)
    if cls is LocalSource:
        kind = "localDirectory" if stype.lower() == "localdirectory" else "local"
        return LocalSource.from_params(params, f"{path}.Params", kind)
    return cls.from_params(params, f"{path}.Params")


@dataclass
class InputSource:
    """A source mounted at ``target`` in the task's container.

    :param target: absolute path in the container (always a directory for s3).
    :param source: a source object or a ``{"Type","Params"}`` mapping.
    :param alias: optional unique name.
    """

    target: str
    source: Source
    alias: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.source, Mapping):
            self.source = source_from_spec(self.source)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"Target": self.target, "Source": self.source.to_spec()}
        if self.alias:
            out["Alias"] = self.alias
        return out

    @classmethod
    def from_dict(cls, mapping: Mapping[str, Any], path: str = "InputSource") -> InputSource:
        mapping = as_mapping(mapping, path)
        warn_unknown(mapping, ("Target", "Source", "Alias"), path)
        source = get(mapping, "Source")
        if source is None:
            raise SpecError(f"{path}.Source", "input source has no Source", dict(mapping))
        return cls(
            get(mapping, "Target", "") or "",
            source_from_spec(source, f"{path}.Source"),
            get(mapping, "Alias", "") or "",
        )

    def validate(self, path: str = "InputSource") -> None:
        target = check_text(self.target, f"{path}.Target")
        if not target.strip():  # "input source is missing a target" (pkg/models/input_source.go)
            raise SpecError(
                f"{path}.Target",
                "input source is missing a Target (the absolute path where the data appears)",
                self.target,
            )
        # whether it must be absolute depends on the engine: Task checks that
        check_text(self.alias, f"{path}.Alias")
        if not hasattr(self.source, "validate"):
            raise SpecError(f"{path}.Source", "must be a source object or {Type, Params}", self.source)
        self.source.validate(f"{path}.Source")


def _snake(name: str) -> str:
    return {"VersionID": "version_id", "ChecksumSHA256": "checksum_sha256"}.get(
        name, re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()
    )


def _pascal(name: str) -> str:
    return {"version_id": "VersionID", "checksum_sha256": "ChecksumSHA256"}.get(
        name, "".join(part.capitalize() for part in name.split("_"))
    )
