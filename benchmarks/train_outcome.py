"""Same training? The stock trainer vs ours, several seeds each, every final model scored by Ultralytics' own
validator.

    python benchmarks/train_outcome.py [--data D] [--imgsz 160] [--batch 16] [--epochs 50] [--seeds 0,1]
        [--configs stock,cpu,cpu-reduced] [--include EARLIER.json ...] [--json F] [--png F]

Configurations: ``stock`` (Ultralytics' DetectionTrainer), ``cpu`` (FastDetectionTrainer, CPU engine, its
defaults), ``cpu-reduced`` (the same with ``reduced_decode=True``, the DCT-reduced decode wherever it can),
``dali`` (the DALI engine; CPU-only mode here: slow). Without ``--data`` a learnable demo set is generated
in ``.demo/outcome`` (96 train / 24 val images of 640x480, the fidelity review's setting). Each run is its
own process: yolo11n.yaml from scratch, ``deterministic=True``, the given seed, no plots; afterwards its
last weights are scored by the *stock* ``DetectionValidator`` on the val split, so every configuration is
measured the same way. Printed: a mAP50 / mAP50-95 table, the stock seed spread, whether each configuration's
runs fall inside it; written: a JSON of the runs and a PNG of the loss curves (from each run's results.csv).
``--include`` adds the runs of earlier JSONs (same settings) to the table, so more seeds can be added later.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys
from ultralytics import YOLO
spec = json.loads(sys.argv[1])
kw = dict(data=spec["data"], imgsz=spec["imgsz"], batch=spec["batch"], epochs=spec["epochs"], device="cpu",
          workers=2, plots=False, val=False, amp=False, project=spec["project"], name=spec["name"], exist_ok=True,
          verbose=False, seed=spec["seed"], deterministic=True)
if spec["config"] != "stock":
    from integration.ultralytics import fast_trainer
    backend = "dali" if spec["config"] == "dali" else "cpu"
    kw["trainer"] = fast_trainer(backend=backend, workers=2,
                                 reduced_decode=True if spec["config"] == "cpu-reduced" else None)
model = YOLO("yolo11n.yaml")
model.train(**kw)
last = str(model.trainer.last)
m = YOLO(last).val(data=spec["data"], imgsz=spec["imgsz"], batch=spec["batch"], device="cpu", plots=False,
                   verbose=False, project=spec["project"], name=spec["name"] + "-val", exist_ok=True)
print("RESULT " + json.dumps({"map50": float(m.box.map50), "map": float(m.box.map), "weights": last}))
"""


def _losses(csv_path: Path) -> dict[str, list[float]]:
    rows = list(csv.DictReader(open(csv_path)))
    keys = [k for k in rows[0] if k.strip().startswith("train/")]
    return {k.strip(): [float(r[k]) for r in rows] for k in keys}


def run_one(config: str, seed: int, a, project: str) -> dict:
    spec = dict(config=config, seed=seed, data=str(a.data), imgsz=a.imgsz, batch=a.batch, epochs=a.epochs,
                project=project, name=f"{config}-s{seed}")
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), YOLO_OFFLINE="1")
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", CHILD, json.dumps(spec)], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - t
    line = next((x for x in r.stdout.splitlines() if x.startswith("RESULT ")), None)
    if r.returncode != 0 or line is None:
        return {"config": config, "seed": seed, "error": (r.stderr or r.stdout)[-2000:], "seconds": seconds}
    res = json.loads(line[len("RESULT "):])
    res.update(config=config, seed=seed, seconds=seconds,
               losses=_losses(Path(project) / spec["name"] / "results.csv"))
    return res


def verdict(runs: list[dict]) -> dict:
    """Per configuration: its runs' mAPs and whether they lie inside the stock runs' [min, max] spread."""
    ok = [r for r in runs if "error" not in r]
    stock = [r for r in ok if r["config"] == "stock"]
    out = {}
    for key in ("map50", "map"):
        lo, hi = (min(r[key] for r in stock), max(r[key] for r in stock)) if stock else (None, None)
        out[key] = {"stock_spread": [lo, hi]}
        if stock:
            sv = [r[key] for r in stock]
            out[key]["stock"] = {"runs": sv, "mean": statistics.mean(sv),
                                 "sd": statistics.stdev(sv) if len(sv) > 1 else None}
        for cfg in sorted({r["config"] for r in ok} - {"stock"}):
            vals = [r[key] for r in ok if r["config"] == cfg]
            mean = statistics.mean(vals)
            out[key][cfg] = {"runs": vals, "mean": mean, "median": statistics.median(vals),
                             "inside_stock_spread": lo is not None and all(lo <= v <= hi for v in vals),
                             "mean_inside_stock_spread": lo is not None and lo <= mean <= hi,
                             "mean_minus_stock_mean": mean - out[key]["stock"]["mean"] if stock else None}
    return out


