"""Loader comparison: ours vs the stock Ultralytics loader, in one run, on the same files.

    yolo-loader bench [--data DATA.yaml] [--imgsz 896] [--batch 32] [--workers 2,8,12]
                      [--batches 10] [--rounds 1] [--no-forced] [--json out.json]

(also ``python benchmarks/compare.py ...``). Without ``--data`` the demo set is generated
in ``.demo/bench`` (1200 images, 1920x1080: several times Ultralytics' mosaic buffer).

Every contender runs in its own subprocess:

* ``stock-wN``: Ultralytics' real ``build_yolo_dataset`` + ``build_dataloader`` with
  ``workers=N`` (default hyperparameters). ``build_dataloader`` caps workers at
  ``cpu_count // n_gpu``: the effective count is reported.
* ``stock-wN-forced``: the same dataset in Ultralytics' ``InfiniteDataLoader`` with exactly
  N worker processes (what ``build_dataloader`` builds on a machine with enough cores):
  reproduces the user's 8/12-worker RAM on a small machine.
* ``ours-wN`` / ``ours-auto``: ``loader.DetectionLoader`` with N painter threads.
* ``decode-only``: cv2.imdecode of the same JPEGs on every core, full size and DCT-reduced:
  the ceiling of any loader without a pixel cache.

Each contender warms up until its mosaic buffer / image cache has reached its steady size
(stock: 255 images per worker; ours: the shared cache), drains the batches its workers
prefetched (stock queues up to 4 x workers batches: timing them would measure the queue),
then times ``--batches`` batches.
Reported: images/s, it/s, speed-up vs the best stock configuration, CPU seconds per image
(process tree), PSS of the process tree (peak, and median over the timed phase).
Rounds are interleaved; medians over rounds are reported.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from loader.memory import tree_pss

ROOT = Path(__file__).resolve().parents[1]
DEMO_DIR = Path(".demo/bench")
DEMO_COUNT = 1200


# ----------------------------------------------------------------------------- measuring (child side)

class TreeMeter:
    """Samples PSS of this process and its children; CPU seconds of the tree between marks."""

    def __init__(self, period: float = 1.0):  # reading smaps costs CPU: sample once a second
        import psutil

        self.psutil, self.me, self.period = psutil, psutil.Process(), period
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._cpu: dict[int, float] = {}
        self._th = threading.Thread(target=self._run, daemon=True)
        self._th.start()

    def procs(self):
        try:
            return [self.me] + self.me.children(recursive=True)
        except self.psutil.Error:
            return [self.me]

    def pss(self) -> int:
        return tree_pss()

    def cpu_seconds(self) -> float:
        """CPU seconds of the tree, counting exited children by their last reading."""
        for p in self.procs():
            try:
                t = p.cpu_times()
                self._cpu[p.pid] = t.user + t.system
            except self.psutil.Error:
                pass
        return sum(self._cpu.values())

    def _run(self):
        while not self._stop.is_set():
            self.samples.append((time.perf_counter(), self.pss()))
            self._stop.wait(self.period)

    def close(self):
        self._stop.set()
        self._th.join()


def _stock_loader(spec: dict):
    from ultralytics.cfg import get_cfg
    from ultralytics.data import build_dataloader, build_yolo_dataset
    from ultralytics.data.build import InfiniteDataLoader, seed_worker
    from ultralytics.data.utils import check_det_dataset

    cfg = get_cfg(overrides={"imgsz": spec["imgsz"], "batch": spec["batch"], "workers": spec["workers"],
                             "cache": spec.get("cache") or False})
    data = check_det_dataset(spec["data"])
    ds = build_yolo_dataset(cfg, data["train"], spec["batch"], data, mode="train")
    if spec.get("forced"):
        import torch

        g = torch.Generator()
        g.manual_seed(0)
        dl = InfiniteDataLoader(ds, batch_size=spec["batch"], shuffle=True, num_workers=spec["workers"],
                                prefetch_factor=4 if spec["workers"] else None, pin_memory=False,
                                collate_fn=ds.collate_fn, worker_init_fn=seed_worker, generator=g)
    else:
        dl = build_dataloader(ds, spec["batch"], spec["workers"], shuffle=True, rank=-1, device="cpu")
    buffer = ds.max_buffer_length - 1
    return dl, dl.num_workers, buffer * max(dl.num_workers, 1), dl.close if hasattr(dl, "close") else None


def _our_loader(spec: dict):
    from loader import DetectionLoader

    dl = DetectionLoader(spec["data"], imgsz=spec["imgsz"], batch_size=spec["batch"],
                         workers=spec["workers"] or "auto", cache=spec.get("cache") or False,
                         backend="dali" if spec["kind"] == "dali" else "cpu",
                         **{k: spec[k] for k in ("dali_threads", "hw_decoder_load") if spec.get(k) is not None})
    return dl, dl.num_workers, dl.planner.buffer_len + 2 * spec["batch"], dl.close


def _decode_only(spec: dict) -> dict:
    """Images/s of plain JPEG decoding of the data set's files on every core (threads)."""
    from concurrent.futures import ThreadPoolExecutor

    import cv2
    import numpy as np

    from loader.dataset import build_index

    ix = build_index(spec["data"], verbose=False)
    files = [ix.im_files[i] for i in range(min(len(ix), 400))]
    blobs = [np.fromfile(f, np.uint8) for f in files]
    out = {}
    for name, flag in (("full", cv2.IMREAD_COLOR), ("reduced_2", cv2.IMREAD_REDUCED_COLOR_2)):
        n = os.cpu_count() or 1
        with ThreadPoolExecutor(n) as ex:
            list(ex.map(lambda b: cv2.imdecode(b, flag), blobs[:n * 2]))
            t0 = time.perf_counter()
            list(ex.map(lambda b: cv2.imdecode(b, flag), blobs))
            out[name] = len(blobs) / (time.perf_counter() - t0)
    return {"name": "decode-only", "img_s": out["full"], "img_s_reduced": out["reduced_2"], "threads": n}


