"""Provider registration and the connection form: Airflow 3 (provider info) and Airflow 2 (hook) agree."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import certifi
import pytest
from airflow_helpers import AIRFLOW_VERSION

from airflow_provider_bacalhau import get_provider_info
from airflow_provider_bacalhau.hooks.bacalhau import BacalhauHook

AIRFLOW = Path(sys.executable).with_name("airflow")


def bacalhau_connection_type() -> dict:
    (entry,) = [c for c in get_provider_info()["connection-types"] if c["connection-type"] == "bacalhau"]
    return entry


def test_airflow_providers_list_shows_the_package():
    # AIRFLOW_HOME and friends come from tests/conftest.py via os.environ.
    result = subprocess.run(
        [str(AIRFLOW), "providers", "list", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
    )
    assert result.returncode == 0, result.stderr
    # Some versions log to stdout before the JSON: the list is the line that starts it.
    listing = next(line for line in result.stdout.splitlines() if line.startswith("[{"))
    packages = {p["package_name"]: p for p in json.loads(listing)}
    assert "airflow-provider-bacalhau" in packages
    assert packages["airflow-provider-bacalhau"]["version"] == get_provider_info()["versions"][0]


def test_provider_info_fits_airflows_schema():
    import airflow
    import jsonschema

    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), schema)
    entry = bacalhau_connection_type()
    assert entry["hook-class-name"] == "airflow_provider_bacalhau.hooks.bacalhau.BacalhauHook"
    assert entry["hook-name"] == BacalhauHook.hook_name


@pytest.mark.skipif(
    AIRFLOW_VERSION[:2] == (3, 0),
    reason="Airflow 3.0 builds connection forms from hook classes with FAB's wtforms only (docs/compat.rst)",
)
def test_airflow_3_loads_the_connection_form_from_provider_info():
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    behaviour = manager.field_behaviours["bacalhau"]
    assert behaviour["hidden_fields"] == ["schema"]
    assert behaviour["relabeling"]["password"] == "API key, or password with a username"
    widgets = manager.connection_form_widgets
    for name in ("use_tls", "insecure", "ca_file", "webui_url", "namespace", "s3_endpoint", "s3_region"):
        assert f"extra__bacalhau__{name}" in widgets


def test_airflow_2_ui_field_behaviour_matches_provider_info():
    declared = bacalhau_connection_type()["ui-field-behaviour"]
    assert BacalhauHook.get_ui_field_behaviour() == {
        "hidden_fields": declared["hidden-fields"],
        "relabeling": declared["relabeling"],
        "placeholders": declared["placeholders"],
    }


def test_airflow_2_form_widgets_match_conn_fields(monkeypatch):
    """wtforms ships with Airflow 2's web server only, so a recording stand-in takes its place."""

    class Field:
        def __init__(self, label, description="", **kwargs):
            self.label, self.description, self.kwargs = label, description, kwargs

    stub = types.ModuleType("wtforms")
    stub.BooleanField = type("BooleanField", (Field,), {})
    stub.StringField = type("StringField", (Field,), {})
    monkeypatch.setitem(sys.modules, "wtforms", stub)

    widgets = BacalhauHook.get_connection_form_widgets()
    conn_fields = bacalhau_connection_type()["conn-fields"]
    assert list(widgets) == list(conn_fields)
    for name, field in conn_fields.items():
        widget = widgets[name]
        assert widget.label == field["label"]
        assert widget.description == field["description"]
        is_bool = "boolean" in field["schema"]["type"]
        assert type(widget).__name__ == ("BooleanField" if is_bool else "StringField")


@pytest.mark.parametrize(
    "name", ["use_tls", "insecure", "ca_file", "webui_url", "namespace", "s3_endpoint", "s3_region"]
)
def test_every_form_field_is_read_by_the_hook(monkeypatch, name):
    """A field on the form that the hook ignored would be a silent trap."""
    values = {
        "use_tls": "true",
        "insecure": "true",
        "ca_file": certifi.where(),  # the hook checks that it is a PEM bundle
        "webui_url": "http://ui",
        "namespace": "ns",
        "s3_endpoint": "http://seaweed.internal:8333",
        "s3_region": "eu-west-1",
    }
    monkeypatch.setenv("AIRFLOW_CONN_FORM_FIELD", json.dumps({"conn_type": "bacalhau", "host": "h"}))
    plain = BacalhauHook("form_field")
    plain_config, plain_url = plain.client_config(), plain.job_url("j")
    plain_view = plain.compute_s3_view()
    monkeypatch.setenv(
        "AIRFLOW_CONN_FORM_FIELD",
        json.dumps({"conn_type": "bacalhau", "host": "h", "extra": {name: values[name]}}),
    )
    hook = BacalhauHook("form_field")
    assert (hook.client_config(), hook.job_url("j"), hook.compute_s3_view()) != (
        plain_config,
        plain_url,
        plain_view,
    )
