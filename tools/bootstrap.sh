#!/usr/bin/env bash
# Create or update the repo-local virtual environment in .venv, only when needed, at the versions of
# requirements.lock.
#
# Why a script and not a bare `pip install -e .`:
#   * every distribution is installed at its locked version (a pip constraints file: pip is what finds
#     torch 2.14.1 on this machine family's disk, where uv and poetry would download several GB of CUDA
#     wheels), and the result is checked against the lock: two clones test and measure the same software;
#   * Pillow-SIMD must replace Pillow *after* every dependency is resolved (Ultralytics pulls Pillow;
#     Pillow-SIMD installs under another name), as Pillow-SIMD's own docs recommend; the lock holds both
#     versions; a failed build falls back to Pillow, loudly;
#   * exactly one OpenCV wheel may be installed.
# The environment is updated when pyproject.toml, setup.py, the C kernel, requirements.lock or this script
# changes (stamp).
#
#   UNLOCKED=1   resolve afresh (newest versions pyproject.toml allows); `make lock` uses it
#   PYTHON=...   the interpreter (default python3.11, the lock's)
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
LOCK_FILE=${LOCK_FILE:-requirements.lock}
UNLOCKED=${UNLOCKED:-0}
# Used only without the lock (the lock pins them otherwise).
TORCH_PIN=${TORCH_PIN:-"torch==2.14.1 torchvision==0.29.1"}
PILLOW_SIMD_PIN=${PILLOW_SIMD_PIN:-"pillow-simd==12.1.1.post0"}

if [[ "$UNLOCKED" == 1 ]]; then
  stamp_src="unlocked-$(cat pyproject.toml setup.py loader/kernels/*.c loader/kernels/*.h tools/bootstrap.sh tools/envcheck.py | sha256sum | cut -c1-16)"
else
  [[ -f "$LOCK_FILE" ]] || { echo "[bootstrap] ERROR: $LOCK_FILE is missing (make lock writes it)" >&2; exit 2; }
  stamp_src=$(cat pyproject.toml setup.py loader/kernels/*.c loader/kernels/*.h tools/bootstrap.sh tools/envcheck.py "$LOCK_FILE" | sha256sum | cut -c1-16)
fi
stamp_file="$VENV/.bootstrap-stamp"
if [[ -x "$VENV/bin/python" && -f "$stamp_file" && "$(cat "$stamp_file")" == "$stamp_src" ]]; then
  exit 0
fi

if [[ "$UNLOCKED" == 1 ]]; then
  "$PY" tools/envcheck.py python
else
  "$PY" tools/envcheck.py python --lock "$LOCK_FILE"
fi
echo "[bootstrap] preparing $VENV (python: $($PY --version 2>&1); $([[ "$UNLOCKED" == 1 ]] && echo "UNLOCKED: resolving afresh" || echo "versions from $LOCK_FILE"))"
[[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
export PIP_DISABLE_PIP_VERSION_CHECK=1
# pip, minus the noise of this machine family's local find-links folders
PIP() { "$VENV/bin/python" -m pip "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }
PIP="PIP"
if [[ "$UNLOCKED" == 1 ]]; then
  $PIP install -q --upgrade pip setuptools wheel
  # shellcheck disable=SC2086
  $PIP install -q $TORCH_PIN
  $PIP install -q -e ".[dev]"
else
  $PIP install -q -c "$LOCK_FILE" --upgrade pip setuptools wheel
  $PIP install -q -c "$LOCK_FILE" -e ".[dev]"
  # An existing venv converges on the lock: drop what the lock no longer names.
  extra=$("$VENV/bin/python" - "$LOCK_FILE" <<'PYEOF'
import sys
sys.path.insert(0, "tools")
import envcheck
want = envcheck.read_lock(__import__("pathlib").Path(sys.argv[1]))
print(" ".join(n for k, (n, _) in envcheck.installed().items() if k not in want and k not in envcheck.ALTERNATIVES))
PYEOF
)
  if [[ -n "$extra" ]]; then
    echo "[bootstrap] removing what the lock does not name: $extra"
    # shellcheck disable=SC2086
    $PIP uninstall -y -q $extra
  fi
fi

# One OpenCV build only: Ultralytics asks for opencv-python; drop any other flavour.
for other in opencv-python-headless opencv-contrib-python opencv-contrib-python-headless; do
  if $PIP show -q "$other" >/dev/null 2>&1; then
    echo "[bootstrap] removing $other (one OpenCV build only)"
    $PIP uninstall -y -q "$other"
  fi
done

# What pip resolved, before the Pillow swap: `make lock` turns it into requirements.lock.
"$VENV/bin/python" tools/envcheck.py freeze > "$VENV/.resolved.txt"

# Pillow -> Pillow-SIMD (AVX2 where the CPU has it). Any install that resolves Ultralytics'
# dependencies brings Pillow back over the shared PIL folder, so swap whenever Pillow is present.
if [[ "$UNLOCKED" != 1 ]]; then
  simd_line=$(grep -iE '^pillow-simd==' "$LOCK_FILE" || true)
  [[ -n "$simd_line" ]] && PILLOW_SIMD_PIN=$simd_line
fi
if [[ "${NO_PILLOW_SIMD:-0}" != 1 ]] && $PIP show -q pillow >/dev/null 2>&1; then
  cflags="${CFLAGS:-}"
  if grep -q avx2 /proc/cpuinfo 2>/dev/null; then cflags="$cflags -mavx2"; fi
  $PIP uninstall -y -q pillow pillow-simd >/dev/null 2>&1 || true
  # shellcheck disable=SC2086
  if CFLAGS="$cflags" $PIP install -q --no-deps $PILLOW_SIMD_PIN; then
    echo "[bootstrap] Pillow-SIMD installed (CFLAGS='$cflags')"
  else
    echo "[bootstrap] WARNING: Pillow-SIMD failed to build; continuing on stock Pillow" >&2
    pillow_line=$(grep -iE '^pillow==' "$LOCK_FILE" 2>/dev/null || echo pillow)
    $PIP install -q --no-deps "$pillow_line"
  fi
fi
grep -iE '^pillow-simd==' <("$VENV/bin/python" tools/envcheck.py freeze) >> "$VENV/.resolved.txt" || true

if [[ "$UNLOCKED" != 1 ]]; then
  "$VENV/bin/python" tools/envcheck.py verify "$LOCK_FILE"
else
  echo "[bootstrap] WARNING: UNLOCKED=1: versions are the newest pyproject.toml allows today, not the lock's" >&2
fi
"$VENV/bin/python" tools/envcheck.py report
echo "$stamp_src" > "$stamp_file"
