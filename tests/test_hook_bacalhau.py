"""BacalhauHook: Airflow connections (AIRFLOW_CONN_* JSON) to clients, against a real HTTP server."""

from __future__ import annotations

import base64
import json
import subprocess
import sys

import pytest
from test_client_fake_api import JOBS, FakeBacalhauApi, Reply, api_error, fake_api, tls_api, tls_material  # noqa: F401

from airflow_provider_bacalhau.client import ClientConfig
from airflow_provider_bacalhau.devstack.procs import free_port
from airflow_provider_bacalhau.hooks.bacalhau import AirflowNotFoundException, BacalhauHook

API_KEY = "hook-api-key-0123456789abcdef"


@pytest.fixture
def anyio_backend():
    return "asyncio"


def set_conn(monkeypatch, conn_id: str, **fields) -> None:
    extra = fields.pop("extra", None)
    payload = {"conn_type": "bacalhau", **fields}
    if extra is not None:
        payload["extra"] = extra
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(payload))


def script_healthy(api: FakeBacalhauApi) -> None:
    api.script("GET", "/api/v1/agent/alive", Reply(200, {"Status": "OK"}))
    api.script("GET", "/api/v1/agent/version", Reply(200, {"GitVersion": "v1.9.3"}))
    api.script("GET", JOBS, Reply(200, {"Items": [], "NextToken": ""}))


def test_hook_attributes_and_lazy_connection_read():
    assert (
        BacalhauHook.conn_type,
        BacalhauHook.default_conn_name,
        BacalhauHook.conn_name_attr,
        BacalhauHook.hook_name,
    ) == (
        "bacalhau",
        "bacalhau_default",
        "bacalhau_conn_id",
        "Bacalhau",
    )
    hook = BacalhauHook(bacalhau_conn_id="not_defined_anywhere")  # no lookup yet: must not raise
    with pytest.raises(AirflowNotFoundException):
        hook.client_config()


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"host": "bacalhau.local"},
            {"base_url": "http://bacalhau.local:1234", "api_key": None, "username": None},
        ),
        ({"host": "https://api.example.com", "port": 8443}, {"base_url": "https://api.example.com:8443"}),
        ({"host": "https://api.example.com:9443", "port": 1}, {"base_url": "https://api.example.com:9443"}),
        ({"host": "0.0.0.0", "password": API_KEY}, {"base_url": "http://127.0.0.1:1234", "api_key": API_KEY}),
        (
            {"host": "h", "login": "alice", "password": "pw-0123456789"},
            {"username": "alice", "password": "pw-0123456789", "api_key": None},
        ),
        (
            {
                "host": "h",
                "extra": {"use_tls": True, "insecure": "true", "namespace": "team", "timeout": "5"},
            },
            {"base_url": "https://h:1234", "verify": False, "namespace": "team", "timeout": 5.0},
        ),
        ({"host": "h", "extra": {"extra__bacalhau__use_tls": "1"}}, {"base_url": "https://h:1234"}),
    ],
)
def test_connection_fields_become_client_config(monkeypatch, fields, expected):
    set_conn(monkeypatch, "bac_cfg", **fields)
    config = BacalhauHook("bac_cfg").client_config()
    for name, value in expected.items():
        assert getattr(config, name) == value, name


def test_ca_file_extra(monkeypatch, tls_material):
    set_conn(
        monkeypatch, "bac_ca", host="h", extra={"use_tls": "true", "ca_file": str(tls_material.cert_file)}
    )
    assert BacalhauHook("bac_ca").client_config().verify == str(tls_material.cert_file)


def test_bad_connection_is_a_value_error_naming_the_connection(monkeypatch):
    set_conn(monkeypatch, "bac_bad", host="h", login="alice")  # username without password
    with pytest.raises(ValueError, match="bac_bad.*password"):
        BacalhauHook("bac_bad").client_config()
    set_conn(monkeypatch, "bac_bad2", host="h", extra={"use_tls": "maybe"})
    with pytest.raises(ValueError, match="use_tls"):
        BacalhauHook("bac_bad2").client_config()


def test_compute_side_s3_view_comes_from_the_extras(monkeypatch):
    set_conn(
        monkeypatch,
        "bac_s3",
        host="h",
        extra={"s3_endpoint": "http://seaweed.nodes:8333", "s3_region": "eu-west-1"},
    )
    view = BacalhauHook("bac_s3").compute_s3_view()
    assert (view.endpoint, view.region) == ("http://seaweed.nodes:8333", "eu-west-1")
    set_conn(
        monkeypatch, "bac_s3_airflow2", host="h", extra={"extra__bacalhau__s3_endpoint": "https://s3.example"}
    )
    assert BacalhauHook("bac_s3_airflow2").compute_s3_view().endpoint == "https://s3.example"
    set_conn(monkeypatch, "bac_no_s3", host="h")
    assert BacalhauHook("bac_no_s3").compute_s3_view().endpoint == ""  # AWS or the nodes' default
    set_conn(monkeypatch, "bac_bad_s3", host="h", extra={"s3_endpoint": "seaweed:8333"})
    with pytest.raises(ValueError, match="bac_bad_s3.*s3_endpoint: must be a URL"):
        BacalhauHook("bac_bad_s3").compute_s3_view()
    from airflow_provider_bacalhau.hooks import ComputeS3View

    assert view == ComputeS3View("http://seaweed.nodes:8333", "eu-west-1")


