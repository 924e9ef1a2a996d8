#!/usr/bin/env bash
# GPU check: the GPU tests and the 896 px, batch 128 comparison (stock 8/12 workers vs our CPU engine
# vs the DALI engine) on one GPU machine with no network, in under 5 minutes. Prints the table.
#
#   bash benchmarks/gpu_check.sh            # on the GPU machine, from the repository root
#   GPU_CHECK_DRY=1 bash benchmarks/gpu_check.sh   # plumbing check on a CPU machine (small, quick)
#   GPU_CHECK_KNOBS=1 bash benchmarks/gpu_check.sh  # also sweep dali_threads x hw_decoder_load (~2 more min)
#
# Python packages the machine lacks travel as .whl/parts/wheels.tar.part* (tools/gpu_wheels.sh): they are
# joined, checked and installed offline into /tmp/site first. Without CUDA the script stops (exit 2) unless GPU_CHECK_DRY=1.
# Without nvidia-dali it still runs what it can (GPU tests that skip, stock and CPU-engine rows) and
# exits 3, so a missing DALI is never mistaken for a pass.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
T0=$(date +%s)

DRY=${GPU_CHECK_DRY:-0}
if [ "$DRY" = 1 ]; then
    echo "gpu_check: dry run: carried wheels (if any) are not installed"
elif [ -f .whl/parts/wheels.tar.sha256 ]; then  # the wheels came in parts (tools/gpu_wheels.sh)
    cat .whl/parts/wheels.tar.part* > /tmp/wheels.tar
    if [ "$(sha256sum /tmp/wheels.tar | awk '{print $1}')" = "$(cat .whl/parts/wheels.tar.sha256)" ]; then
        tar xf /tmp/wheels.tar -C .whl
    else
        echo "gpu_check: .whl/parts: parts missing or corrupt, wheels not installed"
    fi
    rm -f /tmp/wheels.tar
fi
if [ "$DRY" != 1 ] && compgen -G ".whl/*.whl" > /dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { echo "gpu_check: installing the carried wheels failed"; exit 1; }
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}

"$PY" - <<'EOF'
import importlib, torch
print("torch", torch.__version__, "CUDA:", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none")
for m in ("nvidia.dali", "ultralytics", "cv2", "psutil", "pytest", "pytest_benchmark"):
    try:
        mod = importlib.import_module(m)
        print(f"  {m} {getattr(mod, '__version__', '')}")
    except Exception as e:  # noqa: BLE001
        print(f"  {m} MISSING ({type(e).__name__})")
EOF

if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" && [ "$DRY" != 1 ]; then
    echo "gpu_check: no usable CUDA device (set GPU_CHECK_DRY=1 to check the script on a CPU machine)"
    exit 2
fi
HAVE_DALI=1
"$PY" -c "import nvidia.dali" 2>/dev/null || HAVE_DALI=0

echo "== GPU tests (the gpu-marked ones, and the DALI / torch painter / consistency suites, which use the GPU when present)"
"$PY" -m pytest -q -p no:cacheprovider -rs tests/engine/test_dali_engine.py tests/unit/kernels tests/parity/test_consistency.py
TESTS_RC=$?

echo "== comparison"
if [ "$DRY" = 1 ]; then
    BENCH=(--quick --workers 2 --batches 2)
    ONLY=stock-w2,cpu-auto,dali
else
    # 1200 demo images: enough distinct files for batch 128 (9 batches an epoch); 4 warm-up batches
    # (stock's full buffers would need ~100 at 12 workers: too long for a 5-minute check)
    BENCH=(--imgsz 896 --batch 128 --workers 8,12 --batches 8 --warmup 4 --no-forced --timeout 200)
    ONLY=decode-only,stock-w8,stock-w12,cpu-auto,dali
    DEMO=.demo/gpu-check
    if [ ! -f "$DEMO/data.yaml" ]; then
        "$PY" -c "from loader.demo_data import make_demo_dataset as m; m('$DEMO', count=1200, size=(1920, 1080))" \
            || exit 1
    fi
    BENCH+=(--data "$DEMO/data.yaml")
fi
[ "$HAVE_DALI" = 1 ] || ONLY=${ONLY/,dali/}
JSON=${OUT:-.demo}/gpu_check.json
"$PY" -m integration.cli bench "${BENCH[@]}" --only "$ONLY" --json "$JSON"
BENCH_RC=$?
echo "== gates (benchmarks/gates_gpu.json: issue 4's targets)"
if [ "$DRY" = 1 ]; then
    echo "(dry run: gates skipped, the quick rows do not have the names they check)"
    GATE_RC=0
else
    "$PY" -m integration.cli gate --json "$JSON" --config benchmarks/gates_gpu.json
    GATE_RC=$?
fi

if [ "${GPU_CHECK_KNOBS:-0}" = 1 ] && [ "$HAVE_DALI" = 1 ] && [ "$DRY" != 1 ]; then
    echo "== DALI knobs (dali_threads x hw_decoder_load)"
    "$PY" benchmarks/dali_knobs.py --data "$DEMO/data.yaml" --batch 128 --threads 2,4,8 --hw-load 0.65,1.0 --batches 6
fi
echo "gpu_check: $(( $(date +%s) - T0 )) s; tests rc=$TESTS_RC, bench rc=$BENCH_RC, gates rc=$GATE_RC"
if [ "$HAVE_DALI" = 0 ]; then
    echo "gpu_check: nvidia-dali is not installed here: the DALI engine was NOT checked (exit 3)"
    exit 3
fi
[ "$TESTS_RC" = 0 ] && [ "$BENCH_RC" = 0 ] && [ "$GATE_RC" = 0 ]
