"""Input sources of the devstack compute node: fetched before the container starts.

Follows Bacalhau v1.9.3 (``pkg/storage/*``): every input becomes a bind mount at its ``Target``.
S3 objects land in a fresh directory per input, laid out as the real node lays them out; ``local``
mounts the host path itself; ``inline`` mounts one file (or an extracted gzip tarball).
"""

from __future__ import annotations

import base64
import re
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any

from airflow_provider_bacalhau.devstack.compute_common import ComputeError, S3Clients, s3_error, same_type
from airflow_provider_bacalhau.devstack.decode import field, flag, text
from airflow_provider_bacalhau.devstack.goregexp import GoRegexpError, compile_go

SOURCE_TYPES = ("s3", "urlDownload", "local", "localDirectory", "inline")
_URL_TIMEOUT = 30.0


@dataclass
class Mount:
    """A host path bind-mounted into the container."""

    source: Path
    target: str
    read_only: bool = True


@dataclass
class InputContext:
    clients: S3Clients
    storage_dir: Path
    allow_listed_local_paths: list[str]
    partition_index: int = 0
    partition_count: int = 1


def source_type(source: Any) -> str:
    return text(source, "Type").strip()


def validate_source(source: Any) -> str | None:
    """The params error the real node reports for this source, or None."""
    params = field(source, "Params") or {}
    kind = source_type(source)
    if same_type(kind, "s3"):
        if not text(params, "Bucket"):
            return "invalid s3 storage params: bucket cannot be empty"
        return _validate_partition(field(params, "Partition") or {})
    if same_type(kind, "urlDownload") and not text(params, "URL"):
        return "invalid url storage params: url cannot be empty"
    if (same_type(kind, "local") or same_type(kind, "localDirectory")) and not text(params, "SourcePath"):
        return "invalid local storage params: SourcePath cannot be empty"
    if same_type(kind, "inline") and not text(params, "URL").startswith("data:"):
        return "invalid inline storage params: URL must be a data: URL"
    return None


def _validate_partition(partition: Any) -> str | None:
    kind = text(partition, "Type")
    if kind not in ("", "none", "object", "regex", "substring", "date"):
        return f"unsupported partition key type {kind}"
    if kind == "regex":
        pattern = text(partition, "Pattern")
        if not pattern:
            return "regex pattern cannot be empty"
        try:
            compile_go(pattern)  # Go RE2, as PartitionConfig.Validate
        except GoRegexpError as exc:
            return f"invalid regex pattern: {exc}"
    if kind == "substring":
        start, end = int(field(partition, "StartIndex", 0) or 0), int(field(partition, "EndIndex", 0) or 0)
        if start < 0:
            return "start index cannot be negative"
        if end <= start:
            return "end index must be greater than start index"
    if kind == "date":
        return "date partitioning is not supported by the devstack"
    return None


def prepare_inputs(input_sources: list, context: InputContext) -> list[Mount]:
    """Fetch every input and return the mounts, in the job's order."""
    mounts = []
    for input_source in input_sources:
        target = text(input_source, "Target")
        source = field(input_source, "Source") or {}
        params = field(source, "Params") or {}
        kind = source_type(source)
        if same_type(kind, "s3"):
            mounts.append(Mount(_fetch_s3(params, context), target))
        elif same_type(kind, "urlDownload"):
            mounts.append(Mount(_fetch_url(text(params, "URL"), context.storage_dir), target))
        elif same_type(kind, "local") or same_type(kind, "localDirectory"):
            mounts.append(_local(params, target, context.allow_listed_local_paths))
        elif same_type(kind, "inline"):
            mounts.append(Mount(_inline(text(params, "URL"), context.storage_dir), target))
        else:
            raise ComputeError(f"does not support {kind}")
    return mounts


# --- s3 ---------------------------------------------------------------------------------------


def _fetch_s3(params: Any, context: InputContext) -> Path:
    bucket, key = text(params, "Bucket"), text(params, "Key")
    client = context.clients.client(text(params, "Endpoint"), text(params, "Region"))
    output_dir = Path(tempfile.mkdtemp(prefix="s3-input-", dir=context.storage_dir))
    objects = _explode_key(client, params, bucket, key)
    objects = _partition(objects, params, key, context.partition_count, context.partition_index)
    prefix_tokens = key.strip().removesuffix("*").split("/")
    for object_key, version_id in objects:
        tokens = object_key.split("/")
        start = 0
        # Strip the leading key components shared with the given key's directory part.
        for i in range(len(prefix_tokens) - 1):
            if i < len(tokens) and prefix_tokens[i] == tokens[i]:
                start += 1
            else:
                break
        relative = [part for part in tokens[start:] if part not in ("", ".", "..")]
        if not relative:
            continue
        destination = output_dir.joinpath(*relative)
        request = {"Bucket": bucket, "Key": object_key}
        if version_id:
            request["VersionId"] = version_id
        try:
            destination.parent.mkdir(parents=True, exist_ok=True)
            body = client.get_object(**request)["Body"]
            with open(destination, "wb") as handle:
                shutil.copyfileobj(body, handle, 1024 * 1024)
        except OSError as exc:
            raise ComputeError(f"failed to write s3://{bucket}/{object_key}: {exc}") from exc
        except Exception as exc:  # botocore errors carry the S3 answer
            raise ComputeError(s3_error("GetObject", exc)) from exc
    return output_dir


