"""Staging throughput of the data plane (S3DataPlane over BacalhauS3Hook) against the
devstack's S3 server (SeaweedFS).

Workloads (median of 3 runs each): (a) 2,000 x 64 KiB files in 20 directories, (b) one 512 MiB
file, (c) re-staging (a) with nothing changed. Run::

    .venv/bin/python benchmarks/staging.py [--runs 3] [--workers 16]

Compare with the table in the shared airflow-notes (s5cmd, aws s3 sync, plain boto3).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

MiB = 1024 * 1024


def make_small_tree(root: Path, files: int = 2000, dirs: int = 20, size: int = 64 * 1024) -> None:
    for index in range(files):
        folder = root / f"dir{index % dirs:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"file{index:04d}.bin").write_bytes(os.urandom(size))


def make_big_file(path: Path, size: int = 512 * MiB) -> None:
    with open(path, "wb") as out:
        for _ in range(size // (8 * MiB)):
            out.write(os.urandom(8 * MiB))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=16)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bacalhau-staging-bench-"))
    os.environ.setdefault("AIRFLOW_HOME", str(work / "airflow"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

    from airflow_provider_bacalhau.devstack import procs, s3server

    server = s3server.SeaweedServer(work / "s3", log_path=work / "weed.log").start()
    try:
        os.environ["AIRFLOW_CONN_AWS_DEFAULT"] = procs.aws_conn_json(server.endpoint)
        from airflow_provider_bacalhau.dataplane.plane import S3DataPlane
        from airflow_provider_bacalhau.hooks.s3 import BacalhauS3Hook

        small, big = work / "small", work / "big.bin"
        make_small_tree(small)
        make_big_file(big)
        figures: dict[str, list[float]] = {"small": [], "big": [], "nochange": []}
        for run in range(args.runs):
            s3server.delete_all_buckets(server.endpoint)  # every run starts empty
            client = procs.s3_client(server.endpoint)
            client.create_bucket(Bucket="bench")
            hook = BacalhauS3Hook(max_workers=args.workers)
            hook.client  # noqa: B018 - build the client outside the timings
            plane = S3DataPlane(hook)
            for name, paths, prefix in (("small", str(small), "small"), ("big", str(big), "big"),
                                        ("nochange", str(small), "small")):
                started = time.perf_counter()
                staged = plane.stage(paths, "bench", prefix)
                figures[name].append(time.perf_counter() - started)
                expected_uploads = 0 if name == "nochange" else len(staged.keys)
                assert staged.uploaded == expected_uploads, (name, staged)
            print(f"run {run + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in figures.items()),
                  file=sys.stderr)
        small_mb = 2000 * 64 * 1024 / 1e6
        rows = {
            "2000 x 64 KiB in 20 dirs": (figures["small"], 2000, small_mb),
            "one 512 MiB file": (figures["big"], 1, 512 * MiB / 1e6),
            "no-change re-stage of (a)": (figures["nochange"], 2000, 0.0),
        }
        print(f"{'workload':28} {'median s':>9} {'objects/s':>10} {'MB/s':>8}  runs")
        summary = {}
        for label, (times, objects, megabytes) in rows.items():
            median = statistics.median(times)
            rate = f"{megabytes / median:8.1f}" if megabytes else f"{'-':>8}"
            print(f"{label:28} {median:9.2f} {objects / median:10.0f} {rate}  "
                  + " ".join(f"{t:.2f}" for t in times))
            summary[label] = {"median_s": round(median, 3), "runs_s": [round(t, 3) for t in times]}
        print(json.dumps({"workers": args.workers, "results": summary}))
    finally:
        server.stop()
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
