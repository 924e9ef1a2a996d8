"""Loader comparison: ours vs the stock Ultralytics loader, in one run, on the same files.

    yolo-loader bench [--preset main|seed|quick] [--data DATA.yaml] [--imgsz 896] [--batch 32]
                      [--workers 8,12] [--batches 12] [--rounds 3] [--train] [--json out.json]

(also ``python benchmarks/compare.py ...``). Presets (explicit options override them):

* ``main`` (default, ``make bench``): 896 px, batch 32, on the demo set generated in ``.demo/bench``
  (1200 images of 1920x1080: 4.7x the stock mosaic buffer of 255, so most samples are fresh decodes);
  3 interleaved rounds of the throughput rows, one round of the RAM rows (forced stock, DALI CPU-only).
* ``seed``: the reported configuration: 896 px, batch 128, stock with 8 and 12 workers (capped and
  forced), ours at 8, 12 and auto, on ``.demo/seed`` (4000 images: 4x the 1000-image buffer of batch
  128, the fresh-decode regime), and the same rows with ``cache="disk"`` (the reported run's setting:
  stock's full-resolution ``.npy`` beside each image vs our one packed file at training size; each side's
  cache build time and bytes under the table). A forced stock row whose projected RAM does not fit this
  machine is not run; its projection is reported instead.
* ``quick``: a CI-sized smoke run (48 small images, imgsz 320, batch 8, one round).

Every contender runs in its own subprocess (``child.py``). The ceilings and stock's rows run with the glibc
allocator setting our CPU engine applies to its own process (``loader/allocator.py``, as ``GLIBC_TUNABLES``):
a ceiling is the best a machine does, and stock is compared at its best. Measured with the setting, stock
decodes faster (stock-w8 114.1 / 110.0 img/s with glibc's defaults, 128.8 / 120.6 with it, interleaved; its
PSS +0.08 GiB); before the setting had its top pad, stock measured no faster with it (141.5 / 140.4 vs 140.4 /
144.2 stock-w8-disk) and ran with the defaults. The forced stock rows, which are there for stock's RAM, keep
glibc's defaults, what users' own runs hold: with the setting each worker process keeps more (PSS peak
stock-w8-forced 6.53 GiB, stock-w12-forced 9.63, against 5.48 / 7.74 with the defaults, one round each, the
same day). Our rows apply the setting
themselves, as a user's process does:

* ``stock-wN``: Ultralytics' real ``build_yolo_dataset`` + ``build_dataloader`` with
  ``workers=N`` (default hyperparameters). ``build_dataloader`` caps workers at
  ``cpu_count // n_gpu``: the effective count is reported, and a second N that caps to the same
  processes is not run twice.
* ``stock-wN-forced``: the same dataset in Ultralytics' ``InfiniteDataLoader`` with exactly
  N worker processes (what ``build_dataloader`` builds on a machine with enough cores):
  reproduces the user's 8/12-worker RAM on a small machine.
* ``cpu-wN`` / ``cpu-auto``: ``loader.DetectionLoader`` (CPU engine) with N painter threads;
  ``cpu-auto-reduced``: the same with ``reduced_decode=True`` (what its default, Ultralytics' decode,
  costs in speed).
* ``dali``: the DALI engine (flagged "CPU-only mode" without a GPU).
* ``decode-only``: the same JPEGs decoded on every core by the engine's fastest decoder (the native libjpeg-turbo
  kernel where it runs: cv2.imdecode's bytes, ~20 % faster; cv2.imdecode's own rate beside it), measured warm
  (one untimed pass, then 3 timed: median and spread) with the engine's thread settings; also decode + resize
  to the load size and the DCT-reduced decode: the ceiling of any loader without a pixel cache. Uncached rows
  report ``of_ceiling``.
* ``--train``: ``train-stock``, ``train-cpu`` (``train-dali`` on a GPU) and ``train-synthetic``: real
  Ultralytics training iterations per second with each loader, and with pre-made batches already on the
  device (the ceiling for that model): ``train.py``.

Reported per row: images/s (median, min-max over rounds), it/s, speed-up vs the best stock row (``~``
where the spreads overlap: not distinguishable), CPU ms per image (process tree), cores busy, PSS of the
process tree (peak, and median over the timed phase); under the table, a plain-words headline.
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

from .report import headline, plot, print_table, summarize, train_rows
from .spec import RunSpec

__all__ = ["run", "run_child", "contenders", "add_arguments", "main", "projected_stock_ram", "memory_guard", "PRESETS", "DEMO_DIR",
           "ROOT"]

ROOT = Path(__file__).resolve().parents[2]
DEMO_DIR = Path(".demo/bench")


def run_child(spec: RunSpec, timeout: float) -> dict:
    """Measure ``spec`` in a subprocess; the row, or ``{"name", "error"}`` with the end of its stderr."""
    from loader.allocator import glibc_tunables

    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    tunables = glibc_tunables()
    at_best = spec.kind in ("decode", "cached-ceiling") or (spec.kind == "stock" and not spec.forced)
    if at_best and tunables and "GLIBC_TUNABLES" not in env:
        env["GLIBC_TUNABLES"] = tunables  # ceilings and stock's speed rows with the setting our CPU engine applies
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


PRESETS = {
    "main": dict(imgsz=896, batch=32, workers="8,12", batches=12, rounds=3, heavy_rounds=1, demo=("bench", 1200),
                 forced=True, train_imgsz=320, train_batch=8, train_rounds=2),
    "seed": dict(imgsz=896, batch=128, workers="8,12", batches=4, rounds=2, heavy_rounds=1, demo=("seed", 4000),
                 forced=True, train_imgsz=896, train_batch=128, train_rounds=2, cache=["disk"]),
    "quick": dict(imgsz=320, batch=8, workers="2", batches=4, rounds=1, heavy_rounds=1, demo=("quick", 48),
                  forced=False, warmup=2, train_imgsz=160, train_batch=4, train_rounds=1),
}


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def projected_stock_ram(workers: int, batch: int, imgsz: int, image_bytes: float) -> float:
    """Bytes a stock loader with ``workers`` processes reaches with full mosaic buffers and a full prefetch queue:
    per worker ~0.3 GiB of Python and torch plus its buffer of min(8 x batch, 1000) images, the main process
    ~0.4 GiB, and prefetch_factor (4) batches per worker waiting in shared memory (design.md section 6)."""
    buffer = min(8 * batch, 1000)
    return workers * (0.3 * 2**30 + buffer * image_bytes) + 4 * workers * batch * imgsz * imgsz * 3 + 0.4 * 2**30


def contenders(a) -> list[RunSpec]:
    """The contender matrix. Heavy rows (forced stock, DALI in CPU-only mode, plain decoding) carry
    ``rounds=a.heavy_rounds``; the throughput rows run every round."""
    base = dict(data=str(a.data), imgsz=a.imgsz, batch=a.batch, batches=a.batches, warmup=a.warmup)
    out = [(RunSpec(kind="decode", name="decode-only", **base), a.heavy_rounds)]
    out += _stock_and_ours(a, base, None)
    out.append((RunSpec(kind="ours", name="cpu-auto", workers="auto", **base), a.rounds))
    # what fidelity costs: the DCT-reduced decode wherever it can (faster, not Ultralytics' images)
    out.append((RunSpec(kind="ours", name="cpu-auto-reduced", workers="auto", reduced_decode=True, **base), a.rounds))
    out.append((RunSpec(kind="dali", name="dali", workers=0, **base), a.heavy_rounds))
    if a.cache:  # the cached regimes' own ceiling: no decode, the per-image work no painter can skip
        out.append((RunSpec(kind="cached-ceiling", name="cached-ceiling", **base), a.heavy_rounds))
    for mode in a.cache or []:  # cached regimes: each side's first build is reported apart (build_s_first)
        out += _stock_and_ours(a, base, mode)
        out.append((RunSpec(kind="ours", name=f"cpu-auto-{mode}", workers="auto", cache=mode, **base), a.rounds))
        out.append((RunSpec(kind="dali", name=f"dali-{mode}", workers=0, cache=mode, **base), a.heavy_rounds))
    if a.train:
        from loader.device import cuda_usable

        gpu = cuda_usable()[0]
        tr = dict(data=str(a.data), imgsz=a.train_imgsz, batch=a.train_batch, batches=a.train_iters,
                  warmup=a.train_warmup, model=a.train_model or ("yolo11s.yaml" if gpu else "yolo11n.yaml"),
                  device="0" if gpu else "cpu")
        names = ["stock", "cpu"] + (["dali"] if gpu else []) + ["synthetic"]
        out += [(RunSpec(kind="train", name=f"train-{t}", train=t, **tr), a.train_rounds) for t in names]
    delays = json.loads(os.environ.get("YOLO_LOADER_BENCH_DELAY", "{}"))  # deliberately slowed rows (gate tests)
    return [(replace(s, delay=float(delays.get(s.name, 0.0))), r) for s, r in out]


def _stock_and_ours(a, base: dict, cache: str | None) -> list:
    """Stock at each worker count (a count ``build_dataloader`` caps to the same processes as an earlier one is not
    run twice), forced stock where a count exceeds the cores, ours at each ``cpu_workers``; with ``cache``, the rows
    of that cached regime (``-ram`` / ``-disk`` after the name)."""
    tail = f"-{cache}" if cache else ""
    out, capped = [], {}
    for w in a.workers:
        eff = min(w, _cores())
        if eff in capped:  # build_dataloader caps both at the core count: the same loader, run once
            print(f"stock-w{w}{tail}: build_dataloader caps it at {eff} processes, as stock-w{capped[eff]}{tail}: "
                  "not run twice", flush=True)
            continue
        capped[eff] = w
        out.append((RunSpec(kind="stock", name=f"stock-w{w}{tail}", workers=w, cache=cache, **base), a.rounds))
    if a.forced:
        for w in a.workers:
            if w > _cores():
                out.append((RunSpec(kind="stock", name=f"stock-w{w}-forced{tail}", workers=w, forced=True, cache=cache,
                                    **base), a.heavy_rounds))
    for w in a.cpu_workers:
        out.append((RunSpec(kind="ours", name=f"cpu-w{w}{tail}", workers=w, cache=cache, **base), a.rounds))
    return out


def select(specs: list, only: str | None) -> list:
    """The contenders ``--only`` names (all without it). A name that is no contender of this run is said, with the
    run's contenders (the cached rows exist only with ``--cache``; a stock row capped to an earlier one's process
    count is not run twice); a selection of none stops the run: it once printed an empty table."""
    if not only:
        return specs
    keep = [n.strip() for n in only.split(",") if n.strip()]
    names = [s.name for s, _ in specs]
    unknown = [n for n in keep if n not in names]
    chosen = [(s, r) for s, r in specs if s.name in keep]
    if unknown:
        hint = " (cached rows and cached-ceiling need --cache disk or --cache ram)" if any(
            n.endswith(("-disk", "-ram")) or n == "cached-ceiling" for n in unknown) else ""
        msg = f"--only: {', '.join(unknown)} not among this run's contenders{hint}: {', '.join(names)}"
        if not chosen:
            raise SystemExit(msg)
        print(f"{msg}; running {', '.join(s.name for s, _ in chosen)}", flush=True)
    if not chosen:
        raise SystemExit("--only names no contender")
    return chosen


def memory_guard(spec: RunSpec) -> dict | None:
    """A forced stock row that would not fit this machine's memory: its row (not run, projection), else None."""
    import psutil

    if spec.kind != "stock" or not spec.forced:
        return None
    from loader.dataset import build_index
    from loader.plan import Planner

    index = build_index(spec.data, verbose=False)
    image_bytes = float((Planner(index, spec.imgsz, augment=False).load_shapes.prod(1) * 3).mean())
    need = projected_stock_ram(spec.workers, spec.batch, spec.imgsz, image_bytes)
    avail = psutil.virtual_memory().available
    if need <= 0.8 * avail:
        return None
    return {"name": spec.name, "kind": "stock", "workers_requested": spec.workers, "workers_effective": spec.workers,
            "not_run": f"needs ~{need / 2**30:.1f} GiB (projected), {avail / 2**30:.1f} GiB available",
            "pss_projected_gib": need / 2**30}


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    ap.add_argument("--preset", choices=sorted(PRESETS), default=None,
                    help="main (default): 896 px batch 32, 3 rounds; seed: the reported 896 px batch 128 setting; "
                         "quick: a CI smoke run")
    ap.add_argument("--data", type=Path, help="data.yaml (default: the preset's demo set, generated when missing)")
    ap.add_argument("--imgsz", type=int, default=None)
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--workers", default=None, help="worker counts for stock-wN (default 8,12)")
    ap.add_argument("--cpu-workers", default=None, help="painter threads for cpu-wN rows (default: --workers; "
                                                        "the main preset: the first only)")
    ap.add_argument("--batches", type=int, default=None, help="timed batches per contender")
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds of the throughput rows")
    ap.add_argument("--heavy-rounds", type=int, default=None, help="rounds of forced stock, DALI CPU-only, decode")
    ap.add_argument("--no-forced", dest="forced", action="store_false", default=None)
    ap.add_argument("--only", default=None, help="comma-separated contender names")
    ap.add_argument("--json", type=Path, help="write the table as JSON (default .demo/bench.json)")
    ap.add_argument("--plot", type=Path, help="write a PNG chart, it/s and RAM (default next to the JSON)")
    ap.add_argument("--quick", action="store_true", help="the quick preset")
    ap.add_argument("--warmup", type=int, default=None, help="warm-up batches (default: until buffers are full)")
    ap.add_argument("--cache", type=lambda t: [m for m in t.split(",") if m and m != "none"], default=None,
                    help="also compare cached regimes: ram, disk or ram,disk (stock and ours at every worker count; "
                         "the seed preset: disk, as in the reported run; 'none' for no cached rows)")
    ap.add_argument("--train", action="store_true", help="also training rows: train-stock, train-cpu (train-dali "
                                                         "on a GPU), train-synthetic")
    ap.add_argument("--train-imgsz", type=int, default=None)
    ap.add_argument("--train-batch", type=int, default=None)
    ap.add_argument("--train-iters", type=int, default=8, help="timed training iterations")
    ap.add_argument("--train-warmup", type=int, default=3)
    ap.add_argument("--train-rounds", type=int, default=None)
    ap.add_argument("--train-model", default=None, help="model yaml (default yolo11n.yaml on a CPU, yolo11s.yaml on "
                                                        "a GPU)")
    ap.add_argument("--timeout", type=float, default=900)


