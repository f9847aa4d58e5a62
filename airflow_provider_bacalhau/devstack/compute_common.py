"""Pieces shared by the devstack compute node's inputs, publishers and container runner."""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

if TYPE_CHECKING:
    from airflow_provider_bacalhau.devstack.compute import ComputeSettings


class ComputeError(Exception):
    """An execution failure; ``str(error)`` is the message the real compute node would report."""


def go_duration(seconds: float) -> str:
    """Format seconds as Go's ``time.Duration.String()`` does for whole seconds (``1m30s``)."""
    total = int(seconds)
    if total == 0:
        return "0s"
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def host_capacity(path: Path) -> dict:
    """``models.Resources`` of this host (CPU cores, bytes; zero fields omitted, as omitempty)."""
    memory = 0
    with contextlib.suppress(ValueError, OSError, AttributeError):
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        disk = shutil.disk_usage(path if path.exists() else path.anchor or "/").free
    except OSError:
        disk = 0
    resources = {"CPU": float(os.cpu_count() or 1), "Memory": int(memory), "Disk": int(disk)}
    return {k: v for k, v in resources.items() if v}


def same_type(given: Any, expected: str) -> bool:
    return isinstance(given, str) and given.strip().lower() == expected.lower()


def is_aws_endpoint(endpoint: str) -> bool:
    """Bacalhau's ``IsAWSEndpoint`` (pkg/s3/utils.go): empty, or the plain string ends in
    ``amazonaws.com`` (no URL parsing: a trailing ``/`` or a ``:443`` port makes it "not AWS").

    The devstack sends empty-endpoint traffic to its own S3 server, which it treats as "AWS".
    """
    return endpoint == "" or endpoint.endswith("amazonaws.com")


class S3Clients:
    """boto3 clients keyed by (endpoint, region), built with the compute node's own credentials.

    A job never carries credentials: the devstack uses its settings, like a real node uses its
    AWS default chain. Path-style addressing, as Bacalhau's client uses for custom endpoints.
    """

    def __init__(self, settings: ComputeSettings) -> None:
        self._settings = settings
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def endpoint_for(self, endpoint: str) -> str:
        return endpoint or self._settings.s3_default_endpoint

    def reachable(self, endpoint: str) -> bool:
        """With ``s3_only_default`` the node's network reaches S3 only at its default endpoint
        (its own view of S3); any other address is unreachable from it, as on a real network."""
        if not self._settings.s3_only_default:
            return True
        return _same_endpoint(self.endpoint_for(endpoint), self._settings.s3_default_endpoint)

    def client(self, endpoint: str, region: str) -> Any:
        key = (self.endpoint_for(endpoint), region or self._settings.region)
        with self._lock:
            if key not in self._clients:
                self._clients[key] = self._build(*key)
            return self._clients[key]

    def _build(self, endpoint: str, region: str) -> Any:
        import boto3  # lazy: only a running compute node needs it
        from botocore.config import Config

        session = boto3.session.Session(
            aws_access_key_id=self._settings.aws_access_key_id,
            aws_secret_access_key=self._settings.aws_secret_access_key,
            region_name=region,
        )
        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=5,
            read_timeout=120,
            max_pool_connections=16,
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        client = session.client("s3", endpoint_url=endpoint or None, config=config)
        if not self.reachable(endpoint):
            # Nothing of the node's network listens there: every request fails to connect.
            client.meta.events.register("before-send.s3", _refuse_connection)
        return client


def _same_endpoint(a: str, b: str) -> bool:
    def norm(url: str) -> tuple[str, str, int | None]:
        parsed = urlparse(url if "://" in url else f"https://{url}")
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        return parsed.scheme, (parsed.hostname or "").lower(), port

    return norm(a) == norm(b)


def _refuse_connection(request: Any, **_: Any) -> None:
    from botocore.exceptions import EndpointConnectionError

    raise EndpointConnectionError(endpoint_url=request.url)


def s3_error(operation: str, error: Exception) -> str:
    """Describe a botocore error in the shape of the Go SDK's messages."""
    from botocore.exceptions import EndpointConnectionError

    if isinstance(error, EndpointConnectionError):
        url = str(error.kwargs.get("endpoint_url", ""))
        parsed = urlparse(url)
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        # The Go SDK's text for a refused connection, after its 3 attempts (aws retry defaults).
        return (
            f"operation error S3: {operation}, exceeded maximum attempts, 3, https response error "
            f"StatusCode: 0, RequestID: , HostID: , request send failed, "
            f"{_HTTP_METHODS.get(operation, 'Get')} "
            f'"{url}": dial tcp {parsed.hostname}:{port}: connect: connection refused'
        )
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        meta = response.get("ResponseMetadata", {})
        info = response.get("Error", {})
        code = info.get("Code", "") or str(meta.get("HTTPStatusCode", ""))
        message = info.get("Message", "") or _status_text(code)
        return (
            f"operation error S3: {operation}, https response error StatusCode: "
            f"{meta.get('HTTPStatusCode', 0)}, api error {code}: {message}"
        )
    return f"operation error S3: {operation}, {error}"


_HTTP_METHODS = {
    "HeadObject": "Head",
    "PutObject": "Put",
    "GetObject": "Get",
    "ListObjectsV2": "Get",
    "CreateMultipartUpload": "Post",
    "UploadPart": "Put",
    "CompleteMultipartUpload": "Post",
}


def _status_text(code: str) -> str:
    return {"404": "Not Found", "403": "Forbidden", "400": "Bad Request", "301": "Moved Permanently"}.get(
        code, code
    )
