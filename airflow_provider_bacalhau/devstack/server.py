"""The devstack's HTTP server: a FastAPI app speaking Bacalhau v1.9.3's REST API (a stand-in for
development and tests, not a Bacalhau replacement), plus admin routes under ``/devstack/v1``."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from airflow_provider_bacalhau.devstack import admin_api, jobs_api, local_results
from airflow_provider_bacalhau.devstack import auth as authz
from airflow_provider_bacalhau.devstack.compute_common import go_duration
from airflow_provider_bacalhau.devstack.faults import FaultMiddleware, Faults
from airflow_provider_bacalhau.devstack.gate import Gate, error_body
from airflow_provider_bacalhau.devstack.procs import RESTART_EXIT_CODE
from airflow_provider_bacalhau.devstack.scheduler import Scheduler
from airflow_provider_bacalhau.devstack.store import ApiError, Store

log = logging.getLogger(__name__)

GIT_VERSION = "v1.9.3-devstack"
STAND_IN_NOTE = (
    "airflow-provider-bacalhau devstack: a single-node development and test stand-in for "
    "Bacalhau v1.9.3, not a Bacalhau replacement"
)
#: How long an idle keep-alive connection stays open. v1.9.3's API server sets ReadTimeout 20 s and
#: no IdleTimeout (pkg/publicapi/config.go, server.go), and Go's http.Server then uses ReadTimeout
#: for idle connections. uvicorn's default of 5 s closed a poller's connection between two 5 s polls.
KEEP_ALIVE_SECONDS = 20


@dataclass
class ServerSettings:
    """Everything the devstack server needs; see
    ``python -m airflow_provider_bacalhau.devstack serve --help``.

    :param data_dir: where the job store, node ID and execution files live.
    :param public_url: the URL clients use to reach this server.
    :param local_publisher_address: ``Publishers.Types.Local.Address``: where local-publisher results
        are served, and the host of their URLs (env ``BACALHAU_PUBLISHERS_TYPES_LOCAL_ADDRESS``).
    :param local_publisher_port: ``Publishers.Types.Local.Port`` (env
        ``BACALHAU_PUBLISHERS_TYPES_LOCAL_PORT``); 0 = 6001 if free, else a free port.
    :param node_s3_endpoint: S3 as the compute node reaches it, the only address it reaches (its
        default for jobs without an Endpoint); "" means ``s3_endpoint`` and no such limit.
    :param node_aws_access_key_id: the compute node's own credentials (None: the server's; ""
        for a node without any, which then reports s3 as not installed).
    """

    data_dir: Path
    public_url: str = "http://127.0.0.1:1234"
    s3_endpoint: str = "http://127.0.0.1:5000"
    region: str = "us-east-1"
    aws_access_key_id: str = "devstack-access-key"
    aws_secret_access_key: str = "devstack-secret-key"
    managed_bucket: str = "bacalhau-managed"
    managed_key_prefix: str = ""
    managed_url_expiration: int = 3600
    docker_host: str | None = None
    concurrency: int = 2
    queue_backoff: float = 1.0
    allow_listed_local_paths: list[str] = field(default_factory=list)
    faults: dict | None = None
    auth: dict | None = None
    node_s3_endpoint: str = ""
    node_aws_access_key_id: str | None = None
    node_aws_secret_access_key: str | None = None
    local_publisher_address: str = field(default_factory=local_results.configured_address)
    local_publisher_port: int = field(default_factory=local_results.configured_port)


def node_id_for(data_dir: Path) -> str:
    path = data_dir / "node-id"
    if not path.exists():
        path.write_text(f"n-{uuid.uuid4()}")
    return path.read_text().strip()


def version_info() -> dict:
    return {
        "Major": "1",
        "Minor": "9",
        "GitVersion": GIT_VERSION,
        "GitCommit": "devstack",
        "BuildDate": "2026-01-01T00:00:00Z",
        "GOOS": "linux",
        "GOARCH": {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine()),
        "Devstack": STAND_IN_NOTE,
    }


class Devstack:
    """The running pieces behind the app: store, scheduler, faults, auth, settings."""

    def __init__(self, settings: ServerSettings, compute: Any = None) -> None:
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.node_id = node_id_for(settings.data_dir)
        self.faults = Faults.from_config(settings.faults)
        self.auth = authz.AuthConfig.from_config(settings.auth or {})
        self.store = Store(settings.data_dir)
        self.local_publisher_port = local_results.choose_port(
            settings.data_dir, settings.local_publisher_address, settings.local_publisher_port
        )
        self.local_results = local_results.LocalResultServer(
            self.local_publisher_dir, settings.local_publisher_address, self.local_publisher_port
        )
        self.compute = compute if compute is not None else self._real_compute()
        self.scheduler = Scheduler(
            self.store,
            self.compute,
            self.node_id,
            settings.concurrency,
            presign_managed_put=self.presign_managed_put,
            queue_backoff=settings.queue_backoff,
        )
        self._s3 = None

    def _real_compute(self) -> Any:
        from airflow_provider_bacalhau.devstack import compute

        s = self.settings
        return compute.ComputeNode(
            compute.ComputeSettings(
                data_dir=s.data_dir / "compute",
                node_id=self.node_id,
                docker_host=s.docker_host,
                image_aliases=dict(getattr(compute, "DEFAULT_IMAGE_ALIASES", {})),
                s3_default_endpoint=s.node_s3_endpoint or s.s3_endpoint,
                s3_only_default=bool(s.node_s3_endpoint),
                aws_access_key_id=s.aws_access_key_id
                if s.node_aws_access_key_id is None
                else s.node_aws_access_key_id,
                aws_secret_access_key=(
                    s.aws_secret_access_key
                    if s.node_aws_secret_access_key is None
                    else s.node_aws_secret_access_key
                ),
                region=s.region,
                allow_listed_local_paths=list(s.allow_listed_local_paths),
                local_publisher_dir=self.local_publisher_dir,
                local_publisher_base_url=self.local_publisher_url,
            )
        )

    def reap_orphan_containers(self) -> None:
        """Containers of this node left by a previous worker (restart) belong to lost executions."""
        if not self.settings.docker_host:
            return
        try:
            import docker

            client = docker.DockerClient(base_url=self.settings.docker_host, timeout=30)
            for container in client.containers.list(
                all=True, filters={"label": f"bacalhau-devstack.node={self.node_id}"}
            ):
                container.remove(force=True)
                log.info("removed container %s of a lost execution", container.short_id)
            client.close()
        except Exception:  # best effort: a leftover container only costs resources
            log.warning("could not remove containers of lost executions", exc_info=True)

    @property
    def local_publisher_dir(self) -> Path:
        return self.settings.data_dir / "local-publisher"

    @property
    def local_publisher_url(self) -> str:
        return local_results.base_url(self.settings.local_publisher_address, self.local_publisher_port)

    def s3(self) -> Any:
        if self._s3 is None:
            import boto3
            from botocore.config import Config

            self._s3 = boto3.client(
                "s3",
                endpoint_url=self.settings.s3_endpoint,
                region_name=self.settings.region,
                aws_access_key_id=self.settings.aws_access_key_id,
                aws_secret_access_key=self.settings.aws_secret_access_key,
                config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
            )
        return self._s3

    def managed_key(self, job_id: str, execution_id: str) -> str:
        prefix = self.settings.managed_key_prefix.rstrip("/")
        return f"{prefix}/{job_id}/{execution_id}.tar.gz" if prefix else f"{job_id}/{execution_id}.tar.gz"

    def presign_managed_put(self, job_id: str, execution_id: str) -> str:
        return self.s3().generate_presigned_url(
            "put_object",
            ExpiresIn=self.settings.managed_url_expiration,
            # A bare PutObject, no ContentType (s3managed/url_generator.go GeneratePresignedPutURL);
            # the node's PUT then sends an unsigned Content-Type, which SeaweedFS and AWS accept.
            Params={"Bucket": self.settings.managed_bucket, "Key": self.managed_key(job_id, execution_id)},
        )

    def presign_get(
        self, bucket: str, key: str, endpoint: str = "", region: str = "", expires: int = 900
    ) -> str:
        client = self.s3()
        if endpoint and endpoint.rstrip("/") != self.settings.s3_endpoint.rstrip("/"):
            import boto3
            from botocore.config import Config

            client = boto3.client(
                "s3",
                endpoint_url=endpoint,
                region_name=region or self.settings.region,
                aws_access_key_id=self.settings.aws_access_key_id,
                aws_secret_access_key=self.settings.aws_secret_access_key,
                config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
            )
        return client.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires
        )

    def node_info(self) -> dict:
        compute_info = self.compute.node_info() if hasattr(self.compute, "node_info") else {}
        # A hybrid node: the compute decorator makes it "Compute" (pkg/compute/node_info_decorator.go).
        return {
            "NodeID": self.node_id,
            "NodeType": "Compute",
            "Labels": {"devstack": "true"},
            "SupportedProtocols": ["ncl/v1"],
            "ComputeNodeInfo": compute_info,
            "BacalhauVersion": version_info(),
        }

    def agent_config(self) -> dict:
        s = self.settings
        return {
            "config": {
                "API": {
                    "Host": "127.0.0.1",
                    "Port": int(s.public_url.rsplit(":", 1)[-1].split("/")[0] or 1234),
                },
                "NameProvider": "devstack",
                "Orchestrator": {"Enabled": True},
                "Compute": {"Enabled": True, "AllowListedLocalPaths": s.allow_listed_local_paths},
                "JobDefaults": {"Batch": {"Task": {"Resources": {"CPU": "500m", "Memory": "512Mb"}}}},
                "Publishers": {
                    "Types": {
                        "S3Managed": {
                            "Bucket": s.managed_bucket,
                            "Key": s.managed_key_prefix,
                            "Region": s.region,
                            "Endpoint": s.s3_endpoint,
                            "PreSignedURLExpiration": go_duration(s.managed_url_expiration),
                        },
                        # S3.PreSignedURLExpiration has no default: 0, left out (omitempty)
                        "S3": {"PreSignedURLDisabled": False},
                    }
                },
                "Devstack": {
                    "Note": STAND_IN_NOTE,
                    "Concurrency": s.concurrency,
                    "S3Endpoint": s.s3_endpoint,
                },
            }
        }

    def restart_soon(self) -> None:
        """Flush and exit with RESTART_EXIT_CODE; the ``serve`` supervisor starts a fresh worker."""
        self.store.flush()

        def bye() -> None:
            time.sleep(0.3)
            self.store.flush()
            os._exit(RESTART_EXIT_CODE)

        threading.Thread(target=bye, daemon=True).start()


def create_app(settings: ServerSettings, compute: Any = None) -> FastAPI:
    state = Devstack(settings, compute)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        state.reap_orphan_containers()  # before any new execution can start a container
        state.local_results.start()
        state.scheduler.start()
        log.info("%s; node %s; API at %s", STAND_IN_NOTE, state.node_id, settings.public_url)
        try:
            yield
        finally:
            state.scheduler.shutdown()
            state.local_results.stop()
            state.store.close()

    app = FastAPI(
        title="Bacalhau devstack",
        description=STAND_IN_NOTE,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.devstack = state

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc, request.headers.get("x-request-id", "")), status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            err = ApiError(404, "The requested resource/URL was not found.", "NotFound", "APIServer")
        else:
            err = ApiError(exc.status_code, str(exc.detail), "InternalError", "APIServer")
        return JSONResponse(error_body(err, request.headers.get("x-request-id", "")), status_code=err.status)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        err = ApiError(500, "Internal server error", "InternalError", "Unknown")
        return JSONResponse(error_body(err, request.headers.get("x-request-id", "")), status_code=500)

    for path, target in (
        ("/", "/api/v1/agent/version"),
        ("/version", "/api/v1/agent/version"),
        ("/livez", "/api/v1/agent/alive"),
    ):
        app.add_api_route(
            path, lambda target=target: RedirectResponse(target, status_code=301), methods=["GET"]
        )

    @app.get("/api/v1/agent/alive")
    def alive() -> dict:
        return {"Status": "OK"}

    @app.get("/api/v1/agent/version")
    def version() -> dict:
        return version_info()

    @app.get("/api/v1/version")
    def legacy_version() -> dict:
        return {"VersionInfo": version_info()}

    @app.get("/api/v1/agent/node")
    def node() -> dict:
        return state.node_info()

    @app.get("/api/v1/agent/config")
    def agent_config() -> dict:
        return state.agent_config()

    @app.get("/api/v1/agent/authconfig")
    def authconfig() -> dict:
        return {"Version": "1.0.0", "Config": {}}

    jobs_api.register(app, state)
    admin_api.register(app, state)
    _register_info(app, state)

    return FaultMiddleware(Gate(app, state), state)


def _register_info(app: FastAPI, state: Devstack) -> None:
    @app.get("/devstack/v1/info")
    def info() -> dict:
        return {
            "Note": STAND_IN_NOTE,
            "NodeID": state.node_id,
            "PID": os.getpid(),
            "Concurrency": state.settings.concurrency,
            "LocalPublisherURL": state.local_publisher_url,
        }

    @app.get("/jobs/{job_id}")
    def webui_job(job_id: str) -> HTMLResponse:
        try:
            job = state.store.job_version(state.store.resolve(job_id))
        except ApiError:
            return HTMLResponse(f"<p>job {job_id} not found</p>", status_code=404)
        pretty = json.dumps(job, indent=2).replace("&", "&amp;").replace("<", "&lt;")
        return HTMLResponse(
            f"<html><body><h1>{job['Name']} ({job['State']['StateType']})</h1><p>{STAND_IN_NOTE}</p>"
            f"<pre>{pretty}</pre></body></html>"
        )