def child(spec: dict) -> dict:
    if spec["kind"] == "decode":
        return _decode_only(spec)
    meter = TreeMeter()
    t_build = time.perf_counter()
    dl, workers, buffered_images, close = (_stock_loader if spec["kind"] == "stock" else _our_loader)(spec)
    dali_device = getattr(dl, "dali_device", None) if spec["kind"] == "dali" else None
    build_s = time.perf_counter() - t_build
    b = spec["batch"]
    warm = spec["warmup"] if spec.get("warmup") is not None else (-(-buffered_images // b) + 2)
    it = iter(dl)

    def next_batch():
        nonlocal it
        try:
            return next(it)
        except StopIteration:  # epoch over: the next one starts (warm-up can span epochs)
            it = iter(dl)
            return next(it)

    lat = []
    for _ in range(warm):
        t = time.perf_counter()
        next_batch()
        lat.append(time.perf_counter() - t)
    # Drain the batches the workers prefetched (stock queues up to prefetch_factor 4 x workers batches, plus the
    # ones being built): timing a queue would measure the queue. The interval between batches in the second half
    # of the warm-up is the production rate; drain until a batch has to be waited for a good part of it.
    interval = statistics.mean(lat[len(lat) // 2:]) if lat else 0.0
    drained = 0
    while drained < 1000:
        t = time.perf_counter()
        next_batch()
        drained += 1
        if time.perf_counter() - t > 0.5 * interval:
            break
    t0, c0 = time.perf_counter(), meter.cpu_seconds()
    n_img = 0
    delay = json.loads(os.environ.get("YOLO_LOADER_BENCH_DELAY", "{}")).get(spec["name"], 0.0)
    for _ in range(spec["batches"]):
        batch = next_batch()
        n_img += len(batch["im_file"])
        if getattr(batch["img"], "is_cuda", False):  # DALI on a GPU: count the batch when its pixels exist
            import torch

            torch.cuda.synchronize()
        del batch
        if delay:  # a deliberately slowed contender (gate tests)
            time.sleep(delay)
    t1, c1 = time.perf_counter(), meter.cpu_seconds()
    meter.close()
    timed = [p for t, p in meter.samples if t0 <= t <= t1] or [meter.samples[-1][1]]
    row = {"name": spec["name"], "workers_requested": spec["workers"], "workers_effective": workers,
           "img_s": n_img / (t1 - t0), "it_s": spec["batches"] / (t1 - t0), "cpu_s_per_img": (c1 - c0) / n_img,
           "cores_busy": (c1 - c0) / (t1 - t0),
           "pss_peak_gib": max(p for _, p in meter.samples) / 2**30,
           "pss_peak_bytes": max(p for _, p in meter.samples),
           "pss_steady_gib": statistics.median(timed) / 2**30, "warmup_batches": warm, "drained_batches": drained,
           "build_s": build_s,
           "images_timed": n_img}
    if dali_device:
        row["dali_device"] = dali_device
        row["name"] = "dali" if dali_device == "gpu" else "dali (CPU-only mode)"
    if spec["kind"] in ("ours", "dali"):
        row["decodes_per_sample"] = dl.stats()["decodes_per_sample"]
        row["cache_bytes"] = dl.arena.nbytes if dl.arena else dl.disk.nbytes() if dl.disk else 0
    elif spec.get("cache"):
        ds = dl.dataset
        row["cache_bytes"] = int(sum(im.nbytes for im in ds.ims if im is not None)) if spec["cache"] == "ram" else \
            int(sum(f.stat().st_size for f in ds.npy_files if f.exists()))
    if close:
        close()
    return row


# ----------------------------------------------------------------------------- orchestration

def run_child(spec: dict, timeout: float) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-m", "integration.bench", "--child", json.dumps(spec)],
                       capture_output=True, text=True, env=env, timeout=timeout)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    if r.returncode != 0 or not lines:
        return {"name": spec["name"], "error": (r.stderr or r.stdout)[-2000:]}
    return json.loads(lines[-1])


def contenders(a) -> list[dict]:
    base = {"data": str(a.data), "imgsz": a.imgsz, "batch": a.batch, "batches": a.batches}
    out = [dict(base, kind="decode", name="decode-only", workers=0)]
    for w in a.workers:
        out.append(dict(base, kind="stock", name=f"stock-w{w}", workers=w))
    if a.forced:
        for w in a.workers:
            if w > (os.cpu_count() or 1):
                out.append(dict(base, kind="stock", name=f"stock-w{w}-forced", workers=w, forced=True))
    for w in a.workers:
        out.append(dict(base, kind="ours", name=f"cpu-w{w}", workers=w))
    out.append(dict(base, kind="ours", name="cpu-auto", workers="auto"))
    out.append(dict(base, kind="dali", name="dali", workers=0))
    for mode in a.cache or []:  # cached regimes: build time is reported apart (build_s), then steady state
        w = a.workers[0]
        out.append(dict(base, kind="stock", name=f"stock-w{w}-{mode}", workers=w, cache=mode))
        out.append(dict(base, kind="ours", name=f"cpu-w{w}-{mode}", workers=w, cache=mode))
    return out


def summarize(rounds: list[list[dict]], reference: str | None = None) -> list[dict]:
    by_name: dict[str, list[dict]] = {}
    for rows in rounds:
        for r in rows:
            by_name.setdefault(r["name"], []).append(r)
    table = []
    for name, rs in by_name.items():
        ok = [r for r in rs if "error" not in r]
        if not ok:
            table.append(rs[0])
            continue
        row = dict(ok[0])
        for k, v in ok[0].items():
            if isinstance(v, float):
                row[k] = statistics.median(r[k] for r in ok)
        row["rounds"] = len(ok)
        table.append(row)
    stock = [r for r in table if r["name"].startswith("stock") and "error" not in r]
    best = max(stock, key=lambda r: r["img_s"]) if stock else None
    ref = next((r for r in table if r["name"] == reference and "error" not in r), None)
    for r in table:
        if "img_s" not in r or r["name"] == "decode-only":
            continue
        if best:
            r["speedup_vs_best_stock"] = r["img_s"] / best["img_s"]
            r["best_stock"] = best["name"]
        if ref:
            r["speedup"], r["speedup_reference"] = r["img_s"] / ref["img_s"], ref["name"]
    return table


def print_table(table: list[dict]) -> None:
    cols = ("name", "workers", "img/s", "it/s", "x reference", "CPU s/img", "cores busy", "PSS peak GiB",
            "PSS steady GiB")
    print(" | ".join(f"{c:>14s}" for c in cols))
    for r in table:
        if "error" in r:
            print(f"{r['name']:>14s} | ERROR {r['error'].splitlines()[-1] if r['error'] else ''}")
            continue
        if r["name"] == "decode-only":
            print(f"{r['name']:>14s} | {r['threads']:>14} | {r['img_s']:14.1f} | {'':>14s} | {'':>14s} | "
                  f"(reduced 1/2 decode: {r['img_s_reduced']:.1f} img/s)")
            continue
        w = f"{r['workers_effective']}" + (f" (of {r['workers_requested']})"
                                            if str(r["workers_requested"]) != str(r["workers_effective"]) else "")
        print(f"{r['name']:>14s} | {w:>14s} | {r['img_s']:14.1f} | {r['it_s']:14.2f} | "
              f"{r.get('speedup', 0):14.2f} | {r['cpu_s_per_img']:14.4f} | {r.get('cores_busy', 0):14.2f} | "
              f"{r['pss_peak_gib']:14.2f} | "
              f"{r['pss_steady_gib']:14.2f}")


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--child", help=argparse.SUPPRESS)
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


def plot(table: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in table if "error" not in r and r["name"] != "decode-only"]
    names = [r["name"] for r in rows]
    colors = ["tab:gray" if n.startswith("stock") else "tab:green" for n in names]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    a1.barh(names, [r["it_s"] for r in rows], color=colors)
    a1.set_xlabel("it/s (higher is better)")
    a2.barh(names, [r["pss_peak_gib"] for r in rows], color=colors)
    a2.set_xlabel("peak PSS of the process tree, GiB (lower is better)")
    a2.set_yticklabels([])
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run(a) -> int:
    if a.child:
        print(json.dumps(child(json.loads(a.child))))
        return 0
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
    if a.warmup is not None:
        specs = [dict(s, warmup=a.warmup) for s in specs]
    if a.only:
        keep = set(a.only.split(","))
        specs = [s for s in specs if s["name"] in keep]
    rounds, total, k = [], a.rounds * len(specs), 0
    for r_i in range(a.rounds):
        rows = []
        for s in specs:
            t0 = time.perf_counter()
            r = run_child(s, a.timeout)
            rows.append(r)
            k += 1
            msg = r.get("error", "").strip().splitlines()[-1] if "error" in r else f"{r['img_s']:.1f} img/s"
            _progress(k, total, f"round {r_i + 1} {s['name']}", f"{msg} ({time.perf_counter() - t0:.0f}s)")
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


if __name__ == "__main__":
    sys.exit(main())
