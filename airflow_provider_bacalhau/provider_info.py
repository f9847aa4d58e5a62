"""What ``airflow providers list`` and the connection UI learn about this package."""

from __future__ import annotations

from airflow_provider_bacalhau import __version__

PACKAGE = "airflow_provider_bacalhau"


def provider_info() -> dict:
    return {
        "package-name": "airflow-provider-bacalhau",
        "name": "Bacalhau",
        "description": "Run Bacalhau compute-over-data jobs from Airflow: S3 staging, publishing and chaining.",
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
                # "ui-field-behaviour" and "conn-fields" are filled from the hook (one source).
            }
        ],
    }
