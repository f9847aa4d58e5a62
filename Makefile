# Two user-facing targets: `make test` and `make demo`. Everything else is set-up they call.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: test demo
test: $(VENV)/.installed
	$(PY) -m airflow_provider_bacalhau.devstack engine -- $(PY) -m pytest $(PYTEST_ARGS)

demo: $(VENV)/.installed
	bash scripts/demo.sh

$(VENV)/.installed: pyproject.toml requirements.lock scripts/bootstrap.sh
	bash scripts/bootstrap.sh $(VENV)
	touch $@
