"""The local side of staging: which files a ``local_paths`` argument names, under which keys, and
their bytes with the SHA-256 that S3 is asked to check. Plain Python: no S3 here."""

from __future__ import annotations

import glob
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from airflow_provider_bacalhau.dataplane.archive import b64_digest, file_sha256
from airflow_provider_bacalhau.dataplane.manifest import Stat, file_stat

_GLOB_CHARS = ("*", "?", "[")


@dataclass
class LocalFile:
    path: Path
    relative: str  # posix path under the prefix
    size: int
    stat: Stat = ()


def local_file(path: Path, relative: str) -> LocalFile:
    stat = path.stat()
    return LocalFile(path, relative, stat.st_size, file_stat(stat))


def walk(directory: Path, under: str) -> list[LocalFile]:
    """Every file below ``directory`` with its stat (os.scandir: one stat call per file)."""
    found = []
    pending = [(os.fspath(directory), under)]
    while pending:
        folder, relative = pending.pop()
        with os.scandir(folder) as entries:
            listed = sorted(entries, key=lambda entry: entry.name)
        for entry in reversed(listed):
            if entry.is_dir(follow_symlinks=False):  # as os.walk: links to folders not followed
                pending.append((entry.path, f"{relative}{entry.name}/"))
        for entry in listed:
            if entry.is_file():  # not broken symlinks, sockets
                stat = entry.stat()
                found.append(
                    LocalFile(Path(entry.path), f"{relative}{entry.name}", stat.st_size, file_stat(stat))
                )
    return found  # os.walk's order: a folder's files, then its sub-folders, depth first


def collect_files(local_paths: str | os.PathLike | list) -> tuple[list[LocalFile], bool]:
    """Expand ``local_paths`` into files with their relative keys.

    Rules: a directory named as such uploads its *contents* (relative paths kept); a file keeps
    its base name; a glob match keeps its base name (a matched directory becomes a sub-folder).
    Returns ``(files, single)`` where ``single`` is True when exactly one plain file (no glob)
    was given: that is staged and referenced as a single object.
    """
    items = [local_paths] if isinstance(local_paths, (str, os.PathLike)) else list(local_paths)
    if not items:
        raise ValueError("local_paths: nothing to stage (empty list)")
    files: list[LocalFile] = []
    for item in items:
        text = os.fspath(item)
        if any(ch in text for ch in _GLOB_CHARS):
            matches = sorted(glob.glob(text, recursive=True))
            if not matches:
                raise ValueError(f"local_paths: glob {text!r} matched nothing")
            for match in matches:
                path = Path(match)
                if path.is_dir():
                    files.extend(walk(path, f"{path.name}/"))
                elif path.is_file():
                    files.append(local_file(path, path.name))
            continue
        path = Path(text)
        if path.is_dir():
            files.extend(walk(path, ""))
        elif path.is_file():
            files.append(local_file(path, path.name))
        else:
            raise ValueError(f"local_paths: {text!r} does not exist")
    seen: dict[str, Path] = {}
    for item in files:
        if item.relative in seen:
            raise ValueError(
                f"local_paths: {seen[item.relative]} and {item.path} would both be "
                f"stored as {item.relative!r}"
            )
        seen[item.relative] = item.path
    single = (
        len(items) == 1
        and len(files) == 1
        and Path(os.fspath(items[0])).is_file()
        and not any(ch in os.fspath(items[0]) for ch in _GLOB_CHARS)
    )
    return files, single


def read_and_hash(item: LocalFile, whole: bool) -> tuple[bytes | None, str]:
    """``(bytes, SHA-256 in base64)`` of a file sent in one PUT: read once, so the bytes hashed
    are the bytes sent (``whole``); else ``(None, digest)``, the file streamed from disk twice."""
    if whole:
        data = item.path.read_bytes()
        return data, b64_digest(hashlib.sha256(data).digest())
    return None, b64_digest(file_sha256(item.path))
