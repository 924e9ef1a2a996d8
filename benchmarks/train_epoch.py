"""Epoch time of real Ultralytics training, stock loader vs ours, identical settings.

    python benchmarks/train_epoch.py --data DATA.yaml [--imgsz 320] [--batch 16] [--epochs 2] [--workers 2]

Each run is a subprocess training ``yolo11n.yaml`` from scratch with validation off; the
per-epoch times come from Ultralytics' own ``results.csv`` (``time`` column, cumulative).
On a CPU the model dominates the step: the loader can only remove its own share.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys
from ultralytics import YOLO
spec = json.loads(sys.argv[1])
kw = dict(data=spec["data"], imgsz=spec["imgsz"], batch=spec["batch"], epochs=spec["epochs"], device="cpu",
          workers=spec["workers"], plots=False, val=False, amp=False, project=spec["project"], name=spec["name"],
          exist_ok=True, verbose=False, close_mosaic=0)
if spec["ours"]:
    from integration.ultralytics import fast_trainer
    kw["trainer"] = fast_trainer(workers=spec["workers"])
YOLO("yolo11n.yaml").train(**kw)
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--imgsz", type=int, default=320)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    project = tempfile.mkdtemp(prefix="train-epoch-")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = {}
    for name, ours in (("stock", False), ("ours", True)):
        spec = dict(data=a.data, imgsz=a.imgsz, batch=a.batch, epochs=a.epochs, workers=a.workers, project=project,
                    name=name, ours=ours)
        subprocess.run([sys.executable, "-c", CHILD, json.dumps(spec)], check=True, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        rows = list(csv.DictReader(open(Path(project) / name / "results.csv")))
        t = [float(r["time"]) for r in rows]
        out[name] = [t[0]] + [b - x for x, b in zip(t, t[1:])]
    print(f"imgsz={a.imgsz} batch={a.batch} workers={a.workers} (Ultralytics forces 0 worker processes on CPU; "
          f"ours runs {a.workers} painter threads)")
    for name, times in out.items():
        print(f"{name:6s} epoch seconds: {', '.join(f'{x:.1f}' for x in times)}")
    print(f"ours / stock, last epoch: {out['ours'][-1] / out['stock'][-1]:.2f}")


if __name__ == "__main__":
    main()
