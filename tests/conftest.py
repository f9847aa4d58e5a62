"""Test set-up shared by the whole suite.

Airflow reads its configuration at import time, so the environment is set here, before any test
module imports Airflow: a private AIRFLOW_HOME with a SQLite DB, no example DAGs.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="bacalhau-provider-airflow-")
os.environ["AIRFLOW_HOME"] = _AIRFLOW_HOME
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "example_dags")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")

# The devstack's fixtures (`s3_server`, `devstack`, `devstack_env`) for every test module.
pytest_plugins = ["airflow_provider_bacalhau.devstack.testing"]
