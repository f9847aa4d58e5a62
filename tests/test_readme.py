"""The README is the front door: its links lead somewhere and its example DAG runs.

The docs themselves are checked by ``make docs`` (Sphinx with warnings as errors), which
``make test`` runs before the suite.
"""

from __future__ import annotations

import re
from pathlib import Path

import e2e_helpers as e2e
import pytest
from airflow_helpers import airflow_db  # noqa: F401  (fixture)

README = e2e.REPO / "README.md"
# [text](target): inline Markdown links; images are links too.
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def readme_section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def test_every_relative_link_in_the_readme_resolves():
    targets = LINK.findall(README.read_text())
    relative = [t for t in targets if not re.match(r"[a-z]+:", t)]
    assert relative, "the README links into docs/"
    missing = [t for t in relative if not (README.parent / t.split("#", 1)[0]).exists()]
    assert not missing, f"README links to files that do not exist: {missing}"


def test_the_readme_keeps_the_two_commands():
    block = readme_section("Two commands")
    assert "make demo   # brings up the local stack, runs the example S3 pipeline end to end" in block
    assert "make test   # creates .venv, installs the locked dependencies" in block


@pytest.mark.docker
@pytest.mark.slow
def test_the_readme_example_dag_runs_on_the_devstack(devstack_env, airflow_db, tmp_path, capfd):  # noqa: F811
    (code,) = re.findall(r"```python\n(.*?)```", readme_section("A short example"), re.DOTALL)
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "a.txt").write_text("one\ntwo\nthree\n")
    (inputs / "b.txt").write_text("only line\n")
    out = tmp_path / "out"
    # The example's local paths, pointed at this test's directories; nothing else changes.
    assert '"/data/in/"' in code and '"/data/out/' in code
    dag_file = tmp_path / "readme_example.py"
    dag_file.write_text(code.replace('"/data/in/"', f'"{inputs}/"').replace('"/data/out/', f'"{out}/'))
    e2e.ensure_bucket(devstack_env, e2e.EXAMPLE_BUCKET)

    dag = e2e.load_dag(dag_file, "bacalhau_count_lines", sync=True)
    run = e2e.run_dag(dag)
    log = capfd.readouterr().out

    assert run.state == "success", e2e.tail(log)
    e2e.assert_deferral(log, True)
    (fetched,) = e2e.xcom(run, "fetch")
    counts = {
        Path(name).name: int(n)
        for line in min(Path(fetched).rglob("counts.txt")).read_text().splitlines()
        for n, name in [line.split()]
        if name != "total"
    }
    assert counts == {"a.txt": 3, "b.txt": 1}
