"""Background processes of the devstack: free ports, start/stop by process group, readiness waits,
and the moto S3 server (a subprocess, so a restart of the devstack API keeps the S3 state)."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

log = logging.getLogger(__name__)

LOCALHOST = "127.0.0.1"
DEFAULT_REGION = "us-east-1"
# moto checks no credentials; fixed, obviously fake values keep every client configuration alike.
AWS_ACCESS_KEY_ID = "devstack-access-key"
AWS_SECRET_ACCESS_KEY = "devstack-secret-key"
# Exit code of a server worker asking its supervisor (`serve`) for a restart.
RESTART_EXIT_CODE = 75


def free_port(host: str = LOCALHOST) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_is_free(port: int, host: str = LOCALHOST) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def set_parent_death_signal() -> None:
    """In the child before exec: get SIGTERM when the parent dies (Linux prctl PR_SET_PDEATHSIG)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def spawn(argv: list[str], log_path: Path, env: dict[str, str] | None = None, die_with_parent: bool = False) -> subprocess.Popen:
    """Start ``argv`` in its own session (so stopping it stops its children too), output to a file.

    ``die_with_parent`` (for test fixtures) stops the process when the one that spawned it dies,
    so a killed pytest run leaves no server behind.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as out:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
            preexec_fn=set_parent_death_signal if die_with_parent else None,
        )


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); reap it if it is ours.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def stop_pid(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM the process group led by ``pid``, then SIGKILL what is left after ``timeout``."""
    if not pid or not pid_alive(pid):
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        except PermissionError:
            os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                return
            time.sleep(0.05)
    log.warning("process %s did not stop", pid)


def wait_http_ok(url: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    """Poll ``url`` until it answers 2xx/3xx; fail early when ``proc`` has exited."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process for {url} exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status < 400:
                    return
        except urllib.error.HTTPError as exc:
            last = exc
        except OSError as exc:
            last = exc
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {timeout}s: {last}")


class MotoServer:
    """A moto S3 server subprocess on 127.0.0.1.

    :param port: port to listen on (0 picks a free one).
    :param log_path: file that receives the server's output.
    :param die_with_parent: stop the server when this process dies (test fixtures).
    """

    def __init__(self, port: int = 0, log_path: Path | None = None, die_with_parent: bool = False) -> None:
        self.port = port or free_port()
        self.log_path = log_path or Path(os.devnull)
        self.die_with_parent = die_with_parent
        self.proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{LOCALHOST}:{self.port}"

    def start(self, timeout: float = 30.0) -> MotoServer:
        argv = [sys.executable, "-m", "moto.server", "-H", LOCALHOST, "-p", str(self.port)]
        self.proc = spawn(argv, self.log_path, die_with_parent=self.die_with_parent)
        wait_http_ok(f"{self.endpoint}/moto-api/", timeout, self.proc)
        log.info("moto S3 server ready at %s (pid %s)", self.endpoint, self.proc.pid)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_pid(self.proc.pid)
            self.proc.wait(timeout=5)
            self.proc = None


def s3_client(endpoint: str, region: str = DEFAULT_REGION):
    """A boto3 S3 client for the devstack's S3 server (SigV4, path-style)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=AWS_ACCESS_KEY_ID,
        aws_secret_access_key=AWS_SECRET_ACCESS_KEY,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )


def reset_moto(endpoint: str) -> None:
    req = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST", data=b"")
    with urllib.request.urlopen(req, timeout=10):
        pass


def aws_conn_json(endpoint: str, region: str = DEFAULT_REGION) -> str:
    """JSON for AIRFLOW_CONN_AWS_DEFAULT pointing at the devstack's S3 server."""
    import json

    return json.dumps(
        {
            "conn_type": "aws",
            "login": AWS_ACCESS_KEY_ID,
            "password": AWS_SECRET_ACCESS_KEY,
            "extra": {
                "endpoint_url": endpoint,
                "region_name": region,
                "config_kwargs": {"signature_version": "s3v4"},
            },
        }
    )
