"""ClientConfig (env vars as the Bacalhau CLI reads them), error mapping, and small core units."""

from __future__ import annotations

import email.utils
import inspect
import time

import httpx
import pytest
from test_client_fake_api import JOBS, FakeBacalhauApi, Reply, api_error, example_job, fake_api  # noqa: F401

from airflow_provider_bacalhau.client import AsyncBacalhauClient, BacalhauClient, ClientConfig
from airflow_provider_bacalhau.client.config import build_base_url
from airflow_provider_bacalhau.client.core import ENDPOINTS, retry_after_seconds
from airflow_provider_bacalhau.errors import BacalhauApiError

# -- environment variables --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "base_url", "verify"),
    [
        ({}, "http://127.0.0.1:1234", True),
        ({"BACALHAU_API_HOST": "0.0.0.0"}, "http://127.0.0.1:1234", True),
        (
            {"BACALHAU_API_HOST": "bacalhau.local", "BACALHAU_API_PORT": "9000"},
            "http://bacalhau.local:9000",
            True,
        ),
        (
            {"BACALHAU_API_HOST": "bacalhau.local", "BACALHAU_API_TLS_USETLS": "true"},
            "https://bacalhau.local:1234",
            True,
        ),
        ({"BACALHAU_API_HOST": "https://api.example.com"}, "https://api.example.com:1234", True),
        (
            {"BACALHAU_API_HOST": "https://api.example.com:8443", "BACALHAU_API_PORT": "1"},
            "https://api.example.com:8443",
            True,
        ),
        # The URL's scheme decides, not UseTLS.
        (
            {"BACALHAU_API_HOST": "http://api.example.com/", "BACALHAU_API_TLS_USETLS": "1"},
            "http://api.example.com:1234",
            True,
        ),
        # With a path it is not a URL; the CLI glues it in as a host ("http://http://...:1234"),
        # which no request can reach: refused, naming the field.
        ({"BACALHAU_API_HOST": "http://api.example.com/v1"}, "host", None),
        ({"BACALHAU_API_HOST": "http://[::1]:5000"}, "http://[::1]:5000", True),
        (
            {"BACALHAU_API_TLS_INSECURE": "T", "BACALHAU_API_TLS_USETLS": "TRUE"},
            "https://127.0.0.1:1234",
            False,
        ),
        ({"BACALHAU_API_TLS_USETLS": "false", "BACALHAU_API_PORT": " 4321 "}, "http://127.0.0.1:4321", True),
    ],
)
def test_from_env_builds_the_url_the_cli_would(env, base_url, verify):
    if verify is None:  # no usable URL: refused before any request
        with pytest.raises(ValueError, match=f"^{base_url}: "):
            build_base_url(env["BACALHAU_API_HOST"], 1234, False)
        return
    config = ClientConfig.from_env(env)
    assert config.base_url == base_url
    assert config.verify == verify


def test_from_env_credentials_and_ca_file(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    config = ClientConfig.from_env(
        {"BACALHAU_API_KEY": " key-123456789012345678 ", "BACALHAU_API_TLS_CAFILE": str(ca)}
    )
    assert config.api_key == "key-123456789012345678" and config.verify == str(ca)
    basic = ClientConfig.from_env(
        {"BACALHAU_API_USERNAME": "alice", "BACALHAU_API_PASSWORD": "pw-0123456789"}
    )
    assert (basic.username, basic.password, basic.api_key) == ("alice", "pw-0123456789", None)
    insecure_wins = ClientConfig.from_env(
        {"BACALHAU_API_TLS_CAFILE": str(ca), "BACALHAU_API_TLS_INSECURE": "1"}
    )
    assert insecure_wins.verify is False


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"BACALHAU_API_KEY": "k" * 20, "BACALHAU_API_USERNAME": "a"}, "BACALHAU_API_KEY"),
        ({"BACALHAU_API_KEY": "k" * 20, "BACALHAU_API_PASSWORD": "p" * 10}, "BACALHAU_API_KEY"),
        ({"BACALHAU_API_USERNAME": "alice"}, "BACALHAU_API_PASSWORD"),
        ({"BACALHAU_API_PASSWORD": "p" * 10}, "BACALHAU_API_USERNAME"),
        ({"BACALHAU_API_PORT": "http"}, "BACALHAU_API_PORT"),
        ({"BACALHAU_API_PORT": "70000"}, "BACALHAU_API_PORT"),
        ({"BACALHAU_API_TLS_USETLS": "yes please"}, "BACALHAU_API_TLS_USETLS"),
        ({"BACALHAU_API_TLS_CAFILE": "/nonexistent/ca.pem"}, "verify"),
    ],
)
def test_from_env_rejects_bad_settings_naming_the_variable(env, named):
    with pytest.raises(ValueError, match=named):
        ClientConfig.from_env(env)


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"api_key": "k" * 20, "username": "a", "password": "p" * 10}, "api_key"),
        ({"username": "alice"}, "password"),
        ({"password": "p" * 10}, "username"),
        ({"base_url": "127.0.0.1:1234"}, "base_url"),
        ({"base_url": "http://u:p@host:1"}, "base_url"),
        ({"timeout": 0}, "timeout"),
        ({"max_retries": -1}, "max_retries"),
    ],
)
def test_config_rejects_bad_combinations(kwargs, named):
    with pytest.raises(ValueError, match=named):
        ClientConfig(**kwargs)


def test_config_repr_hides_secrets_and_is_hashable():
    config = ClientConfig(api_key="very-secret-api-key-000")
    assert "very-secret" not in repr(config)
    assert hash(config) == hash(ClientConfig(api_key="very-secret-api-key-000"))


