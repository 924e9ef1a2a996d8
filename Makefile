# The two commands of the README (bench, test) and the upkeep of the environment they run in.
# Each one creates or updates .venv only when needed, at the versions of requirements.lock.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: bench test venv lock digests compat clean-venv

venv:
	@VENV=$(VENV) bash tools/bootstrap.sh

## bench: the main job: compare loaders on the built-in demo set (ARGS="..." passes options)
bench: venv
	$(PY) -m integration.cli bench $(ARGS)

## test: the test suite (PYTEST_ARGS="..." passes options)
test: venv
	$(PY) -m pytest $(PYTEST_ARGS)

## lock: re-resolve every dependency, rewrite requirements.lock, regenerate the digests, run the tests
lock:
	@VENV=$(VENV) bash tools/lock.sh

## digests: record the batch digests again on the installed versions (after a deliberate change)
digests: venv
	YOLO_LOADER_WRITE_DIGESTS=1 $(PY) -m pytest -q -p no:cacheprovider tests/engine/test_digests.py

## compat: this package installed with pip (no lock) beside another Ultralytics, in a scratch venv
## (ULTRALYTICS=8.4.150 by default: the lowest pyproject.toml allows)
compat:
	@bash tools/compat.sh $(ULTRALYTICS)

clean-venv:
	rm -rf $(VENV)