def _explode_key(client: Any, params: Any, bucket: str, key: str) -> list[tuple[str, str]]:
    """Object keys (and version ids) a key names: a single object, a prefix or a trailing-* wildcard."""
    version_id = text(params, "VersionID")
    checksum = text(params, "ChecksumSHA256")
    directory_object = False
    if key and not key.endswith(("*", "/")):
        request: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if version_id:
            request["VersionId"] = version_id
        if checksum:
            request["ChecksumMode"] = "ENABLED"
        try:
            head = client.head_object(**request)
        except Exception as exc:
            raise ComputeError(s3_error("HeadObject", exc)) from exc
        got = head.get("ChecksumSHA256") or ""
        if checksum and checksum != got:
            raise ComputeError(f"checksum mismatch for s3://{bucket}/{key}, expected {checksum}, got {got}")
        if not (head.get("ContentType") or "").startswith("application/x-directory"):
            return [(key, version_id)]
        directory_object = True
    filter_text = text(params, "Filter")
    try:
        pattern = compile_go(filter_text)  # Go RE2, as explodeKey
    except GoRegexpError as exc:
        raise ComputeError(f"invalid regex pattern: {exc}") from exc
    prefix = key.strip().removesuffix("*")
    found: list[tuple[str, str]] = []
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                object_key = item["Key"]
                if object_key.endswith("/") or (object_key == prefix and directory_object):
                    continue  # directory markers (and the x-directory object itself) are dropped
                if filter_text and not pattern.search(object_key[len(prefix) :]):
                    continue
                found.append((object_key, ""))
    except ComputeError:
        raise
    except Exception as exc:
        raise ComputeError(s3_error("ListObjectsV2", exc)) from exc
    return found


def _fnv1a32(value: str) -> int:
    digest = 0x811C9DC5
    for byte in value.encode():
        digest = ((digest ^ byte) * 0x01000193) & 0xFFFFFFFF
    return digest


def _partition(objects: list[tuple[str, str]], params: Any, key: str, count: int, index: int) -> list:
    """Bacalhau's ``PartitionObjects`` (FNV-1a buckets); ``date`` is not implemented."""
    partition = field(params, "Partition") or {}
    problem = _validate_partition(partition)
    if problem:
        raise ComputeError(problem)
    if count <= 0:
        raise ComputeError("job partitions/count must be greater than 0")
    if index < 0 or index >= count:
        raise ComputeError(f"partition index must be between 0 and {count - 1}")
    kind = text(partition, "Type")
    if count == 1 or kind in ("", "none"):
        return objects
    prefix = key.strip().removesuffix("*")

    def relative(object_key: str) -> str:
        return object_key.removeprefix(prefix).removeprefix("/")

    def bucket_of(object_key: str) -> int:
        if kind == "object":
            return _fnv1a32(object_key) % count
        name = relative(object_key)
        if kind == "regex":
            match = compile_go(text(partition, "Pattern")).search(name)
            if not match or not match.group(0):
                return 0
            groups = [group for group in match.groups() if group]
            return _fnv1a32("\x1f".join(groups) if groups else match.group(0)) % count
        start = int(field(partition, "StartIndex", 0) or 0)
        end = int(field(partition, "EndIndex", 0) or 0)
        if len(name) < end:
            return 0
        return _fnv1a32(name[start:end]) % count

    return [item for item in objects if bucket_of(item[0]) == index]


# --- urlDownload --------------------------------------------------------------------------------


