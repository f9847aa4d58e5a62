"""Fault injection for the devstack's Bacalhau routes (never for ``/devstack/v1/*``).

Configuration (JSON; PUT /devstack/v1/faults, CLI ``--faults``, env ``BACALHAU_DEVSTACK_FAULTS``)::

    {"seed": 7,                                   # RNG seed: same seed, same sequence of faults
     "latency": 0.0,                              # seconds added to every API request
     "routes": {"GET /api/v1/orchestrator/jobs/{id}": {
         "error_rate": 0.5, "status": 503,        # answer this share of requests with an APIError
         "drop_rate": 0.0,                        # close the connection without any response
         "drop_after": false,                     # with drop: handle the request first, then drop
                                                  # (a WebSocket: after its first frame, mid-stream)
         "drop_after_rate": 0.0,                  # handle the request, then drop (mixes with drop)
         "stall_rate": 0.0, "stall": 2.0,         # hold this share of requests for `stall` seconds
         "every": 0, "action": "error",           # deterministic: every Nth matching request
         "times": 0,                              # stop injecting after this many faults (0 = no limit)
         "latency": 0.2}}}                        # seconds added on this route

A route key is ``"METHOD TEMPLATE"`` (templates below), ``"* TEMPLATE"`` for any method, or ``"*"``.

The rates of one rule share one draw per request, so they add up (at most 1): a ``"*"`` rule with
``error_rate`` 0.05, ``drop_rate`` 0.05, ``drop_after_rate`` 0.05 and ``stall_rate`` 0.05 faults 20%
of all API calls with an even mix. Each rule counts its requests (``seen``) and its faults per kind
(``kinds``: error, drop, drop_after, stall); a stalled request is then handled normally.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import threading
from dataclasses import dataclass, field
from typing import Any

ROUTE_TEMPLATES = (
    "/api/v1/orchestrator/jobs",
    "/api/v1/orchestrator/jobs/diff",
    "/api/v1/orchestrator/jobs/{id}",
    "/api/v1/orchestrator/jobs/{id}/history",
    "/api/v1/orchestrator/jobs/{id}/executions",
    "/api/v1/orchestrator/jobs/{id}/results",
    "/api/v1/orchestrator/jobs/{id}/versions",
    "/api/v1/orchestrator/jobs/{id}/logs",
    "/api/v1/orchestrator/jobs/{id}/rerun",
    "/api/v1/orchestrator/nodes",
    "/api/v1/agent/alive",
    "/api/v1/agent/version",
    "/api/v1/agent/node",
    "/api/v1/agent/config",
)
_PATTERNS = [
    (t, re.compile("^" + re.sub(r"\\\{id\\\}", "[^/]+", re.escape(t)) + "/?$")) for t in ROUTE_TEMPLATES
]


def route_template(path: str) -> str | None:
    if path == "/api/v1/orchestrator/jobs/diff":
        return path
    for template, pattern in _PATTERNS:
        if pattern.match(path):
            return template
    return None


@dataclass
class Rule:
    error_rate: float = 0.0
    status: int = 503
    drop_rate: float = 0.0
    drop_after: bool = False
    every: int = 0
    action: str = "error"
    times: int = 0
    latency: float = 0.0
    drop_after_rate: float = 0.0
    stall_rate: float = 0.0
    stall: float = 2.0
    seen: int = 0
    injected: int = 0
    kinds: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: dict) -> Rule:
        if not isinstance(raw, dict):
            raise ValueError(f"fault rule must be an object, got {raw!r}")
        known = set(_RULE_KEYS) - {"seen", "injected", "kinds"}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"unknown fault rule keys: {sorted(unknown)}")
        rule = cls(**raw)
        if rule.action not in ("error", "drop"):
            raise ValueError("action must be 'error' or 'drop'")
        rates = (rule.error_rate, rule.drop_rate, rule.drop_after_rate, rule.stall_rate)
        if not all(0 <= rate <= 1 for rate in rates) or sum(rates) > 1 + 1e-9:
            raise ValueError("error_rate, drop_rate, drop_after_rate and stall_rate: each 0-1, sum <= 1")
        if rule.stall < 0:
            raise ValueError("stall must be seconds >= 0")
        if not 400 <= int(rule.status) <= 599:
            raise ValueError("status must be an HTTP error status (400-599)")
        return rule

    def to_dict(self) -> dict:
        return {k: dict(self.kinds) if k == "kinds" else getattr(self, k) for k in _RULE_KEYS}

    def draw(self, value: float) -> str:
        """The fault kind a random ``value`` in [0, 1) picks: one draw, cumulative rates."""
        edge = 0.0
        for kind, rate in (
            ("drop", self.drop_rate),
            ("error", self.error_rate),
            ("drop_after", self.drop_after_rate),
            ("stall", self.stall_rate),
        ):
            edge += rate
            if value < edge:
                return kind
        return ""


_RULE_KEYS = (
    "error_rate",
    "status",
    "drop_rate",
    "drop_after",
    "every",
    "action",
    "times",
    "latency",
    "drop_after_rate",
    "stall_rate",
    "stall",
    "seen",
    "injected",
    "kinds",
)


@dataclass
class Decision:
    latency: float = 0.0
    action: str = ""  # "", "error", "drop"
    status: int = 503
    drop_after: bool = False


@dataclass
class Faults:
    """The current fault configuration and its RNG; thread-safe."""

    seed: int | None = None
    latency: float = 0.0
    routes: dict[str, Rule] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(self.seed)

    @classmethod
    def from_config(cls, config: dict | str | None) -> Faults:
        if isinstance(config, str):
            config = json.loads(config) if config.strip() else {}
        config = config or {}
        unknown = set(config) - {"seed", "latency", "routes"}
        if unknown:
            raise ValueError(f"unknown fault settings: {sorted(unknown)}")
        routes = {}
        for key, raw in (config.get("routes") or {}).items():
            if key != "*":
                method, _, template = key.partition(" ")
                if not template or template not in ROUTE_TEMPLATES:
                    raise ValueError(
                        f"unknown route {key!r}; use 'METHOD TEMPLATE' with one of {list(ROUTE_TEMPLATES)}"
                    )
            routes[key] = Rule.from_dict(raw)
        return cls(seed=config.get("seed"), latency=float(config.get("latency") or 0), routes=routes)

    def to_dict(self) -> dict:
        return {
            "seed": self.seed,
            "latency": self.latency,
            "routes": {k: r.to_dict() for k, r in self.routes.items()},
        }

    def _rule_for(self, method: str, template: str) -> Rule | None:
        return (
            self.routes.get(f"{method} {template}")
            or self.routes.get(f"* {template}")
            or self.routes.get("*")
        )

    def decide(self, method: str, path: str) -> Decision:
        template = route_template(path)
        if template is None:
            return Decision(latency=self.latency)
        with self._lock:
            rule = self._rule_for(method, template)
            if rule is None:
                return Decision(latency=self.latency)
            rule.seen += 1
            decision = Decision(
                latency=self.latency + rule.latency, status=int(rule.status), drop_after=rule.drop_after
            )
            if rule.times and rule.injected >= rule.times:
                return decision
            kind = ""
            if rule.every:
                if rule.seen % rule.every == 0:
                    kind = rule.action
            else:
                kind = rule.draw(self._rng.random())
            if not kind:
                return decision
            if kind == "drop" and rule.drop_after:
                kind = "drop_after"
            rule.injected += 1
            rule.kinds[kind] = rule.kinds.get(kind, 0) + 1
            if kind == "stall":
                decision.latency += rule.stall
            elif kind == "drop_after":
                decision.action, decision.drop_after = "drop", True
            else:
                decision.action = kind
            return decision


def _transport(receive: Any) -> Any:
    """uvicorn's transport behind its ``receive`` callable (to drop a connection without a reply)."""
    return getattr(getattr(receive, "__self__", None), "transport", None)