def plot(runs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in runs if "error" not in r]
    keys = sorted({k for r in ok for k in r["losses"]})
    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 4))
    colours = {"stock": "tab:gray", "cpu": "tab:green", "cpu-reduced": "tab:orange", "dali": "tab:blue"}
    for ax, k in zip(axes if len(keys) > 1 else [axes], keys):
        for r in ok:
            ax.plot(r["losses"][k], color=colours.get(r["config"], "k"), alpha=0.8,
                    label=f"{r['config']} seed {r['seed']}")
        ax.set_title(k)
        ax.set_xlabel("epoch")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path)
    ap.add_argument("--imgsz", type=int, default=160)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--configs", default="stock,cpu,cpu-reduced")
    ap.add_argument("--include", type=Path, action="append", default=[], help="runs of an earlier JSON to add")
    ap.add_argument("--json", type=Path, default=Path(".demo/train_outcome.json"))
    ap.add_argument("--png", type=Path, default=None)
    a = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    if a.data is None:
        from loader.demo_data import make_demo_dataset

        a.data = Path(".demo/outcome").resolve() / "data.yaml"
        if not a.data.exists():
            make_demo_dataset(a.data.parent, count=96, val_count=24, size=(640, 480), seed=0)
    seeds = [int(s) for s in a.seeds.split(",")] if a.seeds else []
    configs = a.configs.split(",") if a.configs else []
    runs = [r for f in a.include for r in json.loads(f.read_text())["runs"]]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="outcome-") as project:
        for seed in seeds:  # interleaved: every configuration of a seed before the next seed
            for cfg in configs:
                r = run_one(cfg, seed, a, project)
                runs.append(r)
                msg = r["error"].strip().splitlines()[-1] if "error" in r else \
                    f"mAP50 {r['map50']:.4f}  mAP50-95 {r['map']:.4f}"
                print(f"{cfg:>12s} seed {seed}: {msg} ({r['seconds']:.0f} s)", flush=True)
    v = verdict(runs)
    seeds = sorted({r["seed"] for r in runs})
    configs = list(dict.fromkeys(r["config"] for r in runs))
    print(f"\n{'config':>12s} | " + " | ".join(f"seed {s}: mAP50 / mAP50-95" for s in seeds))
    for cfg in configs:
        cells = []
        for s in seeds:
            r = next((x for x in runs if x["config"] == cfg and x["seed"] == s), None)
            cells.append("error" if r is None or "error" in r else f"{r['map50']:.3f} / {r['map']:.3f}")
        print(f"{cfg:>12s} | " + " | ".join(f"{c:>26s}" for c in cells))
    for key, name in (("map50", "mAP50"), ("map", "mAP50-95")):
        lo, hi = v[key]["stock_spread"]
        if lo is None:
            continue
        st = v[key]["stock"]
        sd = f", sd {st['sd']:.3f}" if st["sd"] is not None else ""
        print(f"{name}: stock {len(st['runs'])} seeds: mean {st['mean']:.3f}, spread {lo:.3f}-{hi:.3f}{sd}")
        for c, d in v[key].items():
            if c in ("stock_spread", "stock"):
                continue
            print(f"{'':>10s}{c}: mean {d['mean']:.3f} ({d['mean_minus_stock_mean']:+.3f} vs stock), every run inside "
                  f"the stock spread: {d['inside_stock_spread']}, mean inside it: {d['mean_inside_stock_spread']}")
    print(f"({time.perf_counter() - t0:.0f} s)")
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps({"settings": {k: str(v_) for k, v_ in vars(a).items()}, "runs": runs, "verdict": v},
                                 indent=1))
    png = a.png or a.json.with_suffix(".png")
    plot(runs, png)
    print(f"wrote {a.json} and {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
