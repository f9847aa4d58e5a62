"""The devstack's front door, in front of every route: the X-Request-ID echo, v1.9.3's client-version
check and authentication, answered in Bacalhau's error shape."""

from __future__ import annotations

import json
import uuid
from typing import Any

from airflow_provider_bacalhau.devstack import auth as authz
from airflow_provider_bacalhau.devstack.store import ApiError

SERVER_VERSION = "1.9.3"
MIN_CLIENT_VERSION = (1, 4, 0)


def error_body(exc: ApiError, request_id: str = "") -> dict:
    body: dict[str, Any] = {
        "Status": exc.status,
        "Message": exc.message,
        "RequestID": request_id,
        "Code": exc.code,
        "Component": exc.component,
    }
    if exc.hint:
        body["Hint"] = exc.hint
    if exc.details:
        body["Details"] = exc.details
    return body


def _parse_semver(text: str) -> tuple[int, int, int] | None:
    core = text.strip().lstrip("vV").split("-", 1)[0].split("+", 1)[0]
    parts = core.split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return None
    return int(parts[0]), int(parts[1]), int(parts[2])


class Gate:
    """ASGI middleware: X-Request-ID echo, the client-version check and authentication."""

    def __init__(self, app: Any, holder: Any) -> None:
        self.app, self.holder = app, holder

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode().lower(): v.decode(errors="replace") for k, v in scope.get("headers", [])}
        request_id = headers.get("x-request-id", "")
        reply_id = request_id or str(uuid.uuid4())
        path = scope["path"]
        failure: tuple[int, dict] | None = None
        client_version = headers.get("x-bacalhau-git-version")
        if client_version is not None and path.startswith("/api/"):
            parsed = _parse_semver(client_version)
            if parsed is None:
                failure = (400, {"Error": f"Invalid client version {client_version}"})
            elif parsed < MIN_CLIENT_VERSION:
                failure = (
                    403,
                    {
                        "Error": "Client version is outdated. Update your client",
                        "MinVersion": "1.4.0",
                        "ClientVersion": client_version,
                        "ServerVersion": SERVER_VERSION,
                    },
                )
        if failure is None:
            method = "GET" if scope["type"] == "websocket" else scope["method"]
            denied = authz.check(self.holder.auth, method, path, headers.get("authorization", ""))
            if denied:
                status, reason = denied
                code = "Unauthorized" if status == 401 else "Forbidden"
                message = (
                    "unauthorized: missing or invalid credentials"
                    if status == 401
                    else f"forbidden: {reason}"
                )
                failure = (
                    status,
                    error_body(
                        ApiError(status, message, code, "Authorizer", details={"reason": reason}), request_id
                    ),
                )
        if failure is not None:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            payload = json.dumps(failure[1]).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": failure[0],
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(payload)).encode()),
                        (b"x-request-id", reply_id.encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": payload})
            return

        async def send_with_id(message: dict) -> None:
            if message["type"] == "http.response.start":
                message = {
                    **message,
                    "headers": [*message.get("headers", []), (b"x-request-id", reply_id.encode())],
                }
            await send(message)

        await self.app(scope, receive, send_with_id)
