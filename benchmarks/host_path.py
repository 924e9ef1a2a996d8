"""The host path: what the loader's Python costs per batch, apart from pixel work (issue 13's budget).

    python benchmarks/host_path.py --data D [--imgsz 896] [--batch 128] [--batches 6] [--json F] [--no-gil]

At 2,000 img/s a batch of 128 has 64 ms for everything, and GIL-held Python does not get faster with cores.
Measured here, medians over ``--batches`` batches after warm-up (min-max in the JSON):

* ``plan_ms``: the batch planner, one batch of mosaics (default hyperparameters);
* ``feed_ms``: the DALI engine's graph inputs for a batch (argument arrays, the tile list) handed to
  the pipeline (``feed_input``), tiles already decoded;
* ``host_ms``: all of the DALI engine's host work for a batch (plan, the decode's bookkeeping and file
  reads, readability, feeds, read-back and colour step, batch assembly), i.e. the batch's wall time
  minus DALI's own operator runs (decode, graph); ``host_ms_excl_colour`` without the colour step,
  which on a GPU is device work (here, in DALI's CPU-only mode, OpenCV on the host); ``stages_ms`` the
  per-stage breakdown;
* ``gil``: the CPU engine's GIL-held share per sample, from ``py-spy record --gil`` (samples only while
  a thread holds the GIL) on its painter threads, with the CPU time per sample and the projected
  ceiling at 16 threads (``min(16 / cpu_s, 1 / gil_s)`` images/s per process).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _summary(xs: list[float]) -> dict:
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs)}


def plan_times(index, imgsz: int, batch: int, batches: int) -> list[float]:
    from loader.plan import Planner

    planner = Planner(index, imgsz, None, batch_size=batch, seed=0)
    order = np.random.default_rng(0).permutation(len(index))
    out = []
    for k in range(batches + 2):
        pos = np.arange(k * batch, (k + 1) * batch) % len(order)
        t = time.perf_counter()
        planner.plan_batch(0, pos, order)
        out.append((time.perf_counter() - t) * 1000)
    return out[2:]


def dali_times(data: str, imgsz: int, batch: int, batches: int) -> dict:
    """feed_ms and the engine's host time per batch, driving the DALI engine directly (one thread)."""
    from loader import DetectionLoader
    from loader.batch import assemble
    from loader.epoch import BatchWork

    out = {"feed_ms": [], "host_ms": [], "host_ms_excl_colour": [], "wall_ms": [], "stages_ms": []}
    with DetectionLoader(data, imgsz=imgsz, batch_size=batch, workers=1, prefetch=1, backend="dali") as dl:
        engine, order = dl.engine, dl.sampler.indices()
        out["device"] = engine.device
        nb = min(len(dl), batches + 2)
        for b in range(nb):  # the engine's own path for a batch, as a painter thread runs it
            lo, hi = b * batch, min((b + 1) * batch, len(order))
            shape = (hi - lo, imgsz, imgsz, 3)
            buf = engine.out_buffer(shape)
            work = BatchWork(b, lo, hi, dl.ring.acquire(shape) if buf is None else buf, 0, order, dl.schedule,
                             dl.policy)
            before = {k: v["s"] for k, v in engine.times.snapshot().items()}
            t = time.perf_counter()
            for fn, args in engine.tasks(work):
                fn(*args)
            assemble(work.final(), work.out, dl.index.im_files)
            wall = time.perf_counter() - t
            st = {k: (v["s"] - before.get(k, 0.0)) * 1000 for k, v in engine.times.snapshot().items()}
            if b < 2:
                continue
            ops = st.get("decode", 0.0) + st.get("graph", 0.0)
            out["wall_ms"].append(wall * 1000)
            out["host_ms"].append(wall * 1000 - ops)
            out["host_ms_excl_colour"].append(wall * 1000 - ops - st.get("finish", 0.0))
            out["stages_ms"].append(st)
            # feeds alone, for the same (now decoded) batch: arrays + tile list + feed_input, then the run
            batch_plans = work.final()
            painter = engine.painter_for(batch_plans)
            t = time.perf_counter()
            feeds = painter.feeds(batch_plans, engine.source.get)
            painter.feed(feeds)
            out["feed_ms"].append((time.perf_counter() - t) * 1000)
            painter.run(None)  # consume what was fed (nothing else runs this painter here)
    stages = out.pop("stages_ms")
    res = {k: _summary(v) for k, v in out.items() if isinstance(v, list)}
    res["stages_ms"] = {k: statistics.median(s.get(k, 0.0) for s in stages) for k in stages[0]}
    res["device"] = out["device"]
    return res


GIL_CHILD = r"""
import json, sys, time
from loader import DetectionLoader
data, imgsz, batch, batches, workers, result = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), \
    int(sys.argv[5]), sys.argv[6]
with DetectionLoader(data, imgsz=imgsz, batch_size=batch, workers=workers, backend="cpu", prefetch=1) as dl:
    t0, c0 = time.perf_counter(), time.process_time()
    it = iter(dl)
    for _ in range(batches):
        next(it)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    painted = dl.samples  # prefetch=1: a batch is submitted only when the previous one is asked for
open(result, "w").write(json.dumps({"samples": painted, "wall_s": wall, "cpu_s": cpu, "workers": workers}))
"""


