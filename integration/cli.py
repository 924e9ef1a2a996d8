"""``yolo-loader``: the engine's commands (``loader.cli``) plus ``train`` through Ultralytics."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import yaml

from loader.cli import build_parser as _engine_parser
from loader.cli import main as _engine_main

__all__ = ["main", "parse_key_values"]


def parse_key_values(items: list[str]) -> dict:
    """``["imgsz=896", "batch=128", "amp=False"]`` -> typed dict, as ``yolo train`` reads them."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"error: expected key=value, got {item!r}")
        out[key.strip()] = yaml.safe_load(value) if value != "" else None
    return out


def _cmd_train(a) -> int:
    from ultralytics import YOLO

    from integration.ultralytics import fast_trainer

    kv = parse_key_values(a.args)
    model = kv.pop("model", "yolo11n.yaml")
    workers = int(a.workers) if a.workers not in (None, "auto") else a.workers
    trainer = fast_trainer(backend=a.backend, workers=workers, prefetch=a.prefetch)
    YOLO(model).train(trainer=trainer, **kv)
    return 0


def _cmd_bench(a) -> int:
    from integration.bench import run

    return run(a)


def _cmd_gate(a) -> int:
    import json

    from integration.gates import check, describe, load_rules

    rows = json.loads(Path(a.json).read_text())
    results = check(rows, load_rules(a.config))
    for r in results:
        print(describe(r))
    return 0 if all(r["ok"] for r in results) else 1


def _cmd_tune(a) -> int:
    import psutil

    from integration.bench import DEMO_DIR, RunSpec, run_child
    from loader import tuner

    data = a.data or (DEMO_DIR.resolve() / "data.yaml")
    if not Path(data).exists():
        raise SystemExit(f"error: {data} not found (run `yolo-loader bench` once, or pass --data)")
    budget = tuner.parse_budget(a.ram_budget, psutil.virtual_memory().total)
    cores = os.cpu_count() or 1
    sweep_workers = [int(w) for w in a.workers.split(",")] if a.workers else \
        sorted({1, cores, *range(2, min(2 * cores, 16) + 1, max(1, cores // 4))})
    rows = []
    t0 = time.perf_counter()
    for k, w in enumerate(sweep_workers, 1):
        spec = RunSpec(kind="ours", name=f"cpu-w{w}", workers=w, data=str(data), imgsz=a.imgsz, batch=a.batch,
                       batches=a.batches, cache=a.cache)
        r = run_child(spec, 900)
        r["workers"] = w
        rows.append(r)
        msg = r["error"].strip().splitlines()[-1] if "error" in r else \
            f"{r['img_s']:.1f} img/s, PSS peak {r['pss_peak_gib']:.2f} GiB"
        eta = (time.perf_counter() - t0) / k * (len(sweep_workers) - k)
        print(f"[{k}/{len(sweep_workers)}] workers={w}: {msg} (ETA {eta:.0f}s)", flush=True)
    choice = tuner.choose(rows, budget, a.tolerance)
    print(f"\n{'workers':>8} | {'img/s':>8} | {'PSS peak GiB':>12} | fits {budget / 2**30:.1f} GiB")
    for r in rows:
        if "error" not in r:
            mark = "  <- chosen" if r is choice else ""
            print(f"{r['workers']:>8} | {r['img_s']:8.1f} | {r['pss_peak_gib']:12.2f} | "
                  f"{'yes' if r['pss_peak_bytes'] <= budget else 'no'}{mark}")
    path = tuner.save(tuner.key_for(data, a.imgsz, a.batch), choice, rows)
    print(f"recommendation workers={choice['workers']} saved to {path}: workers='auto' uses it for this data set, "
          f"imgsz and batch on this machine")
    return 0


DESCRIPTION = """\
A fast training data loader for Ultralytics YOLO: decodes and augments images on the GPU (NVIDIA DALI)
or with a lean CPU engine, in a fraction of the stock loader's memory."""
EPILOG = """\
examples:
  yolo-loader train model=yolo11n.yaml data=data.yaml imgsz=896 batch=128 epochs=100
  yolo-loader index data.yaml                 check a data set: images, boxes, skipped files and why
  yolo-loader bench --data data.yaml          stock loader vs this one on your data, same run
  yolo-loader demo-data --out demo --count 200
In Python: YOLO("yolo11n.yaml").train(data=..., trainer=FastDetectionTrainer)
           (from integration.ultralytics import FastDetectionTrainer)"""


def build_parser():
    return _engine_parser(extend=_add_commands, description=DESCRIPTION, epilog=EPILOG)


def _add_commands(sub) -> None:
    from integration.bench import add_arguments

    b = sub.add_parser("bench", help="measure this loader against the stock Ultralytics loader in the same run (default: a demo set)")
    add_arguments(b)
    b.set_defaults(fn=_cmd_bench)
    t = sub.add_parser("train", help="train a YOLO model with Ultralytics, fed by this loader (the same key=value arguments as `yolo train`)")
    t.add_argument("args", nargs="*", help="model=yolo11n.yaml data=data.yaml imgsz=896 batch=128 epochs=100 ...")
    t.add_argument("--backend", default=None, help="auto (GPU engine when a GPU and DALI are there), cpu or dali (default: auto)")
    t.add_argument("--workers", default=None, help="worker threads, or auto (default: the tuned or one per core)")
    t.add_argument("--prefetch", type=int, default=None, help="batches prepared ahead of training (default 2)")
    t.set_defaults(fn=_cmd_train)

    g = sub.add_parser("gate", help="check a bench result against the speed and memory ratios in gates.json (exit 1 when one fails)")
    g.add_argument("--json", required=True, help="table written by yolo-loader bench --json")
    g.add_argument("--config", default=None, help="gates file (default benchmarks/gates.json)")
    g.set_defaults(fn=_cmd_gate)

    u = sub.add_parser("tune", help="try thread counts on your data and machine; workers=auto then uses the fastest within the RAM budget")
    u.add_argument("--data", default=None, help="data.yaml (default: the bench demo set)")
    u.add_argument("--imgsz", type=int, default=896)
    u.add_argument("--batch", type=int, default=32)
    u.add_argument("--batches", type=int, default=8)
    u.add_argument("--workers", default=None, help="comma-separated counts to try (default: 1 .. 2 x cores)")
    u.add_argument("--ram-budget", default="50%", help="of total RAM, or e.g. 12GiB (default 50%%)")
    u.add_argument("--tolerance", type=float, default=0.05, help="take the smallest within this of the best")
    u.add_argument("--cache", default=None, choices=["ram", "disk"], help="tune for a cached regime")
    u.set_defaults(fn=_cmd_tune)


def main(argv=None) -> int:
    return _engine_main(argv, build_parser())


if __name__ == "__main__":
    sys.exit(main())
