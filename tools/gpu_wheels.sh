#!/usr/bin/env bash
# Fetch, on this (networked) machine, what the GPU machine lacks for benchmarks/gpu_check.sh (Python 3.12, CUDA 13),
# in the two sets its two phases carry (git ignores .whl/):
#   .whl/phase1/   Ultralytics and its two small helpers (~11 MB): one device call, no DALI needed
#   .whl/phase2/   nvidia-dali for CUDA 13 and the libraries its image does not hold (nvImageCodec, nvJPEG, nvCOMP,
#                  six, packaging and a few more pure-Python packages: tools/gpu_wheels.txt), unpacked, xz-compressed and split into 60 MiB parts
#                  (tools/gpu_parts.py pack; manifest.json says the sizes and the seconds it took)
# The call sequence that carries them is in benchmarks/README.md ("GPU check").
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
grep -qx "/.whl/" .git/info/exclude 2>/dev/null || echo "/.whl/" >> .git/info/exclude
rm -rf .whl && mkdir -p .whl/phase1 .whl/dl-dali
DL=("$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
    --platform manylinux2014_x86_64)
"${DL[@]}" -d .whl/phase1 ultralytics==8.4.190 ultralytics-thop ultralytics-platform
"${DL[@]}" -d .whl/dl-dali -r tools/gpu_wheels.txt  # the list, and why: tools/gpu_wheels.txt
"$PY" tools/gpu_parts.py pack .whl/dl-dali .whl/phase2 --part-mib 60
rm -rf .whl/dl-dali
du -sh .whl/phase1 .whl/phase2/*
