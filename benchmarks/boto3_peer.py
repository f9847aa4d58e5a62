"""Plain boto3, the staging benchmark's third peer: a tree with 16 threads (one PutObject per
file) or one file through boto3's transfer manager (16 threads, 16 MiB parts), SHA-256 stored.

Run by benchmarks/staging.py with benchmarks/.venv's Python; prints its own seconds (after the
imports, client creation included: the same footing as the hook's figure) as JSON.
"""

from __future__ import annotations

import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

MiB = 1024 * 1024


def main() -> int:
    endpoint, source, bucket, prefix = sys.argv[1:5]
    started = time.perf_counter()
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        config=Config(max_pool_connections=20, s3={"addressing_style": "path"}),
    )
    root = Path(source)
    if root.is_file():
        client.upload_file(
            str(root),
            bucket,
            f"{prefix}{root.name}",
            ExtraArgs={"ChecksumAlgorithm": "SHA256"},
            Config=TransferConfig(
                multipart_threshold=64 * MiB, multipart_chunksize=16 * MiB, max_concurrency=16
            ),
        )
        count = 1
    else:
        files = [p for p in sorted(root.rglob("*")) if p.is_file()]

        def put(path: Path) -> None:
            client.put_object(
                Bucket=bucket,
                Key=f"{prefix}{path.relative_to(root).as_posix()}",
                Body=path.read_bytes(),
                ChecksumAlgorithm="SHA256",
            )

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(put, files))
        count = len(files)
    print(json.dumps({"seconds": time.perf_counter() - started, "uploaded": count}))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("AWS_REGION", "us-east-1")
    sys.exit(main())
