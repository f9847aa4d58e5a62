"""What ``airflow providers list`` and the connection UI learn about this package."""

from __future__ import annotations

import copy

from airflow_provider_bacalhau import __version__

PACKAGE = "airflow_provider_bacalhau"

# The connection form, declared once. Airflow 3 reads it from provider info ("conn-fields",
# "ui-field-behaviour"); Airflow 2 asks BacalhauHook.get_connection_form_widgets() and
# get_ui_field_behaviour(), which are built from these same two values.
BACALHAU_CONN_FIELDS: dict[str, dict] = {
    "use_tls": {
        "label": "Use TLS",
        "description": "Connect with https when Host is a bare host name (a URL's scheme wins).",
        "schema": {"type": ["boolean", "null"], "default": False},
    },
    "insecure": {
        "label": "Skip TLS verification",
        "description": "Accept any server certificate (self-signed test servers only).",
        "schema": {"type": ["boolean", "null"], "default": False},
    },
    "ca_file": {
        "label": "CA file",
        "description": "Path of a PEM CA bundle that signed the server certificate.",
        "schema": {"type": ["string", "null"]},
    },
    "webui_url": {
        "label": "Web UI URL",
        "description": "Base URL of the Bacalhau Web UI, for the job link on task instances.",
        "schema": {"type": ["string", "null"], "format": "url"},
    },
    "namespace": {
        "label": "Namespace",
        "description": "Bacalhau namespace of submitted jobs and lookups (server default: default).",
        "schema": {"type": ["string", "null"]},
    },
    "s3_endpoint": {
        "label": "S3 endpoint (as compute nodes see it)",
        "description": "S3 URL the compute nodes reach, written into the job specs the provider "
        "builds; empty for AWS or the nodes' default. Not the Airflow AWS "
        "connection's endpoint unless both sides reach S3 at that same address.",
        "schema": {"type": ["string", "null"], "format": "url"},
    },
    "s3_region": {
        "label": "S3 region (as compute nodes see it)",
        "description": "Region written into the S3 inputs and publishers the provider builds; "
        "empty for the nodes' default.",
        "schema": {"type": ["string", "null"]},
    },
}

BACALHAU_UI_FIELD_BEHAVIOUR: dict[str, object] = {
    "hidden-fields": ["schema"],
    "relabeling": {
        "host": "Host or URL",
        "login": "Username (basic auth)",
        "password": "API key, or password with a username",
    },
    "placeholders": {
        "host": "127.0.0.1, or https://bacalhau.example.com:1234",
        "port": "1234",
        "login": "empty when the password field holds an API key",
        "password": "API key (20+ characters) or basic-auth password",
    },
}


def provider_info() -> dict:
    return {
        "package-name": "airflow-provider-bacalhau",
        "name": "Bacalhau",
        "description": (
            "Run Bacalhau compute-over-data jobs from Airflow: S3 staging, publishing and chaining."
        ),
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Bacalhau",
                "external-doc-url": "https://docs.bacalhau.org/",
                "tags": ["software"],
            }
        ],
        "hooks": [
            {
                "integration-name": "Bacalhau",
                "python-modules": [f"{PACKAGE}.hooks.bacalhau", f"{PACKAGE}.hooks.s3"],
            }
        ],
        "operators": [
            {
                "integration-name": "Bacalhau",
                "python-modules": [f"{PACKAGE}.operators.job", f"{PACKAGE}.operators.s3"],
            }
        ],
        "sensors": [{"integration-name": "Bacalhau", "python-modules": [f"{PACKAGE}.sensors.job"]}],
        "triggers": [{"integration-name": "Bacalhau", "python-modules": [f"{PACKAGE}.triggers.job"]}],
        "extra-links": [f"{PACKAGE}.links.job.BacalhauJobLink"],
        "connection-types": [
            {
                "hook-class-name": f"{PACKAGE}.hooks.bacalhau.BacalhauHook",
                "connection-type": "bacalhau",
                "hook-name": "Bacalhau",
                "ui-field-behaviour": copy.deepcopy(BACALHAU_UI_FIELD_BEHAVIOUR),
                "conn-fields": copy.deepcopy(BACALHAU_CONN_FIELDS),
            }
        ],
    }
