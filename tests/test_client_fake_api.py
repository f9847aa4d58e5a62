"""A small scripted Bacalhau API on 127.0.0.1 for the client and hook tests (plus its own tests).

``FakeBacalhauApi`` is a real HTTP(S) server (stdlib ``ThreadingHTTPServer`` in a thread). It
records every request (method, raw path, query, headers, body), answers from a per-route script,
and validates every request body against the patched Bacalhau swagger (``tests/swagger.py``):
an invalid body gets HTTP 400 and is listed in ``violations``, which the fixture asserts empty.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from swagger import template_for, validate_request_body

JOBS = "/api/v1/orchestrator/jobs"


@dataclass
class Reply:
    """One scripted answer. ``delay`` waits before answering; ``drop`` closes without answering."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False


def api_error(status: int, message: str, code: str = "", **extra: Any) -> Reply:
    """A reply in Bacalhau's APIError shape (reference §1.5)."""
    body = {"Status": status, "Message": message, "RequestID": "", "Code": code, "Component": "JobStore"}
    body.update(extra)
    return Reply(status, body)


@dataclass
class Recorded:
    method: str
    path: str  # raw, still percent-encoded, without the query
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    peer: tuple = ()  # client address: tells connections apart


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # many concurrent clients in the pool tests
    daemon_threads = True


class FakeBacalhauApi:
    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.requests: list[Recorded] = []
        self.violations: list[str] = []
        self._script: dict[tuple[str, str], list[Reply]] = {}
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _handler_for(self))
        self._server.handle_error = lambda request, address: None  # dropped clients are expected
        if ssl_context is not None:
            self._server.socket = ssl_context.wrap_socket(self._server.socket, server_side=True)
        scheme = "https" if ssl_context else "http"
        self.port = self._server.server_address[1]
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    def __enter__(self) -> FakeBacalhauApi:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def script(self, method: str, path: str, *replies: Reply) -> None:
        """Answer ``method path`` with ``replies`` in turn; the last one repeats."""
        self._script[(method, path)] = list(replies)

    def count(self, method: str, path: str | None = None) -> int:
        return sum(1 for r in self.requests if r.method == method and (path is None or r.path == path))

    def reply_for(self, method: str, path: str) -> Reply:
        with self._lock:
            replies = self._script.get((method, path))
            if not replies:
                return api_error(404, "The requested resource/URL was not found.", "NotFound")
            return replies.pop(0) if len(replies) > 1 else replies[0]

    def record(self, request: Recorded) -> str | None:
        with self._lock:
            self.requests.append(request)
        if request.body is None and request.method in ("GET", "DELETE"):
            return None
        try:
            validate_request_body(request.method, template_for(request.method, request.path), request.body)
        except Exception as exc:  # any failure to validate is a violation
            problem = f"{request.method} {request.path}: {str(exc).splitlines()[0]}"
            self.violations.append(problem)
            return problem
        return None


def _handler_for(api: FakeBacalhauApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
            parts = urlsplit(self.path)
            headers = {k.lower(): v for k, v in self.headers.items()}
            problem = api.record(
                Recorded(self.command, parts.path, parse_qs(parts.query), headers, body, self.client_address)
            )
            reply = api_error(400, f"swagger: {problem}", "InternalError") if problem else None
            reply = reply or api.reply_for(self.command, parts.path)
            if reply.delay:
                time.sleep(reply.delay)
            if reply.drop:
                self.close_connection = True
                return
            payload = reply.body
            if isinstance(payload, (dict, list)):
                data, ctype = json.dumps(payload).encode(), "application/json"
            else:
                data, ctype = (payload or "").encode(), "text/plain; charset=UTF-8"
            self.send_response(reply.status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_DELETE = _handle

    return Handler


@pytest.fixture
def fake_api() -> Iterator[FakeBacalhauApi]:
    with FakeBacalhauApi() as api:
        yield api
    assert not api.violations, api.violations


@dataclass
class TlsMaterial:
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


@pytest.fixture(scope="session")
def tls_material(tmp_path_factory: pytest.TempPathFactory) -> TlsMaterial:
    """A self-signed certificate for 127.0.0.1, made now (it doubles as its own CA file)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bacalhau-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return TlsMaterial(cert_file, key_file)


@pytest.fixture
def tls_api(tls_material: TlsMaterial) -> Iterator[FakeBacalhauApi]:
    with FakeBacalhauApi(tls_material.server_context()) as api:
        yield api
    assert not api.violations, api.violations


# -- the fake's own behaviour: validation must be able to fail ----------------------------------


def test_fake_api_rejects_a_body_the_swagger_does_not_allow(fake_api: FakeBacalhauApi) -> None:
    fake_api.script("PUT", JOBS, Reply(200, {"JobID": "j-1"}))
    answer = httpx.put(fake_api.url + JOBS, json={"Job": {"Type": "batch", "Tsks": []}, "Force": False})
    assert answer.status_code == 400
    assert "Tsks" in answer.json()["Message"]
    assert len(fake_api.violations) == 1
    fake_api.violations.clear()


def test_fake_api_rejects_integer_network_type_and_ignored_put_fields(fake_api: FakeBacalhauApi) -> None:
    bad_bodies = [
        {"Job": {"Type": "batch", "Tasks": [{"Name": "t", "Network": {"Type": 4}}]}},
        {"Job": {"Type": "batch"}, "idempotencyToken": "x"},
    ]
    for body in bad_bodies:
        assert httpx.put(fake_api.url + JOBS, json=body).status_code == 400
    assert len(fake_api.violations) == 2
    fake_api.violations.clear()


def example_job(name: str | None = "airflow-etl-extract-20260101T000000-1") -> dict:
    """A submit ``Job`` shaped like the reference's example (§3.5), as a plain dict."""
    job: dict[str, Any] = {
        "Type": "batch",
        "Namespace": "default",
        "Count": 1,
        "Labels": {"airflow-dag": "etl"},
        "Tasks": [
            {
                "Name": "main",
                "Engine": {
                    "Type": "docker",
                    "Params": {
                        "Image": "python:3.12-slim",
                        "Entrypoint": ["/bin/sh", "-c"],
                        "Parameters": ["python /inputs/in/job.py /outputs"],
                        "EnvironmentVariables": ["MODE=prod"],
                        "WorkingDirectory": "/inputs/in",
                    },
                },
                "InputSources": [
                    {
                        "Alias": "in",
                        "Target": "/inputs/in",
                        "Source": {
                            "Type": "s3",
                            "Params": {"Bucket": "stage", "Key": "runs/r1/", "Region": "us-east-1"},
                        },
                    }
                ],
                "ResultPaths": [{"Name": "outputs", "Path": "/outputs"}],
                "Publisher": {
                    "Type": "s3",
                    "Params": {
                        "Bucket": "results",
                        "Key": "runs/{jobID}/{executionID}/",
                        "Region": "us-east-1",
                        "Encoding": "plain",
                    },
                },
                "Network": {"Type": "None"},
                "Resources": {"CPU": "1", "Memory": "2gb"},
                "Timeouts": {"ExecutionTimeout": 1800, "QueueTimeout": 600, "TotalTimeout": 3600},
            }
        ],
    }
    if name:
        job["Name"] = name
    return job
