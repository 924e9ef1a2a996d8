#!/usr/bin/env bash
# GPU check v2: the checks that need a GPU, in two phases that each fit one short device call.
#
#   bash benchmarks/gpu_check.sh phase1    # no DALI needed: CUDA facts, torch-painter / consistency GPU tests,
#                                          # the 896 px batch 128 comparison on the machine's real cores
#                                          # (stock 8 and 12 processes vs our CPU engine) with RAM, training rows
#   bash benchmarks/gpu_check.sh phase2    # DALI: install the carried parts, DALI GPU tests, dali rows (fail on
#                                          # any DALI fallback or tiles off the GPU), train-dali, the knob sweep
#   bash benchmarks/gpu_check.sh all       # both (a machine that has DALI already)
#   GPU_CHECK_DRY=1 bash benchmarks/gpu_check.sh all   # the same plumbing on a CPU machine, small and quick
#
# What travels (tools/gpu_wheels.sh makes it; git ignores .whl/): phase 1 carries .whl/phase1 (Ultralytics and
# its two small helpers, ~11 MB: one call). Phase 2 carries DALI for CUDA 13 and its libraries as one
# xz-compressed tar of the unpacked wheels in parts of at most 60 MiB, .whl/phase2/dali.tar.xz.partNN plus
# dali.tar.xz.sha256 (joined, checked and unpacked by Python's own tarfile/lzma: no tool needed there);
# one part per device call, back to back while the machine is warm (it is released after 30 s idle; an
# ignored path a call does not name in `carry` stays on the machine), the last call runs phase2. The exact
# call sequence, with carry lists and expected durations: benchmarks/README.md ("GPU check").
#
# Every step has its own time limit and writes its log under $OUT (default .demo/gpu-check): <phase>-<step>.log,
# pytest's JUnit XML <phase>-tests.xml, the bench JSON, and gpu_check.json (each step's exit code and seconds,
# whether each phase works, whether the targets were met). Exit codes:
#   0   every step worked and every target gate passed
#   10  every step worked, but a target gate (benchmarks/gates_gpu.json) was missed: see gates.log
#   2   no usable CUDA device (and not a dry run)
#   3   the carried DALI parts are missing or corrupt: stopped before anything ran
#   4   a step failed (tests, bench, a DALI fallback, tiles off the GPU)
#   5   a step ran past its time limit
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
PHASES=${1:-all}
DRY=${GPU_CHECK_DRY:-0}
OUT=${OUT:-.demo/gpu-check}
mkdir -p "$OUT"
T0=$(date +%s)
RESULT="$OUT/gpu_check.json"
STEPS="$OUT/steps.tsv"
: > "$STEPS"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
export YOLO_OFFLINE=1

# step PHASE NAME LIMIT_S command...: run it under its own time limit, log to $OUT, record rc and seconds
step() {
    local phase=$1 name=$2 limit=$3; shift 3
    local log="$OUT/$phase-$name.log" t=$(date +%s)
    echo "== $phase / $name (limit ${limit}s)"
    timeout --kill-after=10 "$limit" "$@" > "$log" 2>&1
    local rc=$?
    printf '%s\t%s\t%s\t%s\n' "$phase" "$name" "$rc" "$(( $(date +%s) - t ))" >> "$STEPS"
    tail -n 25 "$log"
    [ "$rc" = 124 ] || [ "$rc" = 137 ] && echo "gpu_check: $phase / $name ran past ${limit}s"
    return "$rc"
}

finish() {  # gpu_check.json from steps.tsv, and the exit code (benchmarks/gpu_result.py holds the contract)
    "$PY" benchmarks/gpu_result.py "$STEPS" "$RESULT" "${1:-}" "$(( $(date +%s) - T0 ))"
}

if [ "$DRY" != 1 ] && ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check: no usable CUDA device (GPU_CHECK_DRY=1 checks the script on a CPU machine)"
    exit 2
fi

install_wheels() {  # install_wheels DIR: the carried wheels into /tmp/site, offline, without touching torch
    compgen -G "$1/*.whl" > /dev/null || return 0
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$1"/*.whl
}

if [ "$DRY" = 1 ]; then
    echo "gpu_check: dry run: carried wheels are checked, not installed; small runs on the CPU"
    BENCH=(--preset quick --workers 8,12 --cpu-workers 8,12 --batches 2 --rounds 1)
    TRAIN=(--preset quick --train --train-iters 2 --train-warmup 1 --train-rounds 1)
    DATA=()
    TESTS_K1="bit_exact"  # a plumbing check: one quick test per suite (the CI runs them all anyway)
    TESTS_K2="good_bad_good_recovers"
else
    # 16 warm-up batches (2,048 images; full stock buffers would take 96 batches at 12 workers: minutes)
    BENCH=(--imgsz 896 --batch 128 --workers 8,12 --cpu-workers 8,12 --batches 6 --warmup 16 --rounds 1
           --heavy-rounds 1 --no-forced)
    TRAIN=(--imgsz 896 --batch 128 --train --train-imgsz 896 --train-batch 128 --train-iters 10 --train-warmup 3
           --train-rounds 1)
    DEMO=.demo/gpu-check-data
    DATA=(--data "$DEMO/data.yaml")
    TESTS_K1="not dali"
    TESTS_K2=""
fi

