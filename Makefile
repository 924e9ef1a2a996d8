# The two commands of the README. Each one creates or updates .venv only when needed.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: bench test venv clean-venv

venv:
	@VENV=$(VENV) bash tools/bootstrap.sh

## bench: the main job: compare loaders on the built-in demo set (ARGS="..." passes options)
bench: venv
	$(PY) -m integration.cli bench $(ARGS)

## test: the test suite (PYTEST_ARGS="..." passes options)
test: venv
	$(PY) -m pytest $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)
