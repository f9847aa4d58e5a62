"""``up`` / ``down`` / ``env`` of the whole devstack: Docker Engine, SeaweedFS S3 server, API server.

State lives in ``$BACALHAU_DEVSTACK_HOME`` (default ``~/.cache/bacalhau-devstack``):
``stack.json`` (ports, pids), ``data/`` (job store, node ID, execution files), ``s3/`` (the S3
server's objects; ``down`` removes it unless asked to keep it), ``logs/``.
"""

from __future__ import annotations

import json
import logging
import shlex
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from airflow_provider_bacalhau.devstack import procs, s3server

log = logging.getLogger(__name__)

MANAGED_BUCKET = "bacalhau-managed"
RESULTS_BUCKET = "bacalhau-results"
DEFAULT_API_PORT = 1234
DEFAULT_S3_PORT = 9000
S3_DATA = "s3"


@dataclass
class StackState:
    home: str
    api_port: int
    s3_endpoint: str
    server_pid: int
    s3_pid: int = 0  # 0: an S3 server we did not start
    docker_host: str = ""
    region: str = procs.DEFAULT_REGION
    engine_home: str = ""  # set when `up` started dockerd there: `down` stops it

    @property
    def api_url(self) -> str:
        return f"http://{procs.LOCALHOST}:{self.api_port}"


def default_home() -> Path:
    from airflow_provider_bacalhau.devstack.engine import default_home as engine_home

    return engine_home()


def _state_file(home: Path) -> Path:
    return Path(home) / "stack.json"


def load_state(home: Path) -> StackState | None:
    path = _state_file(home)
    if not path.exists():
        return None
    return StackState(**json.loads(path.read_text()))


def is_running(state: StackState) -> bool:
    if not procs.pid_alive(state.server_pid):
        return False
    try:
        procs.wait_http_ok(f"{state.api_url}/api/v1/agent/alive", timeout=2)
    except (TimeoutError, RuntimeError):
        return False
    return True


def _pick_port(preferred: int | None, default: int) -> int:
    if preferred:
        return preferred
    if preferred is None and procs.port_is_free(default):
        return default
    return procs.free_port()


def _engine_marker(engine_home: Path | None) -> Path:
    from airflow_provider_bacalhau.devstack import engine

    return engine.started_marker(engine_home)


def _engine(engine_home: Path | None) -> tuple[str, bool]:
    """(DOCKER_HOST of a ready engine with the busybox image or "", whether this call started dockerd)."""
    from airflow_provider_bacalhau.devstack import engine

    had_marker = _engine_marker(engine_home).exists()
    try:
        docker_host = engine.ensure_engine(engine_home)
        engine.ensure_busybox_image(docker_host)
    except Exception as exc:  # the API still works; docker jobs then fail "does not support docker"
        log.warning("no Docker Engine for the devstack (%s); docker jobs will not run", exc)
        return "", False
    return docker_host, not had_marker and _engine_marker(engine_home).exists()


def create_buckets(endpoint: str, region: str = procs.DEFAULT_REGION) -> None:
    client = procs.s3_client(endpoint, region)
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    for bucket in (MANAGED_BUCKET, RESULTS_BUCKET):
        if bucket not in existing:
            client.create_bucket(Bucket=bucket)