phase1() {
    install_wheels .whl/phase1 && export PYTHONPATH=/tmp/site:$PYTHONPATH
    step phase1 facts 60 "$PY" - <<'EOF'
import importlib, os, torch
print("torch", torch.__version__, "CUDA", torch.version.cuda, "device:",
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none")
print("cores", len(os.sched_getaffinity(0)), "RAM GiB", os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30)
for m in ("ultralytics", "cv2", "psutil", "pytest", "nvidia.dali"):
    try:
        print(f"  {m} {getattr(importlib.import_module(m), '__version__', '')}")
    except Exception as e:  # noqa: BLE001
        print(f"  {m} MISSING ({type(e).__name__})")
EOF
    if [ "$DRY" != 1 ] && [ ! -f "$DEMO/data.yaml" ]; then  # 4000 images: 4x the 1000-image buffer of batch 128
        step phase1 data 120 "$PY" -c "from loader.demo_data import make_demo_dataset as m; m('$DEMO', count=4000, size=(1920, 1080))"
    fi
    step phase1 tests 120 "$PY" -m pytest -q -p no:cacheprovider -rs --junitxml="$OUT/phase1-tests.xml" \
        tests/unit/kernels/test_torch_paint.py tests/parity/test_consistency.py -k "${TESTS_K1}"
    step phase1 bench 240 "$PY" -m integration.cli bench "${BENCH[@]}" "${DATA[@]}" --timeout 150 \
        --only "decode-only,stock-w8,stock-w12,cpu-w8,cpu-w12,cpu-auto" --json "$OUT/phase1-bench.json"
    step phase1 train 150 "$PY" -m integration.cli bench "${TRAIN[@]}" "${DATA[@]}" --timeout 120 \
        --only "train-stock,train-cpu,train-synthetic" --json "$OUT/phase1-train.json"
}

phase2() {
    local parts=${GPU_CHECK_PARTS:-.whl/phase2}
    if [ "$DRY" != 1 ] || compgen -G "$parts/dali.tar.xz.part*" > /dev/null; then
        # joined and checked before anything else runs: missing or corrupt parts stop here (exit 3)
        step phase2 parts 60 "$PY" tools/gpu_parts.py unpack "$parts" /tmp/dali-whl
        local rc=$?
        if [ "$rc" != 0 ]; then
            echo "gpu_check: $parts: the DALI parts are missing or corrupt; nothing else of phase 2 ran (exit 3)"
            finish; return 3
        fi
        if [ "$DRY" != 1 ]; then
            step phase2 install 90 "$PY" -m pip install -q --no-index --no-deps --no-compile --upgrade \
                --target /tmp/site /tmp/dali-whl/*.whl || { finish; return $?; }
            export PYTHONPATH=/tmp/site:$PYTHONPATH
        fi
    fi
    install_wheels .whl/phase1 && export PYTHONPATH=/tmp/site:$PYTHONPATH
    step phase2 import 60 "$PY" -c "import nvidia.dali.fn; from nvidia.dali.plugin.pytorch import feed_ndarray; print('DALI', __import__('nvidia.dali').dali.__version__)"
    step phase2 tests 150 "$PY" -m pytest -q -p no:cacheprovider -rs --junitxml="$OUT/phase2-tests.xml" \
        tests/engine/test_dali_engine.py tests/unit/kernels/test_dali_paint.py tests/unit/kernels/test_dali_decode.py \
        -k "${TESTS_K2}"
    # the stock rows of this session's phase 1 are the yardstick for the gates (same machine, minutes apart)
    step phase2 bench 150 "$PY" -m integration.cli bench "${BENCH[@]}" "${DATA[@]}" --timeout 120 \
        --only "dali" --json "$OUT/phase2-bench.json"
    # the engine works only if DALI did the work: no fallback, tiles on the GPU (on a dry run: CPU-only mode)
    step phase2 dali-did-the-work 20 "$PY" - "$OUT/phase2-bench.json" "$DRY" <<'EOF'
import json, sys
rows = [r for r in json.load(open(sys.argv[1])) if r["name"].startswith("dali")]
want = "cpu" if sys.argv[2] == "1" else "cuda"
bad = [r for r in rows if "error" in r or r.get("dali_fallbacks", 1) != 0 or r.get("tile_buffer_device") != want]
for r in rows:
    print(r["name"], {k: r.get(k) for k in ("img_s", "dali_fallbacks", "tile_buffer_device", "cores_busy", "error")})
sys.exit(1 if bad or not rows else 0)
EOF
    step phase2 train 150 "$PY" -m integration.cli bench "${TRAIN[@]}" "${DATA[@]}" --timeout 120 \
        --only "train-dali,train-synthetic" --json "$OUT/phase2-train.json"
    if [ "${GPU_CHECK_KNOBS:-0}" = 1 ] && [ "$DRY" != 1 ]; then
        step phase2 knobs 120 "$PY" benchmarks/dali_knobs.py "${DATA[@]}" --batch 128 --threads 2,4 \
            --hw-load 0.65,1.0 --batches 4
    fi
}

case "$PHASES" in
    phase1) phase1 ;;
    phase2) phase2 || [ $? != 3 ] || exit 3 ;;
    all) phase1; phase2 || [ $? != 3 ] || exit 3 ;;
    *) echo "usage: $0 [phase1|phase2|all]"; exit 64 ;;
esac

# "meets the target" apart from "works": the GPU gates on what the phases measured
GATES_RC=
if [ "$DRY" != 1 ] && [ -f "$OUT/phase2-bench.json" ] && [ -f "$OUT/phase1-bench.json" ]; then
    "$PY" -c "import json,sys; a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2])); \
json.dump(a + [r for r in b if r['name'] not in {x['name'] for x in a}], open(sys.argv[3], 'w'))" \
        "$OUT/phase1-bench.json" "$OUT/phase2-bench.json" "$OUT/bench-all.json"
    "$PY" -m integration.cli gate --json "$OUT/bench-all.json" --config benchmarks/gates_gpu.json > "$OUT/gates.log" 2>&1
    GATES_RC=$?
    cat "$OUT/gates.log"
fi
finish "$GATES_RC"
