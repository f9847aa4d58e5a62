"""A Docker Engine for the devstack's compute node, and the local busybox image it runs.

No container registry is reachable from the machines this devstack targets, so images are built
locally (``docker import`` of a busybox-static rootfs) and public names are mapped onto them by
the compute node's alias table. The engine is found, or installed and started, like this:

1. ``DOCKER_HOST`` or ``/var/run/docker.sock`` answering ``/_ping``: use it as is.
2. Our own dockerd under ``<home>/docker`` already running: use it.
3. Otherwise (as root) install Debian's ``docker.io`` and ``busybox-static`` when missing and start
   ``dockerd`` with a private data root, ``--iptables=false --bridge=none``. A marker file records
   that we started it, so :func:`stop_engine` never stops an engine somebody else runs.

The home is shared across runs (``~/.cache/bacalhau-devstack``): images survive, and a second start
takes a second or two.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import http.client
import io
import logging
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

from airflow_provider_bacalhau.devstack.procs import pid_alive

log = logging.getLogger(__name__)

BUSYBOX_IMAGE = "bacalhau-devstack/busybox:latest"
SYSTEM_SOCKET = "/var/run/docker.sock"
_START_TIMEOUT = 60.0
# Unix socket paths must stay below 108 bytes; containerd puts sockets a few levels below exec-root.
_MAX_EXEC_ROOT = 50


def default_home() -> Path:
    """The engine home shared across runs (dockerd data and images persist there)."""
    return Path(os.environ.get("BACALHAU_DEVSTACK_HOME") or Path.home() / ".cache" / "bacalhau-devstack")


def _engine_dir(home: Path) -> Path:
    return Path(home) / "docker"


def started_marker(home: Path | None = None) -> Path:
    """Exists while a dockerd that :func:`ensure_engine` started under ``home`` runs."""
    return _engine_dir(Path(home) if home else default_home()) / "started-by-devstack"


def own_engine_running(home: Path | None = None) -> bool:
    """A dockerd that :func:`ensure_engine` started under ``home`` runs (a marker left by a
    killed one does not count)."""
    pid = _read_pid(started_marker(home))
    return bool(pid and pid_alive(pid) and _is_dockerd(pid))


def _socket_path(home: Path) -> Path:
    path = _engine_dir(home) / "docker.sock"
    if len(str(path)) < 100:
        return path
    return _short_dir(home) / "docker.sock"


def _exec_root(home: Path) -> Path:
    path = _engine_dir(home) / "exec"
    if len(str(path)) <= _MAX_EXEC_ROOT:
        return path
    return _short_dir(home) / "exec"


def _short_dir(home: Path) -> Path:
    digest = hashlib.sha256(str(Path(home).resolve()).encode()).hexdigest()[:10]
    return Path("/tmp") / f"bdev-{digest}"


def ping(docker_host: str, timeout: float = 2.0) -> bool:
    """True when the Docker Engine at ``docker_host`` (unix:// or tcp://) answers ``GET /_ping``."""
    try:
        if docker_host.startswith("unix://"):
            conn: http.client.HTTPConnection = _UnixHTTPConnection(docker_host[len("unix://") :], timeout)
        elif docker_host.startswith(("tcp://", "http://")):
            hostport = docker_host.split("://", 1)[1].rstrip("/")
            conn = http.client.HTTPConnection(hostport, timeout=timeout)
        else:
            return False
        try:
            conn.request("GET", "/_ping")
            return conn.getresponse().status == 200
        finally:
            conn.close()
    except OSError:
        return False


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


@contextlib.contextmanager
def _locked(home: Path) -> Iterator[None]:
    """Serialise engine start/stop between threads and processes sharing ``home``."""
    engine_dir = _engine_dir(home)
    engine_dir.mkdir(parents=True, exist_ok=True)
    with open(engine_dir / "engine.lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _install_packages() -> None:
    """Install Debian's docker.io and busybox-static (root only; no stdin in CI)."""
    missing = []
    if not shutil.which("dockerd"):
        missing.append("docker.io")
    if not _busybox_binary():
        missing.append("busybox-static")
    if not missing:
        return
    if os.geteuid() != 0:
        raise RuntimeError(
            f"no Docker Engine is reachable and {', '.join(missing)} is missing; "
            "install it or run the devstack engine setup as root"
        )
    log.info("installing %s with apt-get", " ".join(missing))
    _apt("update")
    _apt("install", "-y", *missing)


def _apt(*args: str) -> None:
    """Run apt-get with its output captured: callers' stdout (``up`` prints shell exports that
    users ``eval``) must stay clean. The output is shown only when apt-get fails."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    done = subprocess.run(
        ["apt-get", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    if done.returncode != 0:
        tail = "\n".join(done.stdout.splitlines()[-20:])
        raise RuntimeError(f"apt-get {' '.join(args)} failed (exit {done.returncode}):\n{tail}")


def _busybox_binary() -> str | None:
    for candidate in ("/bin/busybox", "/usr/bin/busybox"):
        if os.path.exists(candidate):
            return candidate
    return None


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def ensure_engine(home: Path | None = None) -> str:
    """Return a ``DOCKER_HOST`` URL of a Docker Engine that answers, starting our own if needed.

    :param home: engine home; ``~/.cache/bacalhau-devstack`` when None.
    """
    home = Path(home) if home else default_home()
    env_host = os.environ.get("DOCKER_HOST")
    if env_host and ping(env_host):
        return env_host
    if ping(f"unix://{SYSTEM_SOCKET}"):
        return f"unix://{SYSTEM_SOCKET}"
    sock = _socket_path(home)
    own_host = f"unix://{sock}"
    with _locked(home):
        if ping(own_host):
            return own_host
        _install_packages()
        _start_dockerd(home, sock)
    return own_host


def _start_dockerd(home: Path, sock: Path) -> None:
    engine_dir = _engine_dir(home)
    exec_root = _exec_root(home)
    pidfile = engine_dir / "dockerd.pid"
    sock.parent.mkdir(parents=True, exist_ok=True)
    exec_root.mkdir(parents=True, exist_ok=True)
    (engine_dir / "data").mkdir(parents=True, exist_ok=True)
    # A dockerd killed hard leaves its pidfile and socket behind; dockerd refuses to start then.
    stale = _read_pid(pidfile)
    if stale and pid_alive(stale):
        _terminate(stale)
    for leftover in (pidfile, sock):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()
    command = [
        shutil.which("dockerd") or "dockerd",
        "--data-root",
        str(engine_dir / "data"),
        "--exec-root",
        str(exec_root),
        "-H",
        f"unix://{sock}",
        "--pidfile",
        str(pidfile),
        "--iptables=false",
        "--bridge=none",
    ]
    log.info("starting dockerd: %s", " ".join(command))
    with open(engine_dir / "dockerd.log", "ab") as log_file:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file, start_new_session=True
        )
    started_marker(home).write_text(str(process.pid))
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if ping(f"unix://{sock}"):
            return
        if process.poll() is not None:
            break
        time.sleep(0.2)
    tail = (engine_dir / "dockerd.log").read_text(errors="replace")[-2000:]
    raise RuntimeError(f"dockerd did not become ready; last log lines:\n{tail}")


def _terminate(pid: int, timeout: float = 20.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and pid_alive(pid):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.1)
    if pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def stop_engine(home: Path | None = None) -> None:
    """Stop dockerd if (and only if) :func:`ensure_engine` started it under ``home``."""
    home = Path(home) if home else default_home()
    marker = started_marker(home)
    if not marker.exists():
        return
    with _locked(home):
        pid = _read_pid(marker)
        if pid and pid_alive(pid) and _is_dockerd(pid):
            log.info("stopping dockerd pid %s", pid)
            _terminate(pid)
        with contextlib.suppress(FileNotFoundError):
            marker.unlink()


def _is_dockerd(pid: int) -> bool:
    try:
        return "dockerd" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


def busybox_rootfs_tar() -> bytes:
    """A minimal rootfs (tar) around the static busybox binary: applet links, /tmp, /etc/passwd."""
    binary = _busybox_binary()
    if binary is None:
        _install_packages()
        binary = _busybox_binary()
    if binary is None:
        raise RuntimeError("busybox-static is not installed")
    applets = subprocess.run(
        [binary, "--list-full"], check=True, capture_output=True, text=True
    ).stdout.split()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for directory, mode in (
            ("bin", 0o755),
            ("sbin", 0o755),
            ("usr", 0o755),
            ("usr/bin", 0o755),
            ("usr/sbin", 0o755),
            ("etc", 0o755),
            ("root", 0o700),
            ("home", 0o755),
            ("tmp", 0o1777),
            ("var", 0o755),
            ("var/tmp", 0o1777),
            ("proc", 0o555),
            ("sys", 0o555),
            ("dev", 0o755),
        ):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, mode
            tar.addfile(info)
        with open(binary, "rb") as handle:
            data = handle.read()
        info = tarfile.TarInfo("bin/busybox")
        info.size, info.mode = len(data), 0o755
        tar.addfile(info, io.BytesIO(data))
        for applet in applets:
            applet = applet.lstrip("/")
            if applet == "bin/busybox" or "/" not in applet:
                continue
            link = tarfile.TarInfo(applet)
            link.type, link.linkname = tarfile.SYMTYPE, "/bin/busybox"
            tar.addfile(link)
        for name, content in (
            ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"),
            ("etc/group", "root:x:0:\nnogroup:x:65534:\n"),
        ):
            raw = content.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(raw), 0o644
            tar.addfile(info, io.BytesIO(raw))
    return buffer.getvalue()


def ensure_busybox_image(docker_host: str) -> str:
    """Build ``bacalhau-devstack/busybox:latest`` with ``docker import`` unless it exists."""
    import docker  # lazy: the SDK is only needed once an engine is in use

    client = docker.DockerClient(base_url=docker_host, version="auto", timeout=120)
    try:
        try:
            client.images.get(BUSYBOX_IMAGE)
            return BUSYBOX_IMAGE
        except docker.errors.ImageNotFound:
            pass
        repository, tag = BUSYBOX_IMAGE.rsplit(":", 1)
        log.info("building %s from the host's busybox-static", BUSYBOX_IMAGE)
        client.api.import_image_from_data(
            busybox_rootfs_tar(), repository=repository, tag=tag, changes=['CMD ["/bin/sh"]']
        )
        client.images.get(BUSYBOX_IMAGE)
        return BUSYBOX_IMAGE
    finally:
        client.close()