def _fetch_url(url: str, storage_dir: Path) -> Path:
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("http", "https"):
        raise ComputeError(
            f"URLs must begin with 'http' or 'https'. The submitted one began with {parsed.scheme}"
        )
    if not parsed.path.rstrip("/") or parsed.path.endswith("/"):
        raise ComputeError("URL must end with a file name")
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=_URL_TIMEOUT) as head:
            status = head.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except OSError as exc:
        raise ComputeError(f"failed to begin download from url {url}: {exc}") from exc
    if status != 200:
        raise ComputeError(f"received non-OK response code {status} while fetching size of file download")
    output_dir = Path(tempfile.mkdtemp(prefix="url-input-", dir=storage_dir))
    try:
        with urllib.request.urlopen(url, timeout=_URL_TIMEOUT) as response:
            name = _download_name(response)
            with open(output_dir / name, "wb") as handle:
                shutil.copyfileobj(response, handle, 1024 * 1024)
    except urllib.error.HTTPError as exc:
        raise ComputeError(f"non-200 response from URL ({url}): {exc.code} {exc.reason}") from exc
    except OSError as exc:
        raise ComputeError(f"failed to begin download from url {url}: {exc}") from exc
    return output_dir


def _download_name(response: Any) -> str:
    disposition = response.headers.get("Content-Disposition")
    if disposition:
        message = Message()
        message["Content-Disposition"] = disposition
        name = message.get_filename()
        if name:
            return Path(name).name
    return Path(urllib.parse.unquote(urllib.parse.urlparse(response.geturl()).path)).name or "download"


# --- local --------------------------------------------------------------------------------------


def glob_to_regex(pattern: str) -> re.Pattern:
    """doublestar-style matching: ``**`` spans directories, ``*`` and ``?`` stay within one."""
    out, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("/**", i) and i + 3 == len(pattern):
            out.append("(?:/.*)?")
            i += 3
        elif pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif char == "*":
            out.append("[^/]*")
            i += 1
        elif char == "?":
            out.append("[^/]")
            i += 1
        elif char == "{":
            end = pattern.find("}", i)
            if end < 0:
                out.append(re.escape(char))
                i += 1
                continue
            options = pattern[i + 1 : end].split(",")
            out.append("(?:" + "|".join(re.escape(option) for option in options) + ")")
            i = end + 1
        else:
            out.append(re.escape(char))
            i += 1
    return re.compile("".join(out) + r"\Z")


def _allowed(path: str, read_write: bool, allow_list: list[str]) -> None:
    wrong_permission = False
    for entry in allow_list:
        glob, _, mode = entry.rpartition(":")
        if mode not in ("ro", "rw") or not glob:
            glob, mode = entry, "ro"
        if glob_to_regex(glob).match(path):
            if read_write and mode != "rw":
                wrong_permission = True
                continue
            return
    if wrong_permission:
        raise ComputeError(f"volume {path} is not granted write access")
    raise ComputeError(f"volume {path} is not allowlisted")


def _local(params: Any, target: str, allow_list: list[str]) -> Mount:
    path = text(params, "SourcePath")
    read_write = flag(params, "ReadWrite")
    create_as = text(params, "CreateAs") or "noCreate"
    _allowed(path, read_write, allow_list)
    host = Path(path)
    if not host.exists():
        if not read_write:
            raise ComputeError(f"volume {path} does not exist and read-write access is not allowed")
        if create_as.lower() == "nocreate":
            raise ComputeError(f"volume does not exist at {path} and creation is not allowed")
        if create_as.lower() == "dir":
            host.mkdir(parents=True, exist_ok=True)
        elif create_as.lower() == "file":
            if path.endswith("/"):
                raise ComputeError(f"SourcePath {path} is a directory but CreateAs is set to file")
            host.parent.mkdir(parents=True, exist_ok=True)
            host.touch()
        else:
            raise ComputeError(f"unknown CreateAs value {create_as}")
    return Mount(host, target, read_only=not read_write)


# --- inline -------------------------------------------------------------------------------------


def _inline(url: str, storage_dir: Path) -> Path:
    header, separator, payload = url.partition(",")
    if not header.startswith("data:") or not separator:
        raise ComputeError("invalid inline storage params: URL must be a data: URL")
    meta = header[len("data:") :].split(";")
    media_type = meta[0] or "text/plain"
    try:
        data = base64.b64decode(payload) if "base64" in meta[1:] else urllib.parse.unquote_to_bytes(payload)
    except ValueError as exc:
        raise ComputeError(f"invalid data URL: {exc}") from exc
    work = Path(tempfile.mkdtemp(prefix="inline-storage", dir=storage_dir))
    if media_type in ("application/gzip", "application/x-gzip"):
        archive = work.with_suffix(".tar.gz")
        archive.write_bytes(data)
        with tarfile.open(archive) as tar:
            tar.extractall(work, filter="data")
        archive.unlink()
        return work
    file_path = work / "file"
    file_path.write_bytes(data)
    return file_path
