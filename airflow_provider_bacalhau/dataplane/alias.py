"""Alias markers for re-staged multipart archives (used by :mod:`.restage` only).

A re-staged archive lives under ``<prefix><sha256 of the archive>/``. A multipart archive (every
archive over 5 MiB a Bacalhau node publishes) is published with S3's composite checksum instead,
so its own SHA-256 is known only after downloading it. A small alias object named by the
composite, ``<prefix>composite-<hex>-<parts>.restaged.json`` holding ``{"SHA256": ...}``, lets a
later call find the re-staged prefix without downloading the archive again. The composite pins
the bytes as firmly as the SHA-256 does (SHA-256 of the part digests, fixed part size).
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

_HEX64 = re.compile(r"[0-9a-f]{64}")


def alias_key(prefix: str, composite: str, suffix: str) -> str:
    """``<prefix>composite-<hex of the digest>-<parts><suffix>``: key-safe, unlike base64."""
    value, _, parts = composite.partition("-")
    return f"{prefix}composite-{base64.b64decode(value).hex()}-{parts or 0}{suffix}"


def read_alias(client: Any, bucket: str, key: str) -> str:
    """The archive SHA-256 (hex) the alias names, or "" when there is none or it is malformed."""
    from botocore.exceptions import ClientError

    try:
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return ""
        raise
    try:
        digest = str(json.loads(body).get("SHA256", ""))
    except (ValueError, AttributeError):
        return ""
    return digest if _HEX64.fullmatch(digest) else ""


def write_alias(client: Any, bucket: str, key: str, digest: str) -> None:
    client.put_object(
        Bucket=bucket,
        Key=key,
        ChecksumAlgorithm="SHA256",
        ContentType="application/json",
        Body=json.dumps({"SHA256": digest}).encode(),
    )
