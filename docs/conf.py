"""Sphinx configuration of the airflow-provider-bacalhau documentation.

Built by ``make docs`` (``sphinx-build -W --keep-going -b html docs docs/_build/html``): every
warning, such as a broken ``literalinclude`` or ``:ref:``, fails the build. No extension needs the
network and nothing is imported from the package, so the build is fast and works offline.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

_PYPROJECT = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())

project = "airflow-provider-bacalhau"
author = "airflow-provider-bacalhau contributors"
copyright = "the airflow-provider-bacalhau contributors, Apache-2.0"
release = _PYPROJECT["project"]["version"]
version = release

extensions: list[str] = []
exclude_patterns = ["_build"]
root_doc = "index"
# An undefined :ref:/:doc: target or a missing literalinclude file or marker is a warning, and -W
# fails it. Not nitpicky: there is no API reference (no autodoc), so :class: and friends have
# nothing to resolve to and render as plain code.

html_theme = "alabaster"
html_title = f"{project} {release}"
html_theme_options = {
    "description": "Apache Airflow provider for Bacalhau",
    "fixed_sidebar": True,
    "page_width": "1320px",
    "sidebar_width": "280px",
    # Room for the example DAGs' 110-character lines without a scroll bar.
    "body_max_width": "1000px",
}
html_static_path: list[str] = []
