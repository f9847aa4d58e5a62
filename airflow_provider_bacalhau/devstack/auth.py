"""Authentication and authorization like Bacalhau's entry-point authorizer (reference §1.2).

Config (JSON; CLI ``--auth``, env ``BACALHAU_DEVSTACK_AUTH``, PUT /devstack/v1/auth)::

    {"users": [
        {"username": "alice", "password": "alice-password", "capabilities": ["read:job"]},
        {"api_key": "an-api-key-of-20-chars-or-more", "capabilities": ["*"]}]}

``capabilities`` also accepts Bacalhau's own form ``[{"Actions": ["read:job", "write:job"]}]``.
No users means no authentication (the always-allow policy).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_bacalhau.devstack.decode import field as dfield
from airflow_provider_bacalhau.devstack.decode import items, text

OPEN_PREFIXES = ("/api/v1/auth",)
OPEN_PATHS = ("/api/v1/version", "/api/v1/agent/alive", "/api/v1/agent/version", "/api/v1/agent/authconfig")


@dataclass
class User:
    username: str = ""
    password: str = ""
    api_key: str = ""
    capabilities: list[str] = field(default_factory=list)


def _capabilities(raw: Any) -> list[str]:
    out: list[str] = []
    for cap in raw if isinstance(raw, list) else []:
        if isinstance(cap, str):
            out.append(cap)
        else:
            out.extend(str(a) for a in items(cap, "Actions"))
    return out


@dataclass
class AuthConfig:
    users: list[User] = field(default_factory=list)

    @classmethod
    def from_config(cls, raw: Any) -> AuthConfig:
        users = []
        for u in items(raw, "users"):
            user = User(
                text(u, "username"),
                text(u, "password"),
                text(u, "api_key") or text(u, "APIKey"),
                _capabilities(dfield(u, "capabilities")),
            )
            if user.api_key and not 20 <= len(user.api_key) <= 255:
                raise ValueError("api_key must be 20 to 255 characters")
            if user.username and (not user.username.isalnum() or len(user.password) < 10):
                raise ValueError("username must be alphanumeric and password at least 10 characters")
            if not user.api_key and not user.username:
                raise ValueError("each user needs an api_key or a username and password")
            users.append(user)
        return cls(users)

    @property
    def enabled(self) -> bool:
        return bool(self.users)

    def to_dict(self) -> dict:
        return {
            "users": [
                {
                    "username": u.username,
                    "api_key": "***" if u.api_key else "",
                    "capabilities": u.capabilities,
                }
                for u in self.users
            ]
        }


def required_capability(method: str, path: str) -> str:
    action = "read" if method in ("GET", "HEAD") else "write"
    if path.startswith("/api/v1/orchestrator/jobs"):
        resource = "job"
    elif path.startswith("/api/v1/orchestrator/nodes"):
        resource = "node"
    else:
        resource = "agent"
    return f"{action}:{resource}"


def _allows(capabilities: list[str], needed: str) -> bool:
    action = needed.split(":", 1)[0]
    return any(cap in ("*", needed, f"{action}:*") for cap in capabilities)


def check(config: AuthConfig, method: str, path: str, authorization: str) -> tuple[int, str] | None:
    """None when allowed; else (401|403, reason)."""
    if (
        not config.enabled
        or path in OPEN_PATHS
        or path.startswith(OPEN_PREFIXES)
        or not path.startswith("/api/")
    ):
        return None
    scheme, _, credential = authorization.partition(" ")
    user = None
    if scheme.lower() == "bearer" and credential:
        if credential.count(".") == 2:
            return 401, "JWT tokens are not supported by the devstack"
        user = next((u for u in config.users if u.api_key and u.api_key == credential), None)
        if user is None:
            return 401, "invalid API key"
    elif scheme.lower() == "basic" and credential:
        try:
            name, _, password = base64.b64decode(credential).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return 401, "malformed basic authentication header"
        user = next(
            (u for u in config.users if u.username and u.username == name and u.password == password), None
        )
        if user is None:
            return 401, "invalid username or password"
    else:
        return 401, "missing authentication credentials"
    needed = required_capability(method, path)
    if not _allows(user.capabilities, needed):
        return 403, f"user does not have the required capability: {needed}"
    return None
