"""S3 input rules as a v1.9.3 compute node applies them (pkg/s3/types.go, pkg/s3/partitioning.go,
pkg/storage/s3/storage.go), plus the bucket-name rules every S3 implementation shares."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any

from airflow_provider_bacalhau.errors import SpecError
from airflow_provider_bacalhau.spec._common import check_int, check_text, get
from airflow_provider_bacalhau.spec.goregex import go_regex_error

PARTITION_TYPES = ("none", "object", "regex", "substring", "date")
# AWS's legacy (us-east-1) rules, the loosest any S3 accepts: capitals and '_' included.
_BUCKET_CHARS = re.compile(r"^[A-Za-z0-9._-]+$")
_HEX64 = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")


def check_bucket(value: Any, path: str) -> None:
    """Bucket: not empty, no ``s3://``, no ``/``, no whitespace, only letters, digits, ``.``,
    ``_`` and ``-`` (capitals and ``_`` allowed: legacy names).

    The node checks only "not empty" (SourceSpec.Validate); the other rules stay because no S3
    implementation (AWS, MinIO, SeaweedFS) has a bucket named so: the node's HeadObject or
    ListObjectsV2 fails on every network.
    """
    text = check_text(value, path)
    if not text:
        raise SpecError(path, "bucket must not be empty", value)
    if text.lower().startswith("s3://") or "://" in text:
        raise SpecError(path, "give the bare bucket name, not an s3:// URI (the rest goes in Key)", value)
    if "/" in text:
        raise SpecError(path, "bucket must not contain '/' (put the path part in Key)", value)
    if any(ch.isspace() for ch in text):
        raise SpecError(path, "bucket must not contain whitespace", value)
    if not _BUCKET_CHARS.match(text):
        raise SpecError(path, "bucket names hold only letters, digits, '.', '_' and '-'", value)


def check_checksum(value: str, path: str) -> None:
    """S3 compares ChecksumSHA256 as a string: it must be the base64 of the 32-byte digest."""
    if _HEX64.match(value):
        hint = base64.b64encode(bytes.fromhex(value.removeprefix("0x"))).decode()
        raise SpecError(
            path, f"must be base64 (as S3 reports it), not hex; base64 of this digest is {hint!r}", value
        )
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise SpecError(
            path, "must be the base64 of a 32-byte SHA-256 digest (44 characters ending in '=')", value
        )


def check_composite_checksum(value: str, path: str) -> None:
    """A multipart upload's ChecksumSHA256 on AWS is ``<base64 of 32 bytes>-<parts>``; the node
    compares strings (storage.go ``explodeKey``), so that form is valid too."""
    head, dash, parts = value.rpartition("-")
    if dash and parts.isdigit() and head:
        check_checksum(head, path)
    else:
        check_checksum(value, path)


def check_go_regex(value: str, path: str) -> None:
    problem = go_regex_error(value)
    if problem:
        raise SpecError(
            path,
            f"invalid regular expression for Go's RE2 syntax, which the "
            f"compute node uses (no lookaround or backreference): {problem}",
            value,
        )


def validate_partition(part: Mapping[str, Any], path: str) -> None:
    """The node runs PartitionConfig.Validate on every S3 input, whatever Count is
    (pkg/s3/types.go SourceSpec.Validate via DecodeSourceSpec), so each failure here is sure."""
    ptype = get(part, "Type", "") or ""
    if not isinstance(ptype, str) or (ptype and ptype not in PARTITION_TYPES):
        raise SpecError(
            f"{path}.Type",
            f"must be one of {', '.join(PARTITION_TYPES)} (lower case: the node compares it exactly)",
            ptype,
        )
    for name in ("StartIndex", "EndIndex"):
        if get(part, name) is not None:  # mapstructure.Decode refuses a non-integer
            check_int(get(part, name), f"{path}.{name}", minimum=None)
    if ptype == "regex":
        pattern = check_text(get(part, "Pattern"), f"{path}.Pattern")
        if not pattern:
            raise SpecError(f"{path}.Pattern", "regex partitioning needs a Pattern", pattern)
        check_go_regex(pattern, f"{path}.Pattern")
    elif ptype == "substring":
        start, end = get(part, "StartIndex") or 0, get(part, "EndIndex") or 0
        if start < 0:
            raise SpecError(f"{path}.StartIndex", "must be >= 0", start)
        if end <= start:
            raise SpecError(f"{path}.EndIndex", "must be greater than StartIndex", end)
    elif ptype == "date":
        check_text(get(part, "DateFormat"), f"{path}.DateFormat", required=True)