def up(
    home: Path | None = None,
    *,
    api_port: int | None = None,
    s3_port: int | None = None,
    s3_endpoint: str | None = None,
    engine_home: Path | None = None,
    with_engine: bool = True,
    concurrency: int = 2,
    faults: str | None = None,
    auth: str | None = None,
    extra_args: list[str] | None = None,
    die_with_parent: bool = False,
) -> StackState:
    """Start everything (idempotent) and return the state.

    :param home: stack home (state file, data, logs); :func:`default_home` when None.
    :param api_port: API port; None = 1234 if free else a free one; 0 = a free one.
    :param s3_port: the S3 server's port, same rules (default 9000).
    :param s3_endpoint: use this S3 server instead of starting SeaweedFS.
    :param engine_home: where ``engine.ensure_engine`` keeps dockerd (shared, images persist); the
        engine's default (``~/.cache/bacalhau-devstack``) when None.
    :param with_engine: False skips Docker (API-only devstack).
    :param concurrency: executions run at once.
    :param faults: fault configuration JSON for the server.
    :param auth: auth configuration JSON for the server.
    :param die_with_parent: servers stop when the calling process dies (test fixtures).
    """
    home = Path(home or default_home())
    home.mkdir(parents=True, exist_ok=True)
    current = load_state(home)
    if current is not None and is_running(current):
        return current
    if current is not None:
        down(home, stop_engine=False, keep_data=True)
    docker_host, started_engine = _engine(engine_home) if with_engine else ("", False)
    s3_pid = 0
    if s3_endpoint is None:
        s3 = s3server.SeaweedServer(
            home / S3_DATA, _pick_port(s3_port, DEFAULT_S3_PORT), home / "logs" / "s3.log", die_with_parent
        ).start()
        s3_endpoint, s3_pid = s3.endpoint, s3.proc.pid
    try:
        create_buckets(s3_endpoint)
        port = _pick_port(api_port, DEFAULT_API_PORT)
        argv = [
            sys.executable,
            "-m",
            "airflow_provider_bacalhau.devstack",
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(home / "data"),
            "--s3-endpoint",
            s3_endpoint,
            "--concurrency",
            str(concurrency),
            "--docker-host",
            docker_host,
            *(extra_args or []),
        ]
        if faults:
            argv += ["--faults", faults]
        if auth:
            argv += ["--auth", auth]
        server = procs.spawn(argv, home / "logs" / "server.log", die_with_parent=die_with_parent)
        state = StackState(
            str(home),
            port,
            s3_endpoint,
            server.pid,
            s3_pid,
            docker_host,
            engine_home=str(_engine_marker(engine_home).parent.parent) if started_engine else "",
        )
        _state_file(home).write_text(json.dumps(asdict(state), indent=2))
        procs.wait_http_ok(f"{state.api_url}/api/v1/agent/alive", timeout=60, proc=server)
    except BaseException:
        down(home, stop_engine=False, keep_data=True)
        if s3_pid:
            procs.stop_pid(s3_pid)
        raise
    log.info("devstack up: API %s, S3 %s, docker %s", state.api_url, s3_endpoint, docker_host or "none")
    return state


def down(home: Path | None = None, *, stop_engine: bool = True, keep_data: bool = False) -> bool:
    """Stop the server, the S3 server and (if ``up`` started it) dockerd. True if anything ran.

    The S3 server's objects are removed with it unless ``keep_data``; the job store stays.
    """
    home = Path(home or default_home())
    state = load_state(home)
    if state is None:
        return False
    procs.stop_pid(state.server_pid)
    if state.s3_pid:
        procs.stop_pid(state.s3_pid)
        if not keep_data:
            shutil.rmtree(home / S3_DATA, ignore_errors=True)
    _state_file(home).unlink(missing_ok=True)
    if stop_engine and state.engine_home:
        from airflow_provider_bacalhau.devstack import engine

        engine.stop_engine(Path(state.engine_home))
    return True


def env_vars(state: StackState) -> dict[str, str]:
    api_url = state.api_url
    return {
        "BACALHAU_API_HOST": procs.LOCALHOST,
        "BACALHAU_API_PORT": str(state.api_port),
        "AIRFLOW_CONN_BACALHAU_DEFAULT": json.dumps(
            {
                "conn_type": "bacalhau",
                "host": procs.LOCALHOST,
                "port": state.api_port,
                "extra": {"webui_url": api_url},
            }
        ),
        "AIRFLOW_CONN_AWS_DEFAULT": procs.aws_conn_json(state.s3_endpoint, state.region),
        "AWS_ENDPOINT_URL_S3": state.s3_endpoint,
        "AWS_ACCESS_KEY_ID": procs.AWS_ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": procs.AWS_SECRET_ACCESS_KEY,
        "AWS_DEFAULT_REGION": state.region,
        "BACALHAU_DEVSTACK_HOME": state.home,
    }


def env_lines(state: StackState) -> str:
    return "\n".join(f"export {k}={shlex.quote(v)}" for k, v in env_vars(state).items())


def admin_request(state: StackState, method: str, path: str, body: Any = None) -> Any:
    import httpx

    resp = httpx.request(method, f"{state.api_url}{path}", json=body, timeout=30)
    resp.raise_for_status()
    return resp.json() if resp.content else None


def restart(state: StackState, timeout: float = 60.0) -> None:
    """Restart the API server worker (jobs kept); returns once the new worker answers."""
    import time

    old_pid = admin_request(state, "GET", "/devstack/v1/info")["PID"]
    admin_request(state, "POST", "/devstack/v1/restart")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if admin_request(state, "GET", "/devstack/v1/info")["PID"] != old_pid:
                return
        except Exception:  # noqa: BLE001 - the old worker is on its way out
            pass
        time.sleep(0.1)
    raise TimeoutError(f"the devstack server did not restart within {timeout}s")
