#!/usr/bin/env bash
# GPU check v3: the part that can fail goes first.
#
#   bash benchmarks/gpu_check.sh dali     # install the carried DALI parts, then: the GPU-marked tests (a line per
#                                         # test as it finishes, --durations), the dali rows at 896 px / batch
#                                         # 128 from JPEG and from cache="disk" (the reported setting; fails on
#                                         # any DALI fallback or tile off the GPU), train-dali vs the ceiling
#   bash benchmarks/gpu_check.sh stock    # optional, last: stock 8/12 processes vs the CPU engine at 896 px /
#                                         # batch 128 with RAM, and the stock / CPU-engine training rows
#   bash benchmarks/gpu_check.sh all      # both (a machine that has DALI already)
#   GPU_CHECK_DRY=1 bash benchmarks/gpu_check.sh all   # the same plumbing on a CPU machine, small and quick
#
# What travels (tools/gpu_wheels.sh makes it; git ignores .whl/): .whl/phase1 (Ultralytics and its two small
# helpers, ~2 MB) and DALI for CUDA 13 with its libraries as one xz-compressed tar of the unpacked wheels in
# parts of at most 60 MiB, .whl/phase2/dali.tar.xz.partNN plus dali.tar.xz.sha256 (joined, checked and unpacked
# by Python's own tarfile/lzma). One part per device call, back to back while the machine is warm; the call
# carrying the last part runs `dali`. The sequence, with carry lists, limits and expected durations:
# benchmarks/README.md ("GPU check").
#
# Every step has its own time limit (a phase's limits stay inside its call's timeout) and writes its log under
# $OUT (default .demo/gpu-check): <phase>-<step>.log, <phase>-tests.jsonl (one line per finished test),
# pytest's JUnit XML, the bench JSONs, and gpu_check.json (each step's exit code and seconds, whether each phase
# works, whether the targets were met). A step the later ones need (parts, install, import) stops its phase
# when it fails. Exit codes:
#   0   every step worked and every target gate passed
#   10  every step worked, but a target gate (benchmarks/gates_gpu.json) was missed: see gates.log
#   2   no usable CUDA device (and not a dry run)
#   3   the carried DALI parts are missing or corrupt: stopped before anything ran
#   4   a step failed (the import, tests, bench, a DALI fallback, tiles off the GPU)
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
    timeout --kill-after=5 "$limit" "$@" > "$log" 2>&1
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
    GPU_TESTS=(tests/unit/kernels/test_dali_decode.py -k good_bad_good_recovers)  # plumbing: one quick test
else
    # 1,536 images: 12 batches of 128, over the 1,000-image mosaic buffer; 16 warm-up batches
    BENCH=(--imgsz 896 --batch 128 --workers 8,12 --cpu-workers 8,12 --batches 6 --warmup 16 --rounds 1
           --heavy-rounds 1 --no-forced)
    TRAIN=(--imgsz 896 --batch 128 --train --train-imgsz 896 --train-batch 128 --train-iters 10 --train-warmup 3
           --train-rounds 1)
    DEMO=.demo/gpu-check-data
    DATA=(--data "$DEMO/data.yaml")
    GPU_TESTS=(-m gpu tests/engine/test_dali_gpu.py tests/engine/test_dali_engine.py tests/unit/kernels
               tests/parity/test_consistency.py)
fi

facts() {  # facts PHASE
    step "$1" facts 20 "$PY" - <<'EOF'
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
}

demo_data() {  # demo_data PHASE
    if [ "$DRY" != 1 ] && [ ! -f "$DEMO/data.yaml" ]; then
        step "$1" data 60 "$PY" -c "from loader.demo_data import make_demo_dataset as m; m('$DEMO', count=1536, size=(1920, 1080))"
    fi
}

