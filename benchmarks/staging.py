"""Staging: the provider's ``S3DataPlane.stage`` against s5cmd, ``aws s3 sync`` and plain boto3,
side by side in one run on the devstack's S3 server (SeaweedFS), median of ``--runs``.

Workloads: (a) 2,000 x 64 KiB files in 20 directories; (b) one 512 MiB file; (c) re-staging (a)
with nothing changed; (d) re-staging (a) with 1% of the files (20) rewritten. Every tool writes
to its own prefix; the order of the tools rotates from run to run. The peers run from their own
environment (``bash benchmarks/make_venv.sh`` makes benchmarks/.venv); the hook runs in this
process, a fresh hook and data plane per figure (connection look-up and clients included; the
imports are paid once before the first figure, as in a worker that has staged before). The
ratio is the best peer's median over the hook's: above 1.0 the hook is faster. Run::

    bash benchmarks/make_venv.sh
    .venv/bin/python benchmarks/staging.py [--runs 3] [--workers 16 [32 ...]]

Several ``--workers`` values run the hook once per value (files in flight), side by side in the
same run, each with its own ratio.

Checked on the way: every object the hook stored has a SHA-256, (c) sends no PUT, (d) uploads
exactly the 20 changed files (for every tool).

Next to each wall time it prints the client's CPU (the hook: this process; a peer: its process),
the S3 server's CPU over the same interval (from /proc) and the machine's 1-minute load: client
and server share the cores, so on (a) and (b) the server's CPU is what bounds the wall time, and
other work on the machine moves every figure.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MiB = 1024 * 1024
HERE = Path(__file__).resolve().parent
PEERS = HERE / ".venv" / "bin"
FILES, DIRS, CHANGED = 2000, 20, 20
WORKLOADS = {
    "a": "2,000 x 64 KiB files",
    "b": "one 512 MiB file",
    "c": "re-stage of (a), nothing changed",
    "d": "re-stage of (a), 1% changed",
}


def make_small_tree(root: Path, size: int = 64 * 1024) -> None:
    for index in range(FILES):
        folder = root / f"dir{index % DIRS:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"file{index:04d}.bin").write_bytes(os.urandom(size))


def make_big_file(path: Path, size: int = 512 * MiB) -> None:
    with open(path, "wb") as out:
        for _ in range(size // (8 * MiB)):
            out.write(os.urandom(8 * MiB))


def change_some(root: Path, run: int) -> None:
    """Rewrite 1% of the files with new bytes of the same size (another 1% each run)."""
    for index in range(run, FILES, FILES // CHANGED):
        path = root / f"dir{index % DIRS:02d}" / f"file{index:04d}.bin"
        path.write_bytes(os.urandom(path.stat().st_size))


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far (fields 14 and 15 of /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Peers:
    """The command-line peers, timed as processes (that is how they are used)."""

    def __init__(self, endpoint: str, env: dict[str, str]) -> None:
        self.endpoint, self.env = endpoint, env

    def _run(self, argv: list[str]) -> tuple[float, str]:
        started = time.perf_counter()
        done = subprocess.run(argv, env=self.env, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - started
        if done.returncode:
            raise RuntimeError(f"{argv[0]} failed ({done.returncode}): {done.stderr[-2000:]}")
        return seconds, done.stdout

    def s5cmd(self, workload: str, source: Path, target: str) -> tuple[float, int]:
        verb = "cp" if workload in "ab" else "sync"
        what = str(source) if source.is_file() else f"{source}/*"
        seconds, out = self._run([str(PEERS / "s5cmd"), "--endpoint-url", self.endpoint, verb, what, target])
        return seconds, sum(1 for line in out.splitlines() if line.startswith(("cp ", "upload ")))

    def aws(self, workload: str, source: Path, target: str) -> tuple[float, int]:
        verb = (
            ["cp", str(source), target + source.name] if source.is_file() else ["sync", str(source), target]
        )
        seconds, out = self._run(
            [
                str(PEERS / "aws"),
                "--endpoint-url",
                self.endpoint,
                "s3",
                *verb,
                "--no-progress",
                "--checksum-algorithm",
                "SHA256",
            ]
        )
        return seconds, sum(1 for line in out.splitlines() if line.startswith("upload:"))

    def boto3(self, workload: str, source: Path, target: str) -> tuple[float, int]:
        bucket, _, prefix = target.removeprefix("s3://").partition("/")
        _, out = self._run(
            [str(PEERS / "python"), str(HERE / "boto3_peer.py"), self.endpoint, str(source), bucket, prefix]
        )
        answer = json.loads(out)
        return answer["seconds"], answer["uploaded"]


class Hook:
    """The provider's staging, in this process, PUTs counted where they leave (obstore: the
    uploads and the manifest)."""

    def __init__(self) -> None:
        import obstore

        self.puts = 0
        real_put = obstore.put

        def counted(*args, **kwargs):
            self.puts += 1
            return real_put(*args, **kwargs)

        obstore.put = counted

    def stage(self, workload: str, source: Path, target: str, workers: int = 16) -> tuple[float, int]:
        from airflow_provider_bacalhau.dataplane.plane import S3DataPlane
        from airflow_provider_bacalhau.hooks.s3 import BacalhauS3Hook

        bucket, _, prefix = target.removeprefix("s3://").partition("/")
        before = self.puts
        started = time.perf_counter()
        staged = S3DataPlane(BacalhauS3Hook(max_workers=workers)).stage(str(source), bucket, prefix)
        seconds = time.perf_counter() - started
        if workload == "c" and self.puts != before:
            raise AssertionError(f"(c) sent {self.puts - before} PUT(s)")
        return seconds, staged.uploaded


def check_checksums(client, bucket: str, prefix: str) -> int:
    keys = [
        o["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for o in page.get("Contents", [])
    ]
    missing = [
        k
        for k in keys
        if not client.head_object(Bucket=bucket, Key=k, ChecksumMode="ENABLED").get("ChecksumSHA256")
    ]
    if missing:
        raise AssertionError(f"{len(missing)} object(s) stored without a SHA-256, e.g. {missing[:3]}")
    return len(keys)


def median_of(costs: dict, workload: str, name: str, column: int) -> float:
    return round(statistics.median(c[column] for c in costs[(workload, name)]), 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[16], help="the hook's files in flight")
    parser.add_argument(
        "--workloads", default="abcd", help="a subset such as 'a' or 'acd' ((c) and (d) re-stage (a))"
    )
    args = parser.parse_args()
    if set(args.workloads) - set(WORKLOADS) or (
        set(args.workloads) & set("cd") and "a" not in args.workloads
    ):
        parser.error("--workloads: letters of abcd, with a whenever c or d is asked for")
    if not (PEERS / "s5cmd").exists():
        sys.exit("the peers are missing: bash benchmarks/make_venv.sh")

    work = Path(tempfile.mkdtemp(prefix="bacalhau-staging-bench-"))
    os.environ.setdefault("AIRFLOW_HOME", str(work / "airflow"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    from airflow_provider_bacalhau.devstack import procs, s3server

    server = s3server.SeaweedServer(work / "s3", log_path=work / "weed.log", die_with_parent=True).start()
    try:
        os.environ["AIRFLOW_CONN_AWS_DEFAULT"] = procs.aws_conn_json(server.endpoint)
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": procs.AWS_ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": procs.AWS_SECRET_ACCESS_KEY,
            "AWS_REGION": procs.DEFAULT_REGION,
            "AWS_DEFAULT_REGION": procs.DEFAULT_REGION,
        }
        peers, hook = Peers(server.endpoint, env), Hook()
        tools = {
            "s5cmd": peers.s5cmd,
            "aws s3 sync": peers.aws,
            "boto3 16 threads": peers.boto3,
        }
        hooks = {  # name -> its prefix
            ("BacalhauS3Hook.stage" if len(args.workers) == 1 else f"BacalhauS3Hook.stage w{n}"): (
                "bacalhaus3hook" if len(args.workers) == 1 else f"bacalhaus3hook-w{n}"
            )
            for n in args.workers
        }
        for n, name in zip(args.workers, hooks, strict=True):
            tools[name] = functools.partial(hook.stage, workers=n)
        small, big = work / "small", work / "big.bin"
        make_small_tree(small)
        # Imports (boto3, obstore, the amazon provider) once, outside the figures: else whichever
        # hook variant runs first in run 1 pays them. Each figure still makes its own hook.
        procs.s3_client(server.endpoint).create_bucket(Bucket="bench-warm-up")
        hook.stage("a", small / "dir00", "s3://bench-warm-up/w/")
        if "b" in args.workloads:
            make_big_file(big)
        times: dict[tuple[str, str], list[float]] = {}
        costs: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
        for run in range(args.runs):
            bucket = f"bench-{run + 1}"  # every run starts empty (a bucket of its own)
            procs.s3_client(server.endpoint).create_bucket(Bucket=bucket)
            order = list(tools)[run % len(tools) :] + list(tools)[: run % len(tools)]
            for workload in sorted(args.workloads):
                if workload == "d":
                    change_some(small, run)
                source = big if workload == "b" else small
                expected = {"a": FILES, "b": 1, "c": 0, "d": CHANGED}[workload]
                for name in order:
                    if name.startswith("boto3") and workload in "cd":
                        continue  # plain boto3 has no sync
                    slug = hooks.get(name) or name.split()[0].split(".")[0].lower()
                    target = f"s3://{bucket}/{slug}/" + ("" if workload == "b" else "small/")
                    cpu = (time.process_time(), children_cpu(), process_cpu(server.proc.pid))
                    seconds, uploaded = tools[name](workload, source, target)
                    client_s = time.process_time() - cpu[0] + children_cpu() - cpu[1]
                    server_s = process_cpu(server.proc.pid) - cpu[2]
                    load = os.getloadavg()[0]
                    if uploaded != expected:
                        raise AssertionError(f"{name} ({workload}) uploaded {uploaded}, expected {expected}")
                    times.setdefault((workload, name), []).append(seconds)
                    costs.setdefault((workload, name), []).append((client_s, server_s, load))
                    print(
                        f"run {run + 1} ({workload}) {name}: {seconds:.2f} s, client CPU {client_s:.2f} s, "
                        f"server CPU {server_s:.2f} s, load {load:.1f}",
                        file=sys.stderr,
                        flush=True,
                    )
        stored = sum(
            check_checksums(procs.s3_client(server.endpoint), bucket, f"{s}/") for s in hooks.values()
        )
        print(f"\nSHA-256 stored for all {stored} objects the hook staged; (c) sent no PUT.\n")
        picked = {w: label for w, label in WORKLOADS.items() if w in args.workloads}
        print(
            "| workload | s5cmd | aws s3 sync | boto3 16 threads | best peer | "
            + " | ".join(f"{h} | ratio" for h in hooks)
            + " |"
        )
        print("|---|---|---|---|---|" + "---|---|" * len(hooks))
        summary = {}
        for workload, label in picked.items():
            medians = {
                name: statistics.median(times[(workload, name)])
                for name in tools
                if (workload, name) in times
            }
            hook_s = {h: medians.pop(h) for h in hooks}
            best = min(medians, key=medians.get)
            cells = [f"{medians[n]:.2f} s" if n in medians else "-" for n in list(tools)[:3]]
            ratios = {h: medians[best] / t for h, t in hook_s.items()}
            hook_cells = " | ".join(f"{hook_s[h]:.2f} s | {ratios[h]:.2f}x" for h in hooks)
            print(f"| ({workload}) {label} | {' | '.join(cells)} | {best} | {hook_cells} |")
            summary[workload] = {
                "best_peer": best,
                "ratio": round(ratios[next(iter(hooks))], 2) if len(hooks) == 1 else None,
                "ratios": {h: round(r, 2) for h, r in ratios.items()},
                "runs_s": {
                    n: [round(t, 3) for t in times[(workload, n)]] for n in tools if (workload, n) in times
                },
                "client_cpu_s": {
                    n: median_of(costs, workload, n, 0) for n in tools if (workload, n) in costs
                },
                "server_cpu_s": {
                    n: median_of(costs, workload, n, 1) for n in tools if (workload, n) in costs
                },
            }
        print("\nmedian CPU seconds, client / S3 server (1-minute load average while each ran):")
        for workload in picked:
            cells = [
                f"{n} {median_of(costs, workload, n, 0):.2f} / {median_of(costs, workload, n, 1):.2f} "
                f"(load {median_of(costs, workload, n, 2):.1f})"
                for n in tools
                if (workload, n) in costs
            ]
            print(f"({workload}) " + "; ".join(cells))
        print(json.dumps({"workers": args.workers, "runs": args.runs, "results": summary}))
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
