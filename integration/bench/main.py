"""Loader comparison: ours vs the stock Ultralytics loader, in one run, on the same files.

    yolo-loader bench [--data DATA.yaml] [--imgsz 896] [--batch 32] [--workers 8,12]
                      [--batches 10] [--rounds 1] [--no-forced] [--json out.json]

(also ``python benchmarks/compare.py ...``). Without ``--data`` the demo set is generated
in ``.demo/bench`` (1200 images, 1920x1080: several times Ultralytics' mosaic buffer).

Every contender runs in its own subprocess (``child.py``):

* ``stock-wN``: Ultralytics' real ``build_yolo_dataset`` + ``build_dataloader`` with
  ``workers=N`` (default hyperparameters). ``build_dataloader`` caps workers at
  ``cpu_count // n_gpu``: the effective count is reported.
* ``stock-wN-forced``: the same dataset in Ultralytics' ``InfiniteDataLoader`` with exactly
  N worker processes (what ``build_dataloader`` builds on a machine with enough cores):
  reproduces the user's 8/12-worker RAM on a small machine.
* ``cpu-wN`` / ``cpu-auto``: ``loader.DetectionLoader`` (CPU engine) with N painter threads.
* ``dali``: the DALI engine (flagged "CPU-only mode" without a GPU).
* ``decode-only``: cv2.imdecode of the same JPEGs on every core, full size and DCT-reduced:
  the ceiling of any loader without a pixel cache.

Reported: images/s, it/s, speed-up vs the reference stock configuration, CPU seconds per image
(process tree), PSS of the process tree (peak, and median over the timed phase).
Rounds are interleaved; medians over rounds are reported.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from .report import plot, print_table, summarize
from .spec import RunSpec

__all__ = ["run", "run_child", "contenders", "add_arguments", "main", "DEMO_DIR", "ROOT"]

ROOT = Path(__file__).resolve().parents[2]
DEMO_DIR = Path(".demo/bench")
DEMO_COUNT = 1200


def run_child(spec: RunSpec, timeout: float) -> dict:
    """Measure ``spec`` in a subprocess; the row, or ``{"name", "error"}`` with the end of its stderr."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        result = Path(tmp) / "row.json"
        try:
            r = subprocess.run([sys.executable, "-m", "integration.bench", "--child", spec.to_json(),
                                "--result", str(result)], capture_output=True, text=True, env=env, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            return {"name": spec.name, "error": f"timed out after {timeout:.0f} s\n{(e.stderr or b'')[-2000:]!r}"}
        if r.returncode != 0 or not result.exists():
            return {"name": spec.name, "error": (r.stderr or r.stdout)[-2000:] or f"exit code {r.returncode}"}
        return json.loads(result.read_text())


def contenders(a) -> list[RunSpec]:
    base = dict(data=str(a.data), imgsz=a.imgsz, batch=a.batch, batches=a.batches, warmup=a.warmup)
    out = [RunSpec(kind="decode", name="decode-only", **base)]
    for w in a.workers:
        out.append(RunSpec(kind="stock", name=f"stock-w{w}", workers=w, **base))
    if a.forced:
        for w in a.workers:
            if w > (os.cpu_count() or 1):
                out.append(RunSpec(kind="stock", name=f"stock-w{w}-forced", workers=w, forced=True, **base))
    for w in a.workers:
        out.append(RunSpec(kind="ours", name=f"cpu-w{w}", workers=w, **base))
    out.append(RunSpec(kind="ours", name="cpu-auto", workers="auto", **base))
    out.append(RunSpec(kind="dali", name="dali", workers=0, **base))
    for mode in a.cache or []:  # cached regimes: build time is reported apart (build_s), then steady state
        w = a.workers[0]
        out.append(RunSpec(kind="stock", name=f"stock-w{w}-{mode}", workers=w, cache=mode, **base))
        out.append(RunSpec(kind="ours", name=f"cpu-w{w}-{mode}", workers=w, cache=mode, **base))
    delays = json.loads(os.environ.get("YOLO_LOADER_BENCH_DELAY", "{}"))  # deliberately slowed rows (gate tests)
    return [replace(s, delay=float(delays.get(s.name, 0.0))) for s in out]


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, help="data.yaml (default: the demo set, generated when missing)")
    ap.add_argument("--imgsz", type=int, default=896)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--workers", default="8,12", help="worker counts for stock-wN and cpu-wN (default 8,12)")
    ap.add_argument("--batches", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--no-forced", dest="forced", action="store_false")
    ap.add_argument("--only", default=None, help="comma-separated contender names")
    ap.add_argument("--json", type=Path, help="write the table as JSON (default .demo/bench.json)")
    ap.add_argument("--plot", type=Path, help="write a PNG chart, it/s and RAM (default next to the JSON)")
    ap.add_argument("--quick", action="store_true",
                    help="a small demo set, imgsz 320, batch 8, few batches, no forced stock (CI smoke run)")
    ap.add_argument("--warmup", type=int, default=None, help="warm-up batches (default: until buffers are full)")
    ap.add_argument("--cache", type=lambda t: [m for m in t.split(",") if m], default=[],
                    help="also compare cached regimes: ram, disk or ram,disk (stock and ours at the first worker count)")
    ap.add_argument("--timeout", type=float, default=900)


def _progress(k: int, n: int, name: str, msg: str) -> None:
    done = int(20 * k / n)
    print(f"[{'#' * done}{'.' * (20 - done)}] {k}/{n} {name}: {msg}", flush=True)


def run(a) -> int:
    if a.child:
        from .child import child_main

        return child_main(a.child, a.result)
    if a.quick:
        a.imgsz, a.batch, a.batches, a.forced = 320, 8, 4, False
        a.workers = "2" if a.workers == "8,12" else a.workers
        a.warmup = 2 if a.warmup is None else a.warmup
    if a.data is None:
        from loader.demo_data import make_demo_dataset

        demo = DEMO_DIR.with_name("quick") if a.quick else DEMO_DIR
        a.data = demo.resolve() / "data.yaml"
        if not a.data.exists():
            count, size = (48, (640, 360)) if a.quick else (DEMO_COUNT, (1920, 1080))
            print(f"generating the demo set in {demo} ({count} images, {size[0]}x{size[1]}) ...", flush=True)
            make_demo_dataset(demo, count=count, size=size)
    a.workers = [int(w) for w in str(a.workers).split(",")]
    specs = contenders(a)
    if a.only:
        keep = set(a.only.split(","))
        specs = [s for s in specs if s.name in keep]
    rounds, total, k = [], a.rounds * len(specs), 0
    for r_i in range(a.rounds):
        rows = []
        for s in specs:
            t0 = time.perf_counter()
            r = run_child(s, a.timeout)
            rows.append(r)
            k += 1
            msg = r.get("error", "").strip().splitlines()[-1] if "error" in r else f"{r['img_s']:.1f} img/s"
            _progress(k, total, f"round {r_i + 1} {s.name}", f"{msg} ({time.perf_counter() - t0:.0f}s)")
        rounds.append(rows)
    table = summarize(rounds, reference=f"stock-w{a.workers[0]}")
    title = (f"{Path(a.data).parent.name}: imgsz={a.imgsz} batch={a.batch} cores={os.cpu_count()} "
             f"rounds={a.rounds} timed batches={a.batches}")
    print()
    print(title)
    print_table(table)
    out = a.json or DEMO_DIR.with_name("bench.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(table, indent=1))
    png = a.plot or out.with_suffix(".png")
    plot(table, png, title)
    print(f"wrote {out} and {png}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(ap)
    return run(ap.parse_args(argv))