# dali: step limits 45 + 40 + 20 + 20 + 140 + 60 + 110 + 10 + 100 = 545 s, plus 5 s of kill grace per step:
# 590 s at the very most (parts, install and data run only when needed), under the call's timeout_s 600
dali() {
    local parts=${GPU_CHECK_PARTS:-.whl/phase2}
    if [ "$DRY" != 1 ] || compgen -G "$parts/dali.tar.xz.part*" > /dev/null; then
        # joined and checked before anything else runs: missing or corrupt parts stop here (exit 3)
        step dali parts 45 "$PY" tools/gpu_parts.py unpack "$parts" /tmp/dali-whl
        if [ $? != 0 ]; then
            echo "gpu_check: $parts: the DALI parts are missing or corrupt; nothing else of the dali phase ran (exit 3)"
            finish; return 3
        fi
        if [ "$DRY" != 1 ]; then
            step dali install 40 "$PY" -m pip install -q --no-index --no-deps --no-compile --upgrade \
                --target /tmp/site /tmp/dali-whl/*.whl || return 4
            export PYTHONPATH=/tmp/site:$PYTHONPATH
        fi
    fi
    install_wheels .whl/phase1 && export PYTHONPATH=/tmp/site:$PYTHONPATH
    facts dali
    # nothing after this can work without it: a failed import stops the phase
    step dali import 20 "$PY" -c "import nvidia.dali.fn; from nvidia.dali.plugin.pytorch import feed_ndarray; print('DALI', __import__('nvidia.dali').dali.__version__)" \
        || return 4
    export LIVE_RESULTS="$OUT/dali-tests.jsonl"
    rm -f "$LIVE_RESULTS"
    step dali tests 140 "$PY" -m pytest -q -p no:cacheprovider \
        -p benchmarks.live_results -rs --durations=15 --junitxml="$OUT/dali-tests.xml" "${GPU_TESTS[@]}"
    demo_data dali
    step dali bench 110 "$PY" -m integration.cli bench "${BENCH[@]}" "${DATA[@]}" --timeout 100 --cache disk \
        --only "dali,dali-disk" --json "$OUT/dali-bench.json"
    # the engine works only if DALI did the work: no fallback, tiles on the GPU (on a dry run: CPU-only mode)
    # tiles off the GPU show as uploads: from JPEG none (no fallback, no PNG in the demo set), from the disk cache
    # at most one per image (each is kept on the GPU once uploaded)
    step dali dali-did-the-work 10 "$PY" - "$OUT/dali-bench.json" "$DRY" "${DEMO_COUNT:-1536}" <<'EOF'
import json, sys
rows = [r for r in json.load(open(sys.argv[1])) if r["name"].startswith("dali")]
want = "cpu" if sys.argv[2] == "1" else "cuda"
limit = {"dali": 0, "dali-disk": int(sys.argv[3])}
bad = [r for r in rows if "error" in r or r.get("dali_fallbacks", 1) != 0 or r.get("tile_buffer_device") != want
       or r.get("tile_uploads", 0) > limit.get(r["name"].split(" ")[0], 0)]
for r in rows:
    print(r["name"], {k: r.get(k) for k in ("img_s", "dali_fallbacks", "tile_buffer_device", "tile_uploads",
                                            "cores_busy", "error")})
sys.exit(1 if bad or len(rows) < 2 else 0)
EOF
    step dali train 100 "$PY" -m integration.cli bench "${TRAIN[@]}" "${DATA[@]}" --timeout 100 \
        --only "train-dali,train-synthetic" --json "$OUT/dali-train.json"
    if [ "${GPU_CHECK_KNOBS:-0}" = 1 ] && [ "$DRY" != 1 ]; then
        step dali knobs 120 "$PY" benchmarks/dali_knobs.py "${DATA[@]}" --batch 128 --threads 2,4 \
            --hw-load 0.65,1.0 --batches 4
    fi
}

# stock (optional, last): step limits 20 + 60 + 300 + 180 = 560 s, + 5 s of kill grace each: 580 s at most
stock() {
    install_wheels .whl/phase1 && export PYTHONPATH=/tmp/site:$PYTHONPATH
    facts stock
    demo_data stock
    step stock bench 300 "$PY" -m integration.cli bench "${BENCH[@]}" "${DATA[@]}" --timeout 140 \
        --only "decode-only,stock-w8,stock-w12,cpu-w8,cpu-w12,cpu-auto" --json "$OUT/stock-bench.json"
    step stock train 180 "$PY" -m integration.cli bench "${TRAIN[@]}" "${DATA[@]}" --timeout 80 \
        --only "train-stock,train-cpu" --json "$OUT/stock-train.json"
}

case "$PHASES" in
    dali) dali || [ $? != 3 ] || exit 3 ;;
    stock) stock ;;
    all) dali || [ $? != 3 ] || exit 3; stock ;;
    *) echo "usage: $0 [dali|stock|all]"; exit 64 ;;
esac

# "meets the target" apart from "works": the GPU gates on what the phases measured
GATES_RC=
if [ "$DRY" != 1 ] && [ -f "$OUT/dali-bench.json" ] && [ -f "$OUT/stock-bench.json" ]; then
    "$PY" -c "import json,sys; a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2])); \
json.dump(a + [r for r in b if r['name'] not in {x['name'] for x in a}], open(sys.argv[3], 'w'))" \
        "$OUT/stock-bench.json" "$OUT/dali-bench.json" "$OUT/bench-all.json"
    "$PY" -m integration.cli gate --json "$OUT/bench-all.json" --config benchmarks/gates_gpu.json > "$OUT/gates.log" 2>&1
    GATES_RC=$?
    cat "$OUT/gates.log"
fi
finish "$GATES_RC"
