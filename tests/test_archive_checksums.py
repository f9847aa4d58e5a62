"""The provider's own composite-checksum logic (``_archive``), independent of any S3 server: the
AWS/SeaweedFS form ``<b64>-<N>`` and the suffix-less form some stores keep (moto did)."""

from __future__ import annotations

import base64
import hashlib

import pytest

from airflow_provider_bacalhau.dataplane.archive import is_composite, matches_stored_checksum

PART = 5 * 1024 * 1024


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def composite(data: bytes, part: int = PART) -> tuple[str, int]:
    digests = [hashlib.sha256(data[i : i + part]).digest() for i in range(0, len(data), part)]
    return b64(hashlib.sha256(b"".join(digests)).digest()), len(digests)


@pytest.fixture
def archive(tmp_path):
    data = bytes(range(256)) * (PART * 2 // 256 + 17)  # two full parts and a short third
    path = tmp_path / "e-1.tar.gz"
    path.write_bytes(data)
    return path, data


def test_aws_composite_with_suffix(archive):
    path, data = archive
    value, parts = composite(data)
    assert parts == 3 and is_composite(f"{value}-{parts}")
    assert matches_stored_checksum(path, f"{value}-3", part_size=PART) is True
    assert matches_stored_checksum(path, f"{value}-4", part_size=PART) is False  # part count differs
    assert matches_stored_checksum(path, f"{value}-3", part_size=8 * 1024 * 1024) is False
    assert matches_stored_checksum(path, f"{value}-3") is None  # part size unknown: cannot tell


def test_composite_without_suffix_is_told_by_the_etag(archive):
    path, data = archive
    value, _ = composite(data)
    assert matches_stored_checksum(path, value, etag='"abc-3"', part_size=PART) is True
    assert matches_stored_checksum(path, value, etag='"abc"') is False  # then it is a whole-object sum


def test_whole_object_checksum(archive):
    path, data = archive
    assert not is_composite(b64(hashlib.sha256(data).digest()))
    assert matches_stored_checksum(path, b64(hashlib.sha256(data).digest())) is True
    assert matches_stored_checksum(path, b64(hashlib.sha256(data + b"x").digest())) is False
