#!/usr/bin/env bash
# Prove the carried DALI set complete (tools/gpu_wheels.txt): in a clean venv that holds only what the GPU
# machine's image holds for this (torch and numpy), install exactly the listed wheels, then `import nvidia.dali`
# and build one DALI GPU pipeline, as far as a CPU machine allows (the build may fail only for want of a CUDA
# device, never for a missing module). The device's Python is 3.12 and this machine's 3.11, so the same list
# is fetched for this Python; DALI and the nvidia wheels are the same files for both.
#
#   bash tools/gpu_wheels_check.sh                 # expect: "ok"
#   WITHOUT=six bash tools/gpu_wheels_check.sh     # leave one listed package out: expect the import to fail
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
V=${CHECK_VENV:-/tmp/gpu-wheels-clean}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
export PIP_DISABLE_PIP_VERSION_CHECK=1
[ -x "$V/bin/python" ] && "$V/bin/python" -c "import torch, numpy" 2>/dev/null || {
    rm -rf "$V"; "$PY" -m venv "$V"
    "$V/bin/python" -m pip install -q "torch==2.14.1" numpy  # the image's part (torch from this machine's disk)
}
# a fresh target for the carried part every time: nothing left from an earlier run
rm -rf "$V/carried"
grep -vE '^\s*(#|$)' tools/gpu_wheels.txt | grep -viE "^${WITHOUT:-@none@}([<>=~ ]|$)" > "$W/list.txt"
"$V/bin/python" -m pip download -q --no-deps --only-binary=:all: -r "$W/list.txt" -d "$W/whl"
"$V/bin/python" -m pip install -q --no-index --no-deps --target "$V/carried" "$W"/whl/*.whl
PYTHONPATH="$V/carried" "$V/bin/python" - <<'PYEOF'
import sys

import nvidia.dali as dali
from nvidia.dali import fn, pipeline_def, types

print("import nvidia.dali", dali.__version__, "from", dali.__file__)


@pipeline_def(batch_size=2, num_threads=1, device_id=0)
def pipe():
    enc = fn.external_source(name="enc", dtype=types.UINT8)
    img = fn.decoders.image(enc, device="mixed", output_type=types.BGR)
    return fn.warp_affine(img, matrix=[1, 0, 0, 0, 1, 0], fill_value=114.0)


try:
    p = pipe()
    p.build()
    print("GPU pipeline built")
except ModuleNotFoundError:
    raise
except Exception as e:  # noqa: BLE001 - a CPU machine stops at the device; anything else is a failure
    msg = str(e)
    if not any(k in msg for k in ("CUDA", "cuda", "device", "GPU", "driver", "nvml", "NVML")):
        raise
    print("GPU pipeline defined; its build stops where a CPU machine must:", msg.strip().splitlines()[0][:200])
print("ok")
PYEOF
