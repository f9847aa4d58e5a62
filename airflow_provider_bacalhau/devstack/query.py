"""Request and answer helpers of the devstack's API routes: query values as the Go binder reads
them, JSON answers, page tokens and the label selector (Bacalhau v1.9.3 behaviour)."""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from airflow_provider_bacalhau.devstack.store import ApiError


def json_answer(body: Any) -> Response:
    """JSON as FastAPI's JSONResponse writes it, without its jsonable_encoder walk over the value
    (the store holds plain JSON already): what keeps a list of 1,000 jobs, or thousands of job
    reads a second, cheap for the server."""
    return Response(
        json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":")),
        media_type="application/json",
    )


def bad_request(message: str, component: str = "APIServer", code: str = "InternalError") -> ApiError:
    return ApiError(400, message, code, component)


async def json_body(request: Request, required: bool = True) -> Any:
    raw = await request.body()
    if not raw.strip():
        if required:
            raise bad_request("code=400, message=Request body can not be empty")
        return {}
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise bad_request(f"code=400, message=Syntax error: {exc}") from exc


def q_bool(request: Request, name: str) -> bool:
    return request.query_params.get(name, "").lower() in ("true", "1")


def q_int(request: Request, name: str, default: int = 0) -> int:
    value = request.query_params.get(name, "")
    if not value:
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise bad_request(
            f'code=400, message=strconv.ParseInt: parsing "{value}": invalid syntax, internal=binding {name}'
        ) from exc


def encode_token(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode()


def decode_token(token: str) -> dict:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if not isinstance(data, dict) or int(data.get("offset", 0)) < 0:
            raise ValueError
        return data
    except (ValueError, binascii.Error, TypeError) as exc:
        raise bad_request(f"invalid next token: {token}", "JobStore", "BadRequest") from exc


def _split_selector(selector: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for ch in selector:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    return [p.strip() for p in [*parts, current] if p.strip()]


def label_matcher(selectors: list[str]):
    """Kubernetes label-selector subset: k=v, k==v, k!=v, k in (a,b), k notin (a,b), k, !k."""
    checks = []
    for requirement in (r for s in selectors for r in _split_selector(s)):
        m = re.fullmatch(r"([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)", requirement)
        if m:
            key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",") if v.strip()}
            checks.append(
                lambda labels, k=key, o=op, v=values: (
                    (labels.get(k) in v) if o == "in" else (labels.get(k) not in v)
                )
            )
            continue
        m = re.fullmatch(r"([\w./-]+)\s*(==|=|!=)\s*([\w./-]*)", requirement)
        if m:
            key, op, value = m.groups()
            checks.append(
                lambda labels, k=key, o=op, v=value: (
                    (labels.get(k) == v) if o != "!=" else (labels.get(k) != v)
                )
            )
            continue
        m = re.fullmatch(r"(!?)([\w./-]+)", requirement)
        if m:
            negated, key = bool(m.group(1)), m.group(2)
            checks.append(lambda labels, neg=negated, k=key: (k in labels) != neg)
            continue
        raise bad_request(f"unable to parse requirement: {requirement}", "JobStore", "BadRequest")
    return lambda labels: all(check(labels) for check in checks)
