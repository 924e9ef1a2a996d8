#!/usr/bin/env bash
# Create or update the repo-local virtual environment in .venv, only when needed.
#
# Why a script and not a bare `pip install -e .`:
#   * torch is pinned to the build that lies on this machine family's disk
#     (a bare "torch" would pull several GB of CUDA wheels from the network);
#   * Pillow-SIMD must replace Pillow *after* every dependency is resolved
#     (Ultralytics pulls Pillow; Pillow-SIMD installs under another name), as
#     Pillow-SIMD's own docs recommend; a failed build falls back to Pillow;
#   * exactly one OpenCV wheel may be installed.
# The environment is rebuilt when pyproject.toml or this script changes (stamp).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
TORCH_PIN=${TORCH_PIN:-"torch==2.14.1 torchvision==0.29.1"}
PILLOW_SIMD_PIN=${PILLOW_SIMD_PIN:-"pillow-simd==12.1.1.post0"}

stamp_src=$(cat pyproject.toml tools/bootstrap.sh | sha256sum | cut -c1-16)
stamp_file="$VENV/.bootstrap-stamp"
if [[ -x "$VENV/bin/python" && -f "$stamp_file" && "$(cat "$stamp_file")" == "$stamp_src" ]]; then
  exit 0
fi

echo "[bootstrap] preparing $VENV (python: $($PY --version 2>&1))"
[[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
export PIP_DISABLE_PIP_VERSION_CHECK=1
# pip, minus the noise of this machine family's local find-links folders
PIP() { "$VENV/bin/python" -m pip "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }
PIP="PIP"
$PIP install -q --upgrade pip setuptools wheel
# shellcheck disable=SC2086
$PIP install -q $TORCH_PIN
$PIP install -q -e ".[dev]"

# One OpenCV build only: Ultralytics asks for opencv-python; drop any other flavour.
for other in opencv-python-headless opencv-contrib-python opencv-contrib-python-headless; do
  if $PIP show -q "$other" >/dev/null 2>&1; then
    echo "[bootstrap] removing $other (one OpenCV build only)"
    $PIP uninstall -y -q "$other"
  fi
done

# Pillow -> Pillow-SIMD (AVX2 where the CPU has it). Any install that resolves Ultralytics'
# dependencies brings Pillow back over the shared PIL folder, so swap whenever Pillow is present.
if [[ "${NO_PILLOW_SIMD:-0}" != 1 ]] && $PIP show -q pillow >/dev/null 2>&1; then
  cflags="${CFLAGS:-}"
  if grep -q avx2 /proc/cpuinfo 2>/dev/null; then cflags="$cflags -mavx2"; fi
  $PIP uninstall -y -q pillow pillow-simd >/dev/null 2>&1 || true
  # shellcheck disable=SC2086
  if CFLAGS="$cflags" $PIP install -q --no-deps $PILLOW_SIMD_PIN; then
    echo "[bootstrap] Pillow-SIMD installed (CFLAGS='$cflags')"
  else
    echo "[bootstrap] WARNING: Pillow-SIMD failed to build; continuing on stock Pillow" >&2
    $PIP install -q pillow
  fi
fi

"$VENV/bin/python" - <<'EOF'
import PIL, cv2, numpy
from importlib import metadata
dists = [d.metadata["Name"].lower() for d in metadata.distributions()]
cv = [d for d in dists if d.startswith("opencv")]
assert len(cv) == 1, f"expected exactly one OpenCV wheel, found {cv}"
pil = [d for d in dists if d in ("pillow", "pillow-simd")]
assert len(pil) == 1, f"expected exactly one of pillow / pillow-simd, found {pil}"
assert metadata.version(pil[0]) == PIL.__version__, f"PIL {PIL.__version__} does not match {pil[0]}"
print(f"[bootstrap] ok: PIL {PIL.__version__} ({pil[0]}), OpenCV {cv2.__version__} ({cv[0]}), numpy {numpy.__version__}")
EOF
echo "$stamp_src" > "$stamp_file"
