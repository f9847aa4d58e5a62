"""Background processes of the devstack: free ports, start/stop by process group, readiness waits,
and the S3 client settings every devstack part shares."""

from __future__ import annotations

import logging
import os
import random
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

log = logging.getLogger(__name__)

LOCALHOST = "127.0.0.1"
DEFAULT_REGION = "us-east-1"
# The devstack's S3 identity (SeaweedFS enforces it): fixed, obviously fake values.
AWS_ACCESS_KEY_ID = "devstack-access-key"
AWS_SECRET_ACCESS_KEY = "devstack-secret-key"
# Exit code of a server worker asking its supervisor (`serve`) for a restart.
RESTART_EXIT_CODE = 75
PORT_FLOOR = 15000  # free_port() chooses in [PORT_FLOOR, the ephemeral range)
_PORT_CHOICE = random.SystemRandom()  # not the global generator, which a test may seed


def _ephemeral_floor() -> int:
    """The lowest port the kernel hands to outgoing connections (Linux: 32768 by default)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(host: str = LOCALHOST) -> int:
    """A port free now, chosen below the ephemeral range: a port the kernel assigned (bind to 0)
    can be taken by any process's next outgoing connection before the server that was given it
    binds it, and a server such as ``weed mini`` binding a dozen of them then exits at once."""
    floor = _ephemeral_floor()
    if floor > PORT_FLOOR + 1000:
        for _ in range(100):
            port = _PORT_CHOICE.randrange(PORT_FLOOR, floor)
            if port_is_free(port, host):
                return port
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


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


def spawn(
    argv: list[str], log_path: Path, env: dict[str, str] | None = None, die_with_parent: bool = False
) -> subprocess.Popen:
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


def aws_conn_json(
    endpoint: str,
    region: str = DEFAULT_REGION,
    access_key: str = AWS_ACCESS_KEY_ID,
    secret_key: str = AWS_SECRET_ACCESS_KEY,
) -> str:
    """JSON for AIRFLOW_CONN_AWS_DEFAULT pointing at the devstack's S3 server."""
    import json

    return json.dumps(
        {
            "conn_type": "aws",
            "login": access_key,
            "password": secret_key,
            "extra": {
                "endpoint_url": endpoint,
                "region_name": region,
                "config_kwargs": {"signature_version": "s3v4"},
            },
        }
    )
