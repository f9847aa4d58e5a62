"""Turning HTTP answers and transport failures into JSON or :class:`BacalhauApiError`.

Bacalhau answers errors in three shapes: its APIError JSON (``Status``, ``Message``, ``Code``,
``Component``, ``RequestID``, ``Hint``, ``Details``), the version middleware's ``{"Error": ...}``
JSON, and plain text (``Server Timeout!`` from the handler timeout, proxies' HTML pages).
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterable
from typing import Any

import httpx

from airflow_provider_bacalhau.errors import BacalhauApiError

_MAX_TEXT = 500


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _field(body: dict[str, Any], name: str) -> Any:
    """Go decodes JSON keys case-insensitively; accept any casing of a field the same way."""
    if name in body:
        return body[name]
    lowered = name.lower()
    for key, value in body.items():
        if isinstance(key, str) and key.lower() == lowered:
            return value
    return None


def _text(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def error_from_response(
    response: httpx.Response, method: str, path: str, secrets: Iterable[str] = ()
) -> BacalhauApiError:
    secrets = tuple(secrets)
    status = response.status_code
    request_id = response.headers.get("X-Request-ID") or None
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        body = None
    code = hint = component = None
    if isinstance(body, dict) and (_field(body, "Message") is not None or _field(body, "Code") is not None):
        message = _text(_field(body, "Message")) or response.reason_phrase or "error"
        code = _text(_field(body, "Code"))
        hint = _text(_field(body, "Hint"))
        component = _text(_field(body, "Component"))
        request_id = _text(_field(body, "RequestID")) or request_id
        details = _field(body, "Details")
        if isinstance(details, dict) and details.get("reason"):
            message = f"{message} ({details['reason']})"
    elif isinstance(body, dict) and _field(body, "Error") is not None:
        message = str(_field(body, "Error"))
        min_version = _field(body, "MinVersion")
        if min_version:
            message = f"{message} (server requires client version >= {min_version})"
    else:
        text = response.text.strip() if response.content else ""
        message = text[:_MAX_TEXT] or response.reason_phrase or f"HTTP {status}"
    return BacalhauApiError(
        redact(message, secrets),
        status=status,
        code=code,
        hint=redact(hint, secrets) if hint else None,
        request_id=request_id,
        component=component,
        method=method,
        path=path,
    )


def _is_certificate_failure(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def is_retryable_transport_error(exc: BaseException) -> bool:
    """Connection trouble worth another try; a certificate that does not verify never heals."""
    if _is_certificate_failure(exc):
        return False
    return isinstance(exc, (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError))


def never_reached_server(exc: BaseException) -> bool:
    """True when the request surely was not delivered: no connection was ever made for it."""
    return isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))


def error_from_transport(
    exc: BaseException, base_url: str, method: str, path: str, secrets: Iterable[str] = ()
) -> BacalhauApiError:
    kind = "TLS certificate verification failed" if _is_certificate_failure(exc) else type(exc).__name__
    detail = str(exc) or kind
    return BacalhauApiError(
        redact(f"cannot reach Bacalhau at {base_url}: {kind}: {detail}", secrets),
        method=method,
        path=path,
    )


def decode_json(response: httpx.Response, method: str, path: str) -> Any:
    if not response.content:
        return {}
    try:
        return response.json()
    except (ValueError, UnicodeDecodeError):
        snippet = response.text[:200] if response.content else ""
        raise BacalhauApiError(
            f"expected a JSON answer, got "
            f"{response.headers.get('content-type', 'no content type')}: {snippet!r}",
            status=response.status_code,
            method=method,
            path=path,
        ) from None


def dumps(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
