"""Each layer imports only downward: the data plane between the hooks and the operators, and the
waiting package below the operators, the sensor and the trigger."""

from __future__ import annotations

import subprocess
import sys

PACKAGE = "airflow_provider_bacalhau"


def loaded_after(module: str) -> set[str]:
    """The provider's modules loaded by importing ``module`` in a fresh interpreter."""
    code = f"import sys, {module}\nprint('\\n'.join(m for m in sys.modules if m.startswith('{PACKAGE}.')))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return set(result.stdout.split())


def test_the_s3_hook_does_not_import_the_data_plane():
    assert not {m for m in loaded_after(f"{PACKAGE}.hooks.s3") if ".dataplane" in m}


def test_the_data_plane_imports_no_operator_sensor_trigger_or_waiting_module():
    upward = (".operators", ".sensors", ".triggers", ".waiting", ".links")
    for module in ("plane", "inputs"):
        loaded = loaded_after(f"{PACKAGE}.dataplane.{module}")
        assert f"{PACKAGE}.dataplane.{module}" in loaded  # the check looks at the right thing
        assert not {m for m in loaded if m.startswith(tuple(PACKAGE + u for u in upward))}


def test_the_package_loads_its_modules_on_first_use():
    loaded = loaded_after(f"{PACKAGE}.dataplane")
    assert not {m for m in loaded if m.startswith(f"{PACKAGE}.dataplane.")}
    code = f"from {PACKAGE}.dataplane import S3DataPlane, resolve_inputs; print('ok')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "ok", result.stderr


def test_waiting_sensor_and_trigger_import_no_operator_module():
    for module in ("waiting.completion", "waiting.loop", "sensors.job", "triggers.job"):
        loaded = loaded_after(f"{PACKAGE}.{module}")
        assert f"{PACKAGE}.{module}" in loaded
        assert not {m for m in loaded if m.startswith(f"{PACKAGE}.operators")}, module


def test_lineage_sits_below_the_data_plane_and_loads_no_openlineage():
    upward = (".hooks", ".dataplane", ".waiting", ".operators", ".sensors", ".triggers", ".links", ".client")
    for module in ("lineage.names", "lineage.assets"):
        code = f"import sys, {PACKAGE}.{module}\nprint('\\n'.join(m for m in sys.modules))"
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
        )
        loaded = set(result.stdout.split())
        assert f"{PACKAGE}.{module}" in loaded
        assert not {m for m in loaded if m.startswith(tuple(PACKAGE + u for u in upward))}, module
        assert not {m for m in loaded if m.split(".")[0] == "openlineage"}, module