def test_clients_of_a_plain_http_api_load_no_ca_bundle(monkeypatch):
    """Every resume builds a client: for ``http://`` the CA bundle (25-45 ms) is wasted work."""
    import asyncio
    import ssl

    loads: list[str] = []
    # Every httpx (0.27 builds its own SSLContext, 0.28 asks ssl.create_default_context) loads the
    # bundle through this method.
    load_verify_locations = ssl.SSLContext.load_verify_locations

    def spy(self, *args, **kwargs):
        loads.append("ca")
        return load_verify_locations(self, *args, **kwargs)

    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", spy)
    config = ClientConfig(base_url="http://127.0.0.1:1234")
    BacalhauClient(config).close()
    asyncio.run(AsyncBacalhauClient(config).close())
    assert loads == []
    BacalhauClient(ClientConfig(base_url="https://127.0.0.1:1234")).close()
    assert loads == ["ca"]  # the spy sees httpx load it where TLS is spoken
    # https keeps the default verification (the CA bundle), unless told otherwise.
    assert ClientConfig(base_url="https://bacalhau.example:443").ssl_context() is True
    assert ClientConfig(base_url="https://bacalhau.example:443", verify=False).ssl_context() is False


# -- error bodies -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (
            api_error(404, "job not found: j-abc", "NotFound", RequestID="req-1", Hint="check the id"),
            {
                "status": 404,
                "code": "NotFound",
                "message": "job not found: j-abc",
                "hint": "check the id",
                "request_id": "req-1",
                "component": "JobStore",
            },
        ),
        (
            api_error(
                401, "unauthorized", "Unauthorized", Component="Authorizer", Details={"reason": "no token"}
            ),
            {
                "status": 401,
                "code": "Unauthorized",
                "message": "unauthorized (no token)",
                "component": "Authorizer",
            },
        ),
        (
            Reply(
                403, {"Error": "Client version is outdated", "MinVersion": "1.4.0", "ClientVersion": "1.0.0"}
            ),
            {
                "status": 403,
                "code": None,
                "message": "Client version is outdated (server requires client version >= 1.4.0)",
            },
        ),
        (
            Reply(400, {"Error": "Invalid client version v-bad"}),
            {"status": 400, "code": None, "message": "Invalid client version v-bad"},
        ),
        (Reply(503, "Server Timeout!"), {"status": 503, "code": None, "message": "Server Timeout!"}),
        (
            Reply(502, "", {"X-Request-ID": "rid-9"}),
            {"status": 502, "message": "Bad Gateway", "request_id": "rid-9"},
        ),
        (
            api_error(
                500, "no changes detected for new job spec. Job Name: 'x', Job Id: 'j-1'", Hint="Use --force"
            ),
            {"status": 500, "code": None, "is_no_changes": True, "hint": "Use --force"},
        ),
    ],
)
def test_error_bodies_become_bacalhau_api_errors(fake_api, reply, expected):
    fake_api.script("GET", f"{JOBS}/j-abc", reply)
    with (
        BacalhauClient(ClientConfig(base_url=fake_api.url, max_retries=0)) as client,
        pytest.raises(BacalhauApiError) as caught,
    ):
        client.get_job("j-abc")
    error = caught.value
    assert (error.method, error.path) == ("GET", f"{JOBS}/j-abc")
    for attribute, value in expected.items():
        assert getattr(error, attribute) == value, attribute
    assert str(error).startswith(f"GET {JOBS}/j-abc: ")


def test_non_json_success_is_a_clear_error(fake_api):
    fake_api.script("GET", "/api/v1/agent/version", Reply(200, "<html>proxy login</html>"))
    with (
        BacalhauClient(ClientConfig(base_url=fake_api.url)) as client,
        pytest.raises(BacalhauApiError, match="expected a JSON answer"),
    ):
        client.version()


# -- core units -------------------------------------------------------------------------------------


def test_sync_and_async_clients_expose_the_same_methods():
    for name in ENDPOINTS:
        sync_method, async_method = getattr(BacalhauClient, name), getattr(AsyncBacalhauClient, name)
        assert inspect.signature(sync_method) == inspect.signature(async_method)
        assert inspect.iscoroutinefunction(async_method) and not inspect.iscoroutinefunction(sync_method)
    assert str(inspect.signature(BacalhauClient.get_results).return_annotation) == "list[dict[str, Any]]"


def test_submit_is_retried_when_the_connection_never_opened():
    attempts = []

    def handler(request: httpx.Request) -> httpx.Response:
        attempts.append(request)
        if len(attempts) == 1:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200, json={"JobID": "j-1"})

    config = ClientConfig(backoff=0.001)
    with BacalhauClient(config, http_client=httpx.Client(transport=httpx.MockTransport(handler))) as client:
        assert client.submit_job(example_job(name=None))["JobID"] == "j-1"
    assert len(attempts) == 2


def test_retry_after_accepts_seconds_and_http_dates():
    assert retry_after_seconds(httpx.Response(429, headers={"Retry-After": "3"})) == 3
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 < retry_after_seconds(httpx.Response(429, headers={"Retry-After": later})) <= 30
    assert retry_after_seconds(httpx.Response(429, headers={"Retry-After": "soon"})) is None


def test_job_argument_is_checked():
    with BacalhauClient(ClientConfig()) as client:
        with pytest.raises(ValueError, match="job"):
            client.submit_job(["not", "a", "job"])
        with pytest.raises(ValueError, match="job"):
            client.submit_job({"Job": example_job()})
        with pytest.raises(ValueError, match="job_id_or_name"):
            client.get_job("")
