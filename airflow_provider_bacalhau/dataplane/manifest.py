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
from dataclasses import dataclass
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


def read_manifest(store: Any, key: str, store_error: Any) -> dict[str, Entry]:
    """The entries of the manifest at ``key`` through the obstore ``store`` ({} when there is
    none or it cannot be read); ``store_error`` makes obstore's errors botocore's."""
    import obstore

    if not key:
        return {}
    try:
        body = obstore.get(store, key).bytes().to_bytes()
    except FileNotFoundError:
        return {}
    except Exception as exc:  # noqa: BLE001 - obstore's errors carry S3's answer: made botocore's
        _unless_denied(store_error(exc, "GetObject"), exc, f"read {key}")
        return {}
    try:
        document = json.loads(body)
        if document.get("Version") != _VERSION:
            raise ValueError(f"version {document.get('Version')!r}")
        return {
            name: Entry(
                size=int(e["size"]),
                etag=str(e.get("etag", "")),
                sha256=str(e.get("sha256", "")),
                part_size=int(e.get("part_size", 0)),
                stat=tuple(int(v) for v in e.get("stat", ())),
            )
            for name, e in document["Objects"].items()
        }
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning(
            "%s is no staging manifest this version reads (%s): every object is compared with S3 instead",
            key,
            exc,
        )
        return {}


def write_manifest(store: Any, key: str, entries: dict[str, Entry], store_error: Any) -> None:
    import obstore

    objects = {name: _document(entry) for name, entry in sorted(entries.items())}
    body = json.dumps({"Version": _VERSION, "Objects": objects}, separators=(",", ":")).encode()
    try:  # the store stores its SHA-256 too
        obstore.put(store, key, body, attributes={"Content-Type": "application/json"})
    except Exception as exc:  # noqa: BLE001 - as above
        _unless_denied(store_error(exc, "PutObject"), exc, f"write {key}")


def _document(entry: Entry) -> dict[str, Any]:
    """An entry as the manifest stores it, empty fields left out (by hand: ``dataclasses.asdict``
    deep-copies every field, which costs more than the rest of a no-change run's bookkeeping)."""
    document: dict[str, Any] = {"size": entry.size}
    if entry.etag:
        document["etag"] = entry.etag
    if entry.sha256:
        document["sha256"] = entry.sha256
    if entry.part_size:
        document["part_size"] = entry.part_size
    if entry.stat:
        document["stat"] = list(entry.stat)
    return document


def _unless_denied(error: Exception, cause: Exception, action: str) -> None:
    """An identity allowed only under the prefix may not touch the manifest beside it: staging
    still works (each object compared with S3, as without a manifest); anything else is raised."""
    code = getattr(error, "response", {}).get("Error", {}).get("Code")
    if code != "AccessDenied":
        raise error from cause
    log.warning(
        "The AWS connection may not %s (AccessDenied): staging goes on without its "
        "manifest, comparing every object with S3",
        action,
    )
