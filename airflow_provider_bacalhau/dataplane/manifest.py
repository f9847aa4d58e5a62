"""The staging manifest: what a staging run stored under a prefix, so that the next run tells the
unchanged files apart without one request per object.

It lives beside the prefix, not in it (``<prefix without its slash>.bacalhau-staged.json``):
a staged prefix is mounted whole as a job input, and the job must see only the user's files.

For every key it records the object's size, ETag and stored SHA-256 (the full digest, or the
composite of ``part_size`` parts), and the local file's stat as it was when hashed. An entry is
trusted only while the listing shows the same size and ETag: S3 derives an ETag from the bytes,
so an upload by anyone else changes it, and a listing quirk (SeaweedFS lists no
``ChecksumAlgorithm``) does not matter. A file whose stat is unchanged too is not read again;
any write to a file moves its ctime, which no tool can set back.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from typing import Any

log = logging.getLogger(__name__)

MANIFEST_SUFFIX = ".bacalhau-staged.json"
_VERSION = 1
# File times come from a coarse clock: a write just after the hashing could leave them as they
# were. A stat is kept only for a file that had not changed for this long before it was hashed.
_SETTLED_NS = 2_000_000_000

Stat = tuple[int, ...]  # (st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns)


@dataclass(frozen=True)
class Entry:
    size: int
    etag: str
    sha256: str  # base64, as S3 stores it: a composite when part_size is set
    part_size: int = 0  # 0: one PUT, sha256 is the file's full digest
    stat: Stat = ()  # empty: the file must be hashed to be compared


def manifest_key(prefix: str) -> str:
    """The manifest's key beside a normalised prefix; "" at a bucket's root, where anything
    written would be inside what jobs read (no manifest there)."""
    return f"{prefix.rstrip('/')}{MANIFEST_SUFFIX}" if prefix.strip("/") else ""


def file_stat(stat: os.stat_result) -> Stat:
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


def settled(stat: Stat, hashed_at_ns: int) -> Stat:
    """``stat`` if it can stand for the content hashed at ``hashed_at_ns``, else ()."""
    return stat if stat and max(stat[3], stat[4]) < hashed_at_ns - _SETTLED_NS else ()


def read_manifest(client: Any, bucket: str, key: str) -> dict[str, Entry]:
    """The entries of the manifest at ``key`` ({} when there is none or it cannot be read)."""
    from botocore.exceptions import ClientError

    if not key:
        return {}
    try:
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
            return {}
        raise
    try:
        document = json.loads(body)
        if document.get("Version") != _VERSION:
            raise ValueError(f"version {document.get('Version')!r}")
        return {name: Entry(size=int(e["size"]), etag=str(e["etag"]), sha256=str(e["sha256"]),
                            part_size=int(e.get("part_size", 0)),
                            stat=tuple(int(v) for v in e.get("stat", ())))
                for name, e in document["Objects"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("s3://%s/%s is no staging manifest this version reads (%s): every object is "
                    "compared with S3 instead", bucket, key, exc)
        return {}


def write_manifest(client: Any, bucket: str, key: str, entries: dict[str, Entry]) -> None:
    objects = {name: {k: v for k, v in asdict(entry).items() if v or k == "size"}
               for name, entry in sorted(entries.items())}
    body = json.dumps({"Version": _VERSION, "Objects": objects}, separators=(",", ":")).encode()
    client.put_object(Bucket=bucket, Key=key, Body=body, ChecksumAlgorithm="SHA256",
                      ContentType="application/json")