def test_missing_default_connection_falls_back_to_cli_environment(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_BACALHAU_DEFAULT", raising=False)
    monkeypatch.setenv("BACALHAU_API_HOST", "https://from-env.example")
    monkeypatch.setenv("BACALHAU_API_KEY", API_KEY)
    config = BacalhauHook().client_config()
    assert config == ClientConfig(base_url="https://from-env.example:1234", api_key=API_KEY)


def test_get_client_talks_to_the_server_with_the_api_key(monkeypatch, fake_api):
    set_conn(monkeypatch, "bac_http", host=fake_api.url, password=API_KEY)
    fake_api.script("GET", f"{JOBS}/j-1", Reply(200, {"Job": {"ID": "j-1"}}))
    with BacalhauHook("bac_http").get_client() as client:
        assert client.get_job("j-1")["Job"]["ID"] == "j-1"
    assert fake_api.requests[0].headers["authorization"] == f"Bearer {API_KEY}"


def test_job_url(monkeypatch):
    set_conn(monkeypatch, "bac_ui", host="h", extra={"webui_url": "http://ui.example:8438/"})
    assert BacalhauHook("bac_ui").job_url("j-1") == "http://ui.example:8438/jobs/j-1"
    set_conn(monkeypatch, "bac_no_ui", host="h")
    assert BacalhauHook("bac_no_ui").job_url("j-1") is None


@pytest.mark.anyio
async def test_async_client_reads_the_connection_and_shares_the_pool(monkeypatch, fake_api):
    set_conn(
        monkeypatch,
        "bac_async",
        host="127.0.0.1",
        port=fake_api.port,
        login="alice",
        password="pw-0123456789",
    )
    fake_api.script("GET", "/api/v1/agent/alive", Reply(200, {"Status": "OK"}))
    first = await BacalhauHook("bac_async").get_async_client()
    second = await BacalhauHook("bac_async").get_async_client()
    assert first._http is second._http
    assert await first.alive() == {"Status": "OK"}
    await first.close()
    assert await second.alive() == {"Status": "OK"}  # closing one client left the pool open
    expected = "Basic " + base64.b64encode(b"alice:pw-0123456789").decode()
    assert [r.headers["authorization"] for r in fake_api.requests] == [expected, expected]


def test_test_connection_succeeds_against_a_healthy_server(monkeypatch, fake_api):
    set_conn(monkeypatch, "bac_ok", host=fake_api.url, password=API_KEY)
    script_healthy(fake_api)
    ok, message = BacalhauHook("bac_ok").test_connection()
    assert ok, message
    assert "v1.9.3" in message
    assert [r.path for r in fake_api.requests] == ["/api/v1/agent/alive", "/api/v1/agent/version", JOBS]


def test_test_connection_fails_on_bad_credentials(monkeypatch, fake_api):
    set_conn(monkeypatch, "bac_401", host=fake_api.url, password=API_KEY)
    script_healthy(fake_api)
    fake_api.script("GET", JOBS, api_error(401, "invalid API key", "Unauthorized", Component="Authorizer"))
    ok, message = BacalhauHook("bac_401").test_connection()
    assert not ok
    assert "401" in message and "Unauthorized" in message
    assert API_KEY not in message


def test_test_connection_fails_when_unreachable(monkeypatch):
    set_conn(monkeypatch, "bac_down", host="127.0.0.1", port=free_port())
    ok, message = BacalhauHook("bac_down").test_connection()
    assert not ok and "cannot reach Bacalhau" in message


def test_hooks_package_imports_lazily():
    code = (
        "import sys\n"
        "import airflow_provider_bacalhau.hooks, airflow_provider_bacalhau.provider_info\n"
        "assert not [m for m in sys.modules\n"
        "            if m == 'airflow' or m.startswith('airflow_provider_bacalhau.hooks.')]\n"
        "from airflow_provider_bacalhau.hooks import BacalhauHook\n"
        "assert 'airflow_provider_bacalhau.hooks.s3' not in sys.modules\n"
        "assert 'boto3' not in sys.modules\n"
        "import airflow_provider_bacalhau.hooks as hooks\n"
        "try:\n"
        "    hooks.NoSuchHook\n"
        "except AttributeError:\n"
        "    print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip().endswith("ok"), result.stderr
