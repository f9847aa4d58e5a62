"""Start time and memory of the devstack's S3 server (SeaweedFS ``weed mini``).

Starts it ``--runs`` times in fresh data directories; a start ends when a signed ListBuckets
succeeds. Memory is the server's RSS after ``--objects`` PUTs of 64 KiB. Run::

    .venv/bin/python benchmarks/s3_server_start.py [--runs 5] [--objects 200]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--objects", type=int, default=200)
    args = parser.parse_args()

    from airflow_provider_bacalhau.devstack import procs, s3server

    starts, rss_mib = [], []
    for _ in range(args.runs):
        home = Path(tempfile.mkdtemp(prefix="bacalhau-s3-start-"))
        try:
            began = time.monotonic()
            server = s3server.SeaweedServer(home, log_path=home / "weed.log").start()
            starts.append(time.monotonic() - began)
            try:
                client = procs.s3_client(server.endpoint)
                client.create_bucket(Bucket="bench")
                for index in range(args.objects):
                    client.put_object(
                        Bucket="bench", Key=f"k{index}", Body=b"x" * 65536, ChecksumAlgorithm="SHA256"
                    )
                rss = subprocess.run(
                    ["ps", "-o", "rss=", "-p", str(server.proc.pid)], capture_output=True, text=True
                )
                rss_mib.append(int(rss.stdout) / 1024)
            finally:
                server.stop()
        finally:
            shutil.rmtree(home, ignore_errors=True)
    print(f"start: median {statistics.median(starts):.2f} s, runs " + " ".join(f"{t:.2f}" for t in starts))
    print(
        f"RSS after {args.objects} x 64 KiB: median {statistics.median(rss_mib):.0f} MiB, runs "
        + " ".join(f"{m:.0f}" for m in rss_mib)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
