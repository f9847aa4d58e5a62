"""Where the Bacalhau API is and how to authenticate: :class:`ClientConfig`.

``ClientConfig.from_env`` reads the same environment variables as the Bacalhau CLI (v1.7+), with
the same rules: ``BACALHAU_API_HOST`` may be a full ``http(s)://host[:port]`` URL whose scheme
decides TLS. Where the CLI would glue anything else (a path, another scheme) into a URL no request
can reach, :func:`build_base_url` refuses it, naming ``host``.
"""

from __future__ import annotations

import base64
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 1234

# Go's strconv.ParseBool, which the CLI's configuration layer uses for TLS switches.
_TRUE = {"1", "t", "T", "true", "TRUE", "True"}
_FALSE = {"0", "f", "F", "false", "FALSE", "False"}


def parse_bool(name: str, raw: str | bool | None, default: bool = False) -> bool:
    """A Go-style boolean from an environment variable or connection extra; ``name`` is for errors."""
    if raw is None or raw == "":
        return default
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{name}: expected a boolean (true/false/1/0), got {raw!r}")


def parse_port(name: str, raw: str | int | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_PORT
    try:
        port = int(str(raw).strip())
    except ValueError:
        raise ValueError(f"{name}: expected a port number, got {raw!r}") from None
    if not 0 < port < 65536:
        raise ValueError(f"{name}: port out of range, got {raw!r}")
    return port


def build_base_url(host: str | None, port: int = DEFAULT_PORT, use_tls: bool = False) -> str:
    """The API base URL the Bacalhau CLI would use for this host, port and TLS switch.

    A host that is a plain ``http``/``https`` URL (path ``/`` at most, no query, no fragment) keeps
    its scheme and port (``port`` fills in a missing one); any other value is glued into
    ``<scheme>://<host>:<port>`` with the scheme chosen by ``use_tls``. ``0.0.0.0`` means this machine.
    A host with whitespace, credentials, another scheme, or a path is refused (``ValueError``
    naming ``host``): no request could reach it.
    """
    host = (host or DEFAULT_HOST).strip()
    if host == "0.0.0.0":
        host = DEFAULT_HOST
    if any(ch.isspace() for ch in host):
        raise ValueError("host: must not contain whitespace")
    parts = urlsplit(host)
    if "@" in parts.netloc:  # never echoed: the text holds a password
        raise ValueError("host: must not carry credentials; put them in the login and password")
    is_url = (
        parts.scheme in ("http", "https")
        and bool(parts.netloc)
        and parts.path in ("", "/")
        and not parts.query
        and not parts.fragment
    )
    if is_url:
        hostname = parts.hostname or ""
        if ":" in hostname:  # IPv6 literal
            hostname = f"[{hostname}]"
        try:
            url_port = parts.port
        except ValueError:
            raise ValueError(f"host: invalid port in {host!r}") from None
        return f"{parts.scheme}://{hostname}:{url_port or port}"
    if "://" in host:
        raise ValueError(f"host: only http:// and https:// URLs without a path are supported, got {host!r}")
    if "/" in host or "?" in host or "#" in host:
        raise ValueError(f"host: a host name (or an http(s):// URL without a path), got {host!r}")
    scheme = "https" if use_tls else "http"
    return f"{scheme}://{host}:{port}"


@dataclass(frozen=True)
class ClientConfig:
    """Connection settings for :class:`~airflow_provider_bacalhau.client.BacalhauClient`.

    Immutable and hashable: the async client pool is keyed by it.

    :param base_url: API root, e.g. ``http://127.0.0.1:1234`` (no ``/api/v1`` suffix).
    :param api_key: sent as ``Authorization: Bearer <api_key>``; excludes ``username``/``password``.
    :param username: basic-auth user; needs ``password``.
    :param password: basic-auth password; needs ``username``.
    :param verify: ``True`` (verify TLS with the default CA bundle), ``False`` (do not verify), or
        the path of a PEM CA file.
    :param timeout: seconds for connect, read, write and pool waits of one HTTP request.
    :param max_retries: retries after the first attempt for retryable failures (0 disables).
    :param namespace: Bacalhau namespace for lookups and for submitted jobs that name none.
    :param backoff: first retry delay in seconds; doubles per attempt, with full jitter.
    :param backoff_max: cap of one retry delay, ``Retry-After`` included.
    """

    base_url: str = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"
    api_key: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    verify: bool | str = True
    timeout: float = 30.0
    max_retries: int = 4
    namespace: str | None = None
    backoff: float = 0.5
    backoff_max: float = 30.0

    def __post_init__(self) -> None:
        # Blank credentials count as absent, like the CLI's trimmed environment variables.
        for name in ("api_key", "username", "password", "namespace"):
            value = getattr(self, name)
            if value is not None and not str(value).strip():
                object.__setattr__(self, name, None)
        parts = urlsplit(self.base_url or "")
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"base_url: expected an http:// or https:// URL, got {self.base_url!r}")
        if "@" in parts.netloc:
            raise ValueError("base_url: must not carry credentials; use api_key or username/password")
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))
        if self.api_key and (self.username or self.password):
            raise ValueError("api_key: cannot be used together with username/password")
        if self.username and not self.password:
            raise ValueError("password: username is set but password is not")
        if self.password and not self.username:
            raise ValueError("username: password is set but username is not")
        if isinstance(self.verify, str) and not self.verify:
            object.__setattr__(self, "verify", True)
        if isinstance(self.verify, str) and not Path(self.verify).is_file():
            raise ValueError(f"verify: CA file not found: {self.verify!r}")
        if not self.timeout or self.timeout <= 0:
            raise ValueError(f"timeout: must be > 0, got {self.timeout!r}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries: must be >= 0, got {self.max_retries!r}")
        if self.backoff < 0 or self.backoff_max < 0:
            raise ValueError("backoff: delays must be >= 0")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> ClientConfig:
        """Settings from ``BACALHAU_API_*`` environment variables, as the Bacalhau CLI reads them.

        :param environ: the variables (default ``os.environ``).
        :param overrides: other :class:`ClientConfig` fields (e.g. ``timeout``).
        """
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(name)
            return value.strip() if isinstance(value, str) and value.strip() else None

        port = parse_port("BACALHAU_API_PORT", get("BACALHAU_API_PORT"))
        use_tls = parse_bool("BACALHAU_API_TLS_USETLS", get("BACALHAU_API_TLS_USETLS"))
        insecure = parse_bool("BACALHAU_API_TLS_INSECURE", get("BACALHAU_API_TLS_INSECURE"))
        ca_file = get("BACALHAU_API_TLS_CAFILE")
        api_key, username, password = (
            get("BACALHAU_API_KEY"),
            get("BACALHAU_API_USERNAME"),
            get("BACALHAU_API_PASSWORD"),
        )
        # Name the variables in errors, as the CLI does.
        if api_key and (username or password):
            raise ValueError(
                "BACALHAU_API_KEY: cannot be used together with BACALHAU_API_USERNAME/BACALHAU_API_PASSWORD"
            )
        if bool(username) != bool(password):
            missing = "BACALHAU_API_PASSWORD" if username else "BACALHAU_API_USERNAME"
            raise ValueError(f"{missing}: must be set together with the other basic-auth variable")
        settings: dict[str, Any] = {
            "base_url": build_base_url(get("BACALHAU_API_HOST"), port, use_tls),
            "api_key": api_key,
            "username": username,
            "password": password,
            "verify": False if insecure else (ca_file or True),
        }
        settings.update(overrides)
        return cls(**settings)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never appear in logs or exception text."""
        values = [v for v in (self.api_key, self.password) if v]
        if self.username and self.password:
            values.append(self._basic_token())
        return tuple(values)

    def _basic_token(self) -> str:
        return base64.b64encode(f"{self.username}:{self.password}".encode()).decode("ascii")

    def auth_headers(self) -> dict[str, str]:
        if self.api_key:
            return {"Authorization": f"Bearer {self.api_key}"}
        if self.username and self.password:
            return {"Authorization": f"Basic {self._basic_token()}"}
        return {}

    def ssl_context(self) -> ssl.SSLContext | bool:
        """What to pass as ``httpx.Client(verify=...)``.

        ``False`` for an ``http://`` API: no TLS is spoken, and ``True`` would make httpx load the
        CA bundle (about 25-45 ms) for every client it builds.
        """
        if self.verify is False or self.base_url.startswith("http://"):
            return False
        if isinstance(self.verify, str):
            return ssl.create_default_context(cafile=self.verify)
        return True
