#!/usr/bin/env bash
# Fetch, on this (networked) machine, the wheels the GPU machine lacks for benchmarks/gpu_check.sh:
# nvidia-dali for CUDA 13 and Ultralytics with the few needs its image does not hold (Python 3.12).
# They go to .whl/ (ignored by git). A device call carries at most 64 MiB, and the DALI wheel is ~190 MiB,
# so files over 60 MiB are split into .whl/parts/NAME.partNN (+ NAME.sha256): carry the parts over
# several calls while the machine is warm (an ignored path not named in `carry` stays there);
# gpu_check.sh joins and verifies them before installing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
grep -qx "/.whl/" .git/info/exclude 2>/dev/null || echo "/.whl/" >> .git/info/exclude
mkdir -p .whl/parts
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
    nvidia-dali-cuda130==2.4.0 ultralytics==8.4.190 ultralytics-thop ultralytics-platform polars polars-runtime-32
for f in .whl/*.whl; do
    if [ "$(stat -c %s "$f")" -gt $((60 << 20)) ]; then
        name=$(basename "$f")
        sha256sum "$f" | awk '{print $1}' > ".whl/parts/$name.sha256"
        split -b 60M -d "$f" ".whl/parts/$name.part"
        rm "$f"
    fi
done
du -sh .whl/*.whl .whl/parts/* 2>/dev/null
echo "carry .whl/*.whl with the last call; each .whl/parts/*.partNN in a call of its own (plus the .sha256 files)"
