"""BacalhauHook: an Airflow connection of type ``bacalhau`` turned into API clients.

Connection fields: Host (a host name, or a full ``http(s)://host[:port]`` URL whose scheme decides
TLS), Port (default 1234), Password (the API key when Login is empty; the basic-auth password when
Login is set). Extras: ``use_tls``, ``insecure``, ``ca_file``, ``webui_url``, ``namespace``, and
optionally ``timeout`` (seconds) and ``max_retries``. ``s3_endpoint``/``s3_region`` say where the
network's compute nodes reach S3 (see :meth:`BacalhauHook.compute_s3_view`); empty means AWS or
the nodes' own default.

When the *default* connection ``bacalhau_default`` is not defined at all, the hook falls back to
the Bacalhau CLI's environment variables (``BACALHAU_API_HOST``... see
:meth:`ClientConfig.from_env`), so a machine set up for the CLI works with no Airflow connection.
Any other missing connection id is an error.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any
from urllib.parse import quote

from airflow.providers.common.compat.sdk import AirflowNotFoundException, BaseHook

from airflow_provider_bacalhau.client import (
    AsyncBacalhauClient,
    BacalhauClient,
    ClientConfig,
    shared_http_client,
)
from airflow_provider_bacalhau.client.config import DEFAULT_PORT, build_base_url, parse_bool, parse_port
from airflow_provider_bacalhau.errors import BacalhauApiError
from airflow_provider_bacalhau.hooks._compute_s3 import ComputeS3View
from airflow_provider_bacalhau.provider_info import BACALHAU_CONN_FIELDS, BACALHAU_UI_FIELD_BEHAVIOUR


def _extra(extras: dict, name: str, conn_type: str = "bacalhau") -> Any:
    # Airflow 2 forms stored custom fields as extra__<type>__<name>; accept both spellings.
    value = extras.get(name)
    return extras.get(f"extra__{conn_type}__{name}") if value is None else value


def config_from_connection(conn: Any, extras: dict) -> ClientConfig:
    """A :class:`ClientConfig` from an Airflow connection and its (already parsed) extras."""
    use_tls = parse_bool("extra.use_tls", _extra(extras, "use_tls"))
    insecure = parse_bool("extra.insecure", _extra(extras, "insecure"))
    ca_file = _extra(extras, "ca_file") or None
    if ca_file and not insecure:
        _check_ca_file(ca_file)
    namespace = _extra(extras, "namespace") or None
    if namespace is not None and not isinstance(namespace, str):
        raise ValueError(f"extra.namespace: must be a string, got {type(namespace).__name__}")
    port = parse_port("port", conn.port) if conn.port else DEFAULT_PORT
    login, password = (conn.login or None), (conn.password or None)
    settings: dict[str, Any] = {
        "base_url": build_base_url(conn.host, port, use_tls),
        "api_key": None if login else password,
        "username": login,
        "password": password if login else None,
        "verify": False if insecure else (ca_file or True),
        "namespace": namespace,
    }
    for name, kind in (("timeout", float), ("max_retries", int)):
        raw = _extra(extras, name)
        if raw in (None, ""):
            continue
        try:
            settings[name] = kind(str(raw).strip())
        except ValueError:
            raise ValueError(
                f"extra.{name}: expected {'a number of seconds' if kind is float else 'a whole number'}, "
                f"got {raw!r}"
            ) from None
    try:
        return ClientConfig(**settings)
    except ValueError as exc:  # name the connection's fields, not the config's
        text = str(exc)
        for mine, theirs in (("timeout:", "extra.timeout:"), ("max_retries:", "extra.max_retries:")):
            if text.startswith(mine):
                text = theirs + text[len(mine) :]
        raise ValueError(text) from None


def _check_ca_file(path: Any) -> None:
    """The ``ca_file`` extra names a readable PEM bundle (httpx would fail on it at every try)."""
    import ssl

    if not isinstance(path, str) or not os.path.isfile(path):
        raise ValueError(f"extra.ca_file: CA file not found: {path!r}")
    try:
        ssl.create_default_context(cafile=path)
    except (ssl.SSLError, OSError) as exc:
        raise ValueError(f"extra.ca_file: not a PEM CA bundle ({exc.__class__.__name__}): {path!r}") from None


class BacalhauHook(BaseHook):
    """Clients of the Bacalhau API from an Airflow connection.

    The connection is read on first use, never in ``__init__`` (hooks are built at DAG parse time).
    Inside a trigger use the ``async`` methods: they read the connection without blocking the
    triggerer's event loop, and all async clients of one config on one loop share one HTTP pool.

    :param bacalhau_conn_id: id of a connection of type ``bacalhau``.
    """

    conn_name_attr = "bacalhau_conn_id"
    default_conn_name = "bacalhau_default"
    conn_type = "bacalhau"
    hook_name = "Bacalhau"

    def __init__(self, bacalhau_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bacalhau_conn_id = bacalhau_conn_id
        self._config: ClientConfig | None = None
        self._webui_url: str | None = None
        self._s3_view = ComputeS3View()

    # -- connection -> config -------------------------------------------------------------------

    def _adopt(self, conn: Any | None, extras: dict) -> ClientConfig:
        try:
            if conn is None:
                self.log.info(
                    "Connection %r is not defined; using the BACALHAU_API_* environment variables",
                    self.bacalhau_conn_id,
                )
                config = ClientConfig.from_env()
                s3_view = ComputeS3View()
            else:
                config = config_from_connection(conn, extras)
                s3_view = ComputeS3View(
                    _extra(extras, "s3_endpoint") or "", _extra(extras, "s3_region") or ""
                )
        except ValueError as exc:
            raise ValueError(f"Bacalhau connection {self.bacalhau_conn_id!r}: {exc}") from None
        self._webui_url = (_extra(extras, "webui_url") or "").rstrip("/") or None
        self._s3_view = s3_view
        self._config = config
        return config

    def _missing_ok(self) -> bool:
        return self.bacalhau_conn_id == self.default_conn_name

    def client_config(self) -> ClientConfig:
        """Settings from the connection (read once per hook, blocking)."""
        if self._config is not None:
            return self._config
        try:
            conn = self.get_connection(self.bacalhau_conn_id)
        except AirflowNotFoundException:
            if not self._missing_ok():
                raise
            return self._adopt(None, {})
        return self._adopt(conn, conn.extra_dejson)

    async def async_client_config(self) -> ClientConfig:
        """Settings from the connection, read without blocking the event loop."""
        if self._config is not None:
            return self._config
        try:
            from airflow.providers.common.compat.connection import (
                get_async_connection,
                get_async_extra_dejson,
            )
        except ImportError:  # older common-compat (the 1.12 floor too): the blocking lookup in a thread
            from asgiref.sync import sync_to_async

            return await sync_to_async(self.client_config)()
        try:
            conn = await get_async_connection(self.bacalhau_conn_id, self)
        except AirflowNotFoundException:
            if not self._missing_ok():
                raise
            return self._adopt(None, {})
        return self._adopt(conn, await get_async_extra_dejson(conn))

    # -- clients --------------------------------------------------------------------------------

    def _in_namespace(self, config: ClientConfig, namespace: str | None) -> ClientConfig:
        # Name lookups are per namespace (GetJobByIDOrName in pkg/jobstore/boltdb/store.go: by name
        # in the request's namespace, then by ID in any); GET and DELETE bind ?namespace=
        # (BaseRequest, pkg/publicapi/apimodels/base_requests.go, v1.9.3).
        return dataclasses.replace(config, namespace=namespace) if namespace else config

    def get_client(self, namespace: str | None = None) -> BacalhauClient:
        """A blocking client; close it (or use ``with``) when done.

        :param namespace: ask in this namespace instead of the connection's.
        """
        return BacalhauClient(self._in_namespace(self.client_config(), namespace))

    def get_conn(self) -> BacalhauClient:
        return self.get_client()

    async def get_async_client(
        self, *, max_retries: int | None = None, namespace: str | None = None
    ) -> AsyncBacalhauClient:
        """An async client on the pool shared by every client of this config on this event loop.

        Closing it does not close the shared pool. ``max_retries`` overrides the connection's
        (a caller with its own retry loop passes 0) and ``namespace`` the connection's namespace,
        both without leaving the shared pool.
        """
        config = await self.async_client_config()
        client = AsyncBacalhauClient(
            self._in_namespace(config, namespace), http_client=shared_http_client(config)
        )
        return client if max_retries is None else client.with_max_retries(max_retries)

    def compute_s3_view(self) -> ComputeS3View:
        """S3 as this network's compute nodes reach it (``s3_endpoint``/``s3_region`` extras).

        This, not Airflow's AWS connection, is what goes into the job specs the provider writes:
        nodes fetch and publish with their own address and credentials.
        """
        if self._config is None:
            self.client_config()
        return self._s3_view

    def job_url(self, job_id: str) -> str | None:
        """Web UI page of a job, or ``None`` when the connection has no ``webui_url`` extra."""
        if self._config is None:
            self.client_config()
        if not self._webui_url or not job_id:
            return None
        return f"{self._webui_url}/jobs/{quote(job_id, safe='')}"

    def test_connection(self) -> tuple[bool, str]:
        """Reach the API and make one authenticated read, so bad credentials fail the test."""
        try:
            config = dataclasses.replace(self.client_config(), max_retries=0)
            with BacalhauClient(config) as client:
                client.alive()
                version = client.version()
                client.list_jobs(limit=1)
        except (BacalhauApiError, ValueError) as exc:
            return False, str(exc)
        return True, f"Connected to Bacalhau {version.get('GitVersion') or 'server'} at {config.base_url}"

    # -- connection form (Airflow 2 UI; Airflow 3 reads the same values from provider info) -----

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        behaviour = BACALHAU_UI_FIELD_BEHAVIOUR
        return {
            "hidden_fields": list(behaviour["hidden-fields"]),
            "relabeling": dict(behaviour["relabeling"]),
            "placeholders": dict(behaviour["placeholders"]),
        }

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        from wtforms import BooleanField, StringField

        try:
            from flask_appbuilder.fieldwidgets import BS3TextFieldWidget

            text_widget: dict[str, Any] = {"widget": BS3TextFieldWidget()}
        except ImportError:  # no FAB (Airflow 3 without the fab provider): plain inputs
            text_widget = {}
        widgets: dict[str, Any] = {}
        for name, field in BACALHAU_CONN_FIELDS.items():
            types = field["schema"]["type"]
            types = types if isinstance(types, list) else [types]
            if "boolean" in types:
                widgets[name] = BooleanField(field["label"], description=field.get("description", ""))
            else:
                widgets[name] = StringField(
                    field["label"], description=field.get("description", ""), **text_widget
                )
        return widgets
