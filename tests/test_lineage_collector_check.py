"""``collector_is_active()``: the same answer as Airflow's own collector, without importing boto3.

Each case runs in a fresh process with its own AIRFLOW_HOME and plugins folder: Airflow loads its
plugins once per process, and a resumed task asks this question in a process of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: A plugin that registers a hook-lineage reader, as the OpenLineage provider's does when enabled.
READER_PLUGIN = """
try:  # Airflow 3.1+
    from airflow.sdk.lineage import HookLineageReader
    from airflow.sdk.plugins_manager import AirflowPlugin
except ImportError:  # 2.11 and 3.0 (an older common-compat has no aliases for these)
    from airflow.lineage.hook import HookLineageReader
    from airflow.plugins_manager import AirflowPlugin

class ReaderPlugin(AirflowPlugin):
    name = "bacalhau_test_lineage_reader"
    hook_lineage_readers = [HookLineageReader]
"""

CHECK = """
import json, sys
import airflow
from airflow_provider_bacalhau.lineage import assets
active = assets.collector_is_active()
boto3_after_check = "boto3" in sys.modules
from airflow.providers.common.compat.lineage.hook import get_hook_lineage_collector
print(json.dumps({"active": active, "boto3": boto3_after_check,
                  "collector": type(get_hook_lineage_collector()).__name__}))
"""


def _check(tmp_path: Path, plugin: str | None) -> dict:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    if plugin:
        (plugins / "reader_plugin.py").write_text(textwrap.dedent(plugin))
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__OPENLINEAGE__DISABLED": "true",  # the installed OpenLineage plugin registers no reader
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    out = subprocess.run(
        [sys.executable, "-c", CHECK], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    ("plugin", "active", "collector"),
    [(None, False, "NoOpCollector"), (READER_PLUGIN, True, "HookLineageCollector")],
    ids=["no-reader", "reader-plugin"],
)
def test_agrees_with_airflows_collector_and_loads_no_boto3(tmp_path, plugin, active, collector):
    result = _check(tmp_path, plugin)
    assert result["active"] is active
    assert result["collector"] == collector  # what Airflow itself built afterwards
    # Building any collector imports the providers' asset factories (S3Hook, boto3): the check
    # must not, or every resumed task pays 0.2-0.5 s for nothing.
    assert result["boto3"] is False
