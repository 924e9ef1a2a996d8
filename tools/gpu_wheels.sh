#!/usr/bin/env bash
# Fetch, on this (networked) machine, the wheels the GPU machine lacks for benchmarks/gpu_check.sh
# (Python 3.12, CUDA 13): nvidia-dali and the needs its image does not hold (nvImageCodec, nvJPEG,
# nvCOMP, a few pure-Python packages), and Ultralytics with its two small helpers (polars, which
# Ultralytics imports only to plot, stays behind: 52 MiB).
#
# A device call carries at most 64 MiB and these come to ~250 MiB, so they are packed into one tar and
# split into 60 MiB parts: .whl/parts/wheels.tar.partNN plus wheels.tar.sha256 (git ignores .whl/).
# Carry one part per call, calls back to back while the machine is warm (an ignored path that a call
# does not name in `carry` stays there); the last call carries the last part and the .sha256 file and
# runs benchmarks/gpu_check.sh, which joins, verifies, unpacks and installs them offline.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
grep -qx "/.whl/" .git/info/exclude 2>/dev/null || echo "/.whl/" >> .git/info/exclude
rm -rf .whl && mkdir -p .whl/dl .whl/parts
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl/dl \
    nvidia-dali-cuda130==2.4.0 "nvidia-nvimgcodec-cu13>=0.9,<0.10" nvidia-libnvcomp-cu13==5.3.0.16 \
    "nvidia-nvjpeg==13.*" astunparse gast optree nvtx makefun "libcst~=1.8" \
    ultralytics==8.4.190 ultralytics-thop ultralytics-platform
tar cf .whl/wheels.tar -C .whl/dl .
sha256sum .whl/wheels.tar | awk '{print $1}' > .whl/parts/wheels.tar.sha256
split -b 60M -d .whl/wheels.tar .whl/parts/wheels.tar.part
rm -rf .whl/dl .whl/wheels.tar
du -sh .whl/parts/*
echo "carry .whl/parts/wheels.tar.partNN one per call; the last call also .whl/parts/wheels.tar.sha256"
