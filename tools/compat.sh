#!/usr/bin/env bash
# `make compat [ULTRALYTICS=8.4.150]`: install this package as a user does into their own environment
# (a venv that already holds torch and Ultralytics; `pip install` of the repository, no lock, no
# Pillow-SIMD), then run the tests that do not depend on exact library builds: the parity tests against
# that Ultralytics, the unit tests, and the Ultralytics integration tests (FastDetectionTrainer training).
# The batch digests are left out: they are recorded for the locked versions.
set -euo pipefail
cd "$(dirname "$0")/.."
ULTRA=${1:-8.4.150}
DIR=${COMPAT_VENV:-/tmp/yolo-loader-compat-$ULTRA}
PY=${PYTHON:-python3.11}
rm -rf "$DIR"
"$PY" -m venv "$DIR"
PIP() { "$DIR/bin/python" -m pip "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }
export PIP_DISABLE_PIP_VERSION_CHECK=1
echo "[compat] $DIR: torch, then ultralytics==$ULTRA, then this repository with plain pip"
PIP install -q "torch==2.14.1" "torchvision==0.29.1"   # what lies on this machine family's disk
PIP install -q "ultralytics==$ULTRA"
PIP install -q . pytest pytest-timeout pytest-benchmark
"$DIR/bin/python" tools/envcheck.py report
# Run from a copy of the tests only, so `loader` is the installed package, not this folder.
work=$(mktemp -d)
cp -r tests pyproject.toml "$work"/
cd "$work"
"$DIR/bin/python" -c "import loader, integration, ultralytics; print('[compat] loader from', loader.__file__, '| ultralytics', ultralytics.__version__)"
"$DIR/bin/python" -m pytest -q -p no:cacheprovider tests/parity tests/unit tests/integration/test_ultralytics_integration.py \
  ${PYTEST_ARGS:-}
