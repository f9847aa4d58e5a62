"""pytest plugin: a SeaweedFS S3 server (``s3_server``) and the whole devstack (``devstack``) per session.

Enable with ``pytest_plugins = ["airflow_provider_bacalhau.devstack.testing"]`` in the root
conftest. Both servers run on free ports under a temporary home and stop at the session's end.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_bacalhau.devstack import procs, s3server

#: A second S3 identity that may use only :data:`LIMITED_BUCKET`: for access-denied tests.
LIMITED_IDENTITY = s3server.Identity("devstack-limited-key", "devstack-limited-secret", ("devstack-limited",))
LIMITED_BUCKET = LIMITED_IDENTITY.buckets[0]
#: A full-access identity whose distinctive secret tests hunt for in logs, XCom and job specs.
SECRET_IDENTITY = s3server.Identity("devstack-airflow-key", "airflow-S3-secret-7Qx9zz-never-logged")


class S3Server:
    """Handle on a running SeaweedFS S3 server.

    :param server: the started :class:`s3server.SeaweedServer`.
    """

    region = procs.DEFAULT_REGION
    aws_access_key_id = procs.AWS_ACCESS_KEY_ID
    aws_secret_access_key = procs.AWS_SECRET_ACCESS_KEY
    limited = LIMITED_IDENTITY
    secret_identity = SECRET_IDENTITY

    def __init__(self, server: s3server.SeaweedServer) -> None:
        self._server = server
        self.endpoint = server.endpoint
        #: Where the server keeps its data and its log: searched for leaked secrets.
        self.data_dir = server.data_dir
        self.log_path = server.log_path
        self.keep_buckets: set[str] = set()

    def aws_conn_json(self, identity: s3server.Identity | None = None) -> str:
        """An Airflow AWS connection (JSON) for the devstack's identity, or for ``identity``."""
        if identity is None:
            return procs.aws_conn_json(self.endpoint, self.region)
        return procs.aws_conn_json(self.endpoint, self.region, identity.access_key, identity.secret_key)

    def client(self):
        return procs.s3_client(self.endpoint, self.region)

    def reset(self) -> None:
        """Delete every bucket and object; buckets the devstack needs come back empty."""
        s3server.delete_all_buckets(self.endpoint)
        client = self.client()
        for bucket in sorted(self.keep_buckets):
            client.create_bucket(Bucket=bucket)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("s3-server")
    server = s3server.SeaweedServer(
        home, log_path=home / "weed.log", die_with_parent=True, identities=(LIMITED_IDENTITY, SECRET_IDENTITY)
    ).start()
    try:
        yield S3Server(server)
    finally:
        server.stop()


class Devstack:
    """Handle on a running devstack (API server, compute, SeaweedFS S3) for tests.

    :param state: the stack state (see :mod:`airflow_provider_bacalhau.devstack.stack`).
    :param s3: the shared S3 server handle.
    """

    def __init__(self, state: Any, s3: S3Server) -> None:
        from airflow_provider_bacalhau.devstack import stack

        self._stack = stack
        self.state = state
        self.api_host = procs.LOCALHOST
        self.api_port = int(state.api_port)
        self.api_url = f"http://{self.api_host}:{self.api_port}"
        self.webui_url = self.api_url
        self.s3_endpoint = s3.endpoint
        self.region = s3.region
        self.aws_access_key_id = s3.aws_access_key_id
        self.aws_secret_access_key = s3.aws_secret_access_key
        self.managed_bucket = stack.MANAGED_BUCKET
        self.results_bucket = stack.RESULTS_BUCKET
        self.home = Path(state.home)
        self._s3 = s3

    def bacalhau_conn_json(self, **extra: Any) -> str:
        conn: dict[str, Any] = {"conn_type": "bacalhau", "host": self.api_host, "port": self.api_port}
        for key in ("login", "password", "schema"):
            if key in extra:
                conn[key] = extra.pop(key)
        conn["extra"] = {"webui_url": self.webui_url, **extra}
        return json.dumps(conn)

    def aws_conn_json(self, identity: s3server.Identity | None = None) -> str:
        return self._s3.aws_conn_json(identity)

    def env(self) -> dict[str, str]:
        return self._stack.env_vars(self.state)

    def s3_client(self):
        return self._s3.client()

    def _admin(self, method: str, path: str, body: Any = None) -> Any:
        import httpx

        resp = httpx.request(method, f"{self.api_url}{path}", json=body, timeout=30)
        resp.raise_for_status()
        return resp.json() if resp.content else None

    def set_faults(self, **faults: Any) -> dict:
        """Replace the fault configuration, e.g. ``set_faults(routes={...}, seed=1)``."""
        return self._admin("PUT", "/devstack/v1/faults", faults)

    def clear_faults(self) -> dict:
        return self._admin("DELETE", "/devstack/v1/faults")

    def jobs(self) -> list[dict]:
        """Every job in every namespace (faults bypassed: admin route)."""
        return self._admin("GET", "/devstack/v1/jobs")["Items"]

    def set_auth(self, users: list[dict]) -> dict:
        """Turn authentication on, e.g. ``set_auth([{"api_key": "k" * 20, "capabilities": ["*"]}])``."""
        return self._admin("PUT", "/devstack/v1/auth", {"users": users})

    def clear_auth(self) -> dict:
        return self._admin("DELETE", "/devstack/v1/auth")

    def restart(self, timeout: float = 60.0) -> None:
        """Restart the API server process (jobs kept; executions in flight become Failed)."""
        self._stack.restart(self.state, timeout)


@pytest.fixture(scope="session")
def devstack(s3_server: S3Server):
    from airflow_provider_bacalhau.devstack import stack

    home = Path(tempfile.mkdtemp(prefix="bacalhau-devstack-test-"))
    state = stack.up(home, api_port=0, s3_endpoint=s3_server.endpoint, die_with_parent=True)
    s3_server.keep_buckets.update((stack.MANAGED_BUCKET, stack.RESULTS_BUCKET))
    try:
        yield Devstack(state, s3_server)
    finally:
        # The Docker Engine is shared across sessions (images persist); `make test` starts it.
        stack.down(home, stop_engine=False)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def devstack_env(devstack: Devstack, monkeypatch: pytest.MonkeyPatch) -> Devstack:
    """Point Airflow connections and the Bacalhau env vars at the session devstack."""
    for name, value in devstack.env().items():
        monkeypatch.setenv(name, value)
    return devstack