def _apply_preset(a) -> None:
    preset = PRESETS["quick" if a.quick else (a.preset or "main")]
    a.preset = "quick" if a.quick else (a.preset or "main")
    for k, v in preset.items():
        if k != "demo" and getattr(a, k, None) is None:
            setattr(a, k, v)
    a.workers = [int(w) for w in str(a.workers).split(",")]
    if a.cpu_workers is None:
        a.cpu_workers = a.workers[:1] if a.preset == "main" else a.workers
    else:
        a.cpu_workers = [int(w) for w in str(a.cpu_workers).split(",")]
    if a.data is None:
        from loader.demo_data import make_demo_dataset

        name, count = preset["demo"]
        demo = DEMO_DIR.with_name(name)
        a.data = demo.resolve() / "data.yaml"
        if not a.data.exists():
            size = (640, 360) if a.preset == "quick" else (1920, 1080)
            print(f"generating the demo set in {demo} ({count} images, {size[0]}x{size[1]}) ...", flush=True)
            make_demo_dataset(demo, count=count, size=size)


def _progress(k: int, n: int, name: str, msg: str) -> None:
    done = int(20 * k / n)
    print(f"[{'#' * done}{'.' * (20 - done)}] {k}/{n} {name}: {msg}", flush=True)


def run(a) -> int:
    if a.child:
        from .child import child_main

        return child_main(a.child, a.result)
    _apply_preset(a)
    specs = select(contenders(a), a.only)
    n_rounds = max((r for _, r in specs), default=0)
    rounds, total, k = [], sum(r for _, r in specs), 0
    t_start = time.perf_counter()
    for r_i in range(n_rounds):
        rows = []
        for s, r in specs:
            if r_i >= r:
                continue
            t0 = time.perf_counter()
            row = memory_guard(s) or run_child(s, a.timeout)
            rows.append(row)
            k += 1
            msg = row["error"].strip().splitlines()[-1] if "error" in row and row["error"].strip() else \
                f"not run: {row['not_run']}" if "not_run" in row else \
                f"{row['img_s']:.1f} img/s" + (f", {row['it_s']:.2f} it/s" if row.get("kind") == "train" else "")
            _progress(k, total, f"round {r_i + 1} {s.name}", f"{msg} ({time.perf_counter() - t0:.0f}s)")
        rounds.append(rows)
    table = summarize(rounds, reference=f"stock-w{a.workers[0]}")
    train_rows(table)
    title = (f"{Path(a.data).parent.name}: preset {a.preset}, imgsz={a.imgsz} batch={a.batch} cores={_cores()} "
             f"rounds={a.rounds} timed batches={a.batches}")
    print()
    print(title)
    print_table(table)
    print()
    for line in headline(table):
        print(line)
    print(f"({time.perf_counter() - t_start:.0f} s)")
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
