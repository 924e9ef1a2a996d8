#!/usr/bin/env bash
# `make lock`: re-resolve every dependency (newest versions pyproject.toml allows), rewrite
# requirements.lock, regenerate the batch digests on the new versions, and run the tests.
# The old venv is kept as .venv.before-lock until the new one is built, and put back if the build fails.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
LOCK_FILE=${LOCK_FILE:-requirements.lock}

rm -rf "$VENV.before-lock"
[[ -d "$VENV" ]] && mv "$VENV" "$VENV.before-lock"
if ! UNLOCKED=1 VENV="$VENV" bash tools/bootstrap.sh; then
  echo "[lock] resolving failed; the previous venv is back" >&2
  rm -rf "$VENV"; [[ -d "$VENV.before-lock" ]] && mv "$VENV.before-lock" "$VENV"
  exit 1
fi
{
  echo "# Every distribution the README's commands install, at one version each: a pip constraints file."
  echo "# Written by \`make lock\` (tools/lock.sh) on $(date -u +%Y-%m-%d); honoured by tools/bootstrap.sh."
  echo "# python: $("$VENV/bin/python" -c 'import platform; print(platform.python_version(), platform.system(), platform.machine())')"
  echo "# pillow and pillow-simd are both here: bootstrap installs pillow, then swaps it for pillow-simd."
  sort -f "$VENV/.resolved.txt"
} > "$LOCK_FILE"
rm -rf "$VENV.before-lock"
# The same venv, now stamped against the new lock (verifies every version; installs nothing new).
VENV="$VENV" bash tools/bootstrap.sh
echo "[lock] regenerating the batch digests on the new versions"
YOLO_LOADER_WRITE_DIGESTS=1 "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/engine/test_digests.py
"$VENV/bin/python" -m pytest ${PYTEST_ARGS:-}
echo "[lock] done: review and commit $LOCK_FILE and tests/engine/data/batch_digests.json"