class FaultMiddleware:
    """ASGI middleware applying the app's current :class:`Faults` (``holder.faults``) per request."""

    def __init__(self, app: Any, holder: Any) -> None:
        self.app = app
        self.holder = holder

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"].startswith("/devstack/"):
            await self.app(scope, receive, send)
            return
        method = "GET" if scope["type"] == "websocket" else scope["method"]
        decision = self.holder.faults.decide(method, scope["path"])
        if decision.latency > 0:
            await asyncio.sleep(decision.latency)
        if decision.action == "drop" and decision.drop_after and scope["type"] == "websocket":
            await self._drop_mid_stream(scope, receive, send)
            return
        if decision.action and scope["type"] == "websocket":
            await self._refuse_websocket(decision, scope, receive, send)
            return
        if decision.action == "drop" and scope["type"] == "http":
            if decision.drop_after:

                async def swallow(message: dict) -> None:
                    return None

                await self.app(scope, receive, swallow)
            await self._drop(receive, send)
            return
        if decision.action == "error" and scope["type"] == "http":
            body = {
                "Status": decision.status,
                "Message": "devstack fault injection: simulated server error",
                "RequestID": _request_id(scope),
                "Code": _code_for(decision.status),
                "Component": "APIServer",
            }
            payload = json.dumps(body).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": decision.status,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(payload)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": payload})
            return
        await self.app(scope, receive, send)

    async def _drop_mid_stream(self, scope: dict, receive: Any, send: Any) -> None:
        """Let the WebSocket upgrade and send its first frame, then cut the connection without a
        close frame: a log stream that breaks while the container runs."""
        transport = _transport(receive)
        frames = 0

        async def cut_after_first_frame(message: dict) -> None:
            nonlocal frames
            if message["type"] == "websocket.send":
                frames += 1
                if frames > 1:
                    if transport is not None:
                        transport.abort()
                    raise ConnectionAbortedError("devstack fault injection: log stream dropped")
            await send(message)

        try:
            await self.app(scope, receive, cut_after_first_frame)
        except ConnectionAbortedError:
            return

    async def _refuse_websocket(self, decision: Decision, scope: dict, receive: Any, send: Any) -> None:
        """A WebSocket fault happens at the handshake: the error answers it with an HTTP APIError
        (where the server supports ASGI denial responses), the drop closes the connection."""
        if decision.action == "drop":
            transport = _transport(receive)
            if transport is not None:
                transport.abort()
                return
        if decision.action == "error" and "websocket.http.response" in scope.get("extensions", {}):
            body = {
                "Status": decision.status,
                "Message": "devstack fault injection: simulated server error",
                "RequestID": _request_id(scope),
                "Code": _code_for(decision.status),
                "Component": "APIServer",
            }
            payload = json.dumps(body).encode()
            await send(
                {
                    "type": "websocket.http.response.start",
                    "status": decision.status,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(payload)).encode()),
                    ],
                }
            )
            await send({"type": "websocket.http.response.body", "body": payload})
            return
        await send({"type": "websocket.close", "code": 1011})  # refused before the upgrade

    @staticmethod
    async def _drop(receive: Any, send: Any) -> None:
        transport = _transport(receive)
        if transport is not None:
            transport.abort()
            return
        # Not under uvicorn: start a response that promises more bytes than it sends, then fail.
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"100")]})
        await send({"type": "http.response.body", "body": b"{", "more_body": True})
        raise ConnectionAbortedError("devstack fault injection: connection dropped")


def _request_id(scope: dict) -> str:
    for key, value in scope.get("headers", []):
        if key.lower() == b"x-request-id":
            return value.decode(errors="replace")
    return ""


def _code_for(status: int) -> str:
    return {
        429: "ResourceExhausted",
        503: "ServiceUnavailable",
        501: "NotImplemented",
        404: "NotFound",
        400: "BadRequest",
        401: "Unauthorized",
        403: "Forbidden",
    }.get(status, "InternalError")