def _gil_run(spy: str, data: str, imgsz: int, batch: int, batches: int, workers: int, rate: int) -> dict:
    """One CPU-engine run under py-spy: painter-thread GIL samples, painted samples, CPU seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        raw, result = Path(tmp) / "raw.txt", Path(tmp) / "result.json"
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        r = subprocess.run([spy, "record", "--gil", "--nonblocking", "-r", str(rate), "-f", "raw", "-o", str(raw),
                            "--", sys.executable, "-c", GIL_CHILD, data, str(imgsz), str(batch), str(batches),
                            str(workers), str(result)], capture_output=True, text=True, env=env)
        if r.returncode != 0 or not result.exists():
            raise RuntimeError((r.stderr or r.stdout)[-1500:])
        out = json.loads(result.read_text())
        out["painter"] = out["consumer"] = 0
        for line in raw.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if "_sample (loader/engines/cpu.py" in stack:  # a painter thread holding the GIL
                out["painter"] += int(count)
            elif "__iter__ (loader/epoch.py" in stack:  # the consumer: submitting work, assembling the batch
                out["consumer"] += int(count)
    return out


def gil_share(data: str, imgsz: int, batch: int, batches: int, workers: int, rate: int = 250) -> dict:
    """GIL-held ms per sample of the CPU engine's painter threads (py-spy --gil), CPU ms per sample, projection.

    Two runs, ``batches`` and ``2 * batches`` batches long; per-sample figures are their differences divided by
    the difference in painted samples, so start-up (imports, the first decodes, thread starts) cancels out."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        return {"error": "py-spy is not installed (pip install py-spy)"}
    try:
        short, long = (_gil_run(spy, data, imgsz, batch, n, workers, rate) for n in (batches, 2 * batches))
    except RuntimeError as e:
        return {"error": str(e)}
    n = long["samples"] - short["samples"]
    gil_ms = (long["painter"] - short["painter"]) / rate / n * 1000
    cpu_ms = (long["cpu_s"] - short["cpu_s"]) / n * 1000
    return {"samples": n, "workers": workers, "img_s": n / (long["wall_s"] - short["wall_s"]),
            "cpu_ms_per_sample": cpu_ms, "gil_ms_per_sample": gil_ms,
            "consumer_gil_ms_per_sample": (long["consumer"] - short["consumer"]) / rate / n * 1000,
            "gil_share": gil_ms / cpu_ms if cpu_ms else None,
            "projected_img_s_16_threads": min(16 / (cpu_ms / 1000), 1 / (gil_ms / 1000)) if gil_ms > 0 else None,
            "py_spy_rate_hz": rate}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--imgsz", type=int, default=896)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--batches", type=int, default=6)
    ap.add_argument("--gil-batch", type=int, default=16, help="batch size of the CPU-engine run under py-spy")
    ap.add_argument("--gil-batches", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2, help="painter threads of the CPU-engine run")
    ap.add_argument("--no-gil", action="store_true", help="skip the py-spy measurement")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    from loader.dataset import build_index

    index = build_index(a.data, verbose=False)
    if len(index) < 3 * a.batch:  # two warm-up batches, then at least one timed
        ap.error(f"{a.data} has {len(index)} images: too small for batches of {a.batch} (the first two batches warm "
                 f"up; at least {3 * a.batch} images are needed, {(a.batches + 2) * a.batch} for --batches "
                 f"{a.batches})")
    res = {"data": str(a.data), "imgsz": a.imgsz, "batch": a.batch, "cores": os.cpu_count()}
    plan = plan_times(index, a.imgsz, a.batch, a.batches)
    res["plan_ms"] = _summary(plan)
    try:
        import nvidia.dali  # noqa: F401

        res.update(dali_times(a.data, a.imgsz, a.batch, a.batches))
    except ImportError as e:
        res["dali"] = f"not measured: {e}"
    if not a.no_gil:
        res["gil"] = gil_share(a.data, a.imgsz, a.gil_batch, a.gil_batches, a.workers)
    for k in ("plan_ms", "feed_ms", "host_ms", "host_ms_excl_colour", "wall_ms"):
        if k in res:
            v = res[k]
            print(f"{k:>20s}: {v['median']:8.2f} ms per batch of {a.batch} (min {v['min']:.2f}, max {v['max']:.2f}, "
                  f"{v['n']} batches)")
    if "stages_ms" in res:
        print(f"{'stages':>20s}: " + ", ".join(f"{k} {v:.1f}" for k, v in sorted(res["stages_ms"].items())))
    g = res.get("gil")
    if g and "error" not in g:
        print(f"{'CPU engine':>20s}: {g['cpu_ms_per_sample']:.2f} ms CPU per sample, {g['gil_ms_per_sample']:.3f} ms "
              f"of it with the GIL ({100 * g['gil_share']:.1f} %), {g['workers']} painter threads; projected "
              f"ceiling at 16 threads {g['projected_img_s_16_threads']:.0f} img/s per process")
    elif g:
        print(f"{'CPU engine GIL':>20s}: {g['error']}")
    if a.json:
        a.json.write_text(json.dumps(res, indent=1))
        print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
