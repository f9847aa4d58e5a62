# Two user-facing targets: `make test` and `make demo`. Everything else is set-up they call
# (`make lint` and `make docs` run first in `make test`, so a lint finding or a broken page fails CI).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: test demo docs
test: $(VENV)/.installed lint docs
	$(PY) -m airflow_provider_bacalhau.devstack engine -- $(PY) -m pytest $(PYTEST_ARGS)

demo: $(VENV)/.installed
	bash scripts/demo.sh

# Warnings are errors: a broken include, marker or reference fails the build.
docs: $(VENV)/.installed
	$(VENV)/bin/sphinx-build -W --keep-going -q -b html docs docs/_build/html

$(VENV)/.installed: pyproject.toml requirements.lock scripts/bootstrap.sh
	bash scripts/bootstrap.sh $(VENV)
	touch $@

# Lint, format and types (the first step of `make test`): ruff's and mypy's config is in pyproject.toml.
.PHONY: lint
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# Airflow compatibility lanes (docs/compat.rst): one cached venv each under .compat/.
# COMPAT_LANES picks lanes; PYTEST_ARGS goes to each lane's pytest.
COMPAT_LANES ?= airflow-2.11 airflow-3.0 lowest airflow-3.3
.PHONY: test-compat compat-lock
test-compat:
	@set -e; for lane in $(COMPAT_LANES); do bash scripts/compat.sh test $$lane $(PYTEST_ARGS); done

# CI's share (docs/compat.rst): the Airflow-facing tests in the lanes `make test` does not cover.
COMPAT_CI_LANES := airflow-2.11 airflow-3.0 lowest
COMPAT_CI_TESTS := tests/test_provider_info.py tests/test_link_job.py tests/test_hook_bacalhau.py \
	tests/test_trigger_kill.py tests/test_operator_dag.py tests/test_e2e_examples.py
.PHONY: test-compat-ci
test-compat-ci:
	@set -e; for lane in $(COMPAT_CI_LANES); do bash scripts/compat.sh test $$lane $(COMPAT_CI_TESTS); done

# Re-resolve the lanes' committed constraints (compat/<lane>.txt) after a dependency change.
compat-lock:
	bash scripts/compat.sh lock airflow-2.11 airflow-3.0 lowest
