"""Checksums and safe extraction of result archives (plain Python: no Airflow, no boto3).

S3 reports ``ChecksumSHA256`` as base64. For a multipart upload that value is a *composite*: the
SHA-256 of the concatenated part digests, with a ``-<parts>`` suffix on AWS and SeaweedFS (some
stores, moto among them, leave the suffix out). Bacalhau nodes upload archives over 5 MiB in
5 MiB parts and publish that composite as is (v1.9.3 pkg/publisher/s3/publisher.go
``publishArchive``). :func:`matches_stored_checksum` understands both forms.
"""

from __future__ import annotations

import base64
import hashlib
import os
import tarfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from airflow_provider_bacalhau.errors import ResultIntegrityError

#: The one 1 MiB constant: read and transfer chunk size, and the unit of sizes in logs.
MiB = 1024 * 1024


def b64_digest(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def file_sha256(path: str | os.PathLike) -> bytes:
    """Raw SHA-256 digest of a file, read in 1 MiB chunks."""
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(MiB):
            sha.update(chunk)
    return sha.digest()


def file_digests(path: str | os.PathLike, part_size: int | None = None) -> tuple[str, str, int]:
    """One pass over a file: (base64 SHA-256, base64 composite of ``part_size`` parts without
    suffix, part count). Without ``part_size`` the composite is empty and the count 1."""
    full = hashlib.sha256()
    outer = hashlib.sha256()
    part = hashlib.sha256()
    in_part = parts = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(MiB if not part_size else min(MiB, part_size - in_part)):
            full.update(chunk)
            if part_size:
                part.update(chunk)
                in_part += len(chunk)
                if in_part == part_size:
                    outer.update(part.digest())
                    parts, in_part, part = parts + 1, 0, hashlib.sha256()
    if not part_size:
        return b64_digest(full.digest()), "", 1
    if in_part or not parts:
        outer.update(part.digest())
        parts += 1
    return b64_digest(full.digest()), b64_digest(outer.digest()), parts


def is_composite(stored: str, etag: str = "") -> bool:
    """A stored checksum is a composite when it carries ``-N`` (AWS) or the ETag does (multipart)."""
    return "-" in stored or "-" in etag.strip('"')


def matches_stored_checksum(
    path: str | os.PathLike,
    stored: str,
    *,
    full_b64: str | None = None,
    etag: str = "",
    part_size: int | None = None,
) -> bool | None:
    """Compare a local file with S3's stored ``ChecksumSHA256``.

    :return: True/False, or None when the stored value is a composite and ``part_size`` is
        unknown (cannot be checked).
    """
    if not is_composite(stored, etag):
        if full_b64 is None:
            full_b64 = b64_digest(file_sha256(path))
        return stored == full_b64
    if not part_size:
        return None
    _, value, parts = file_digests(path, part_size)
    base, _, suffix = stored.partition("-")
    if suffix and suffix != str(parts):
        return False
    return base == value


def _inside(root: Path, candidate: Path) -> bool:
    try:
        candidate.relative_to(root)
    except ValueError:
        return False
    return True


def check_members(members: Iterable[tarfile.TarInfo], dest: Path) -> list[tarfile.TarInfo]:
    """Refuse any member that could write outside ``dest``; return the members to extract."""
    root = dest.resolve()
    safe = []
    for member in members:
        name = member.name
        pure = PurePosixPath(name)
        if name.startswith(("/", "\\")) or pure.is_absolute() or (len(name) > 1 and name[1] == ":"):
            raise ResultIntegrityError(f"archive member {name!r} has an absolute path: refused")
        if ".." in pure.parts:
            raise ResultIntegrityError(f"archive member {name!r} escapes the destination: refused")
        target = (root / pure).resolve()
        if not _inside(root, target):
            raise ResultIntegrityError(f"archive member {name!r} escapes the destination: refused")
        if member.ischr() or member.isblk() or member.isfifo() or member.isdev():
            raise ResultIntegrityError(f"archive member {name!r} is a device or pipe: refused")
        if member.issym() or member.islnk():
            link = PurePosixPath(member.linkname)
            if link.is_absolute() or member.linkname.startswith("/"):
                raise ResultIntegrityError(f"archive member {name!r} links to an absolute path: refused")
            base = target.parent if member.issym() else root
            if not _inside(root, (base / link).resolve()):
                raise ResultIntegrityError(f"archive member {name!r} links outside the destination: refused")
        safe.append(member)
    return safe


def safe_extract(archive: str | os.PathLike, dest: str | os.PathLike) -> int:
    """Extract a (gzip) tar into ``dest`` after checking every member; returns the file count.

    Our own checks come first so the error names the member; Python's ``data`` filter is a second
    guard (it also drops set-uid bits and odd permissions).
    """
    dest_path = Path(dest)
    dest_path.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            members = check_members(tar.getmembers(), dest_path)
            tar.extractall(dest_path, members=members, filter="data")
    except tarfile.TarError as exc:
        raise ResultIntegrityError(f"result archive could not be extracted: {exc}") from exc
    return sum(1 for m in members if m.isfile())
