# Two user-facing targets: `make test` and `make demo`. Everything else is set-up they call
# (`make docs` builds the documentation; `make test` builds it first, so a broken page fails CI).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: test demo docs
test: $(VENV)/.installed docs
	$(PY) -m airflow_provider_bacalhau.devstack engine -- $(PY) -m pytest $(PYTEST_ARGS)

demo: $(VENV)/.installed
	bash scripts/demo.sh

# Warnings are errors: a broken include, marker or reference fails the build.
docs: $(VENV)/.installed
	$(VENV)/bin/sphinx-build -W --keep-going -q -b html docs docs/_build/html

$(VENV)/.installed: pyproject.toml requirements.lock scripts/bootstrap.sh
	bash scripts/bootstrap.sh $(VENV)
	touch $@
