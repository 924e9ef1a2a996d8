"""Dataset index at scale: build time, PSS of the process tree, cached start.

    python benchmarks/index_scale.py [--n 100000] [--dir /tmp/index-scale]

Writes a synthetic set of ``n`` small JPEGs (real headers, decodable) with 0-8 label rows
each, then in fresh subprocesses: (1) builds the index with no cache file, (2) starts again
with the cache. Each reports wall time of ``build_index`` and of the whole process, and the
peak PSS summed over the process and its children (header checks run in a process pool).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CHILD = r"""
import json, os, sys, threading, time
t_start = time.perf_counter()
import psutil
from loader.memory import tree_pss
peak = [0]
stop = threading.Event()
def watch():
    while not stop.is_set():
        peak[0] = max(peak[0], tree_pss())
        stop.wait(0.05)
th = threading.Thread(target=watch, daemon=True); th.start()
from loader.dataset import build_index
t0 = time.perf_counter()
ix = build_index(sys.argv[1], cache=sys.argv[2], verbose=False)
t1 = time.perf_counter()
stop.set(); th.join()
steady = psutil.Process().memory_full_info().pss
print(json.dumps({"images": len(ix), "boxes": ix.n_boxes, "cache": ix.build_info["cache"],
                  "build_index_s": round(t1 - t0, 3), "process_s": round(time.perf_counter() - t_start, 3),
                  "peak_tree_pss_mib": round(max(peak[0], steady) / 2**20, 1),
                  "pss_after_mib": round(steady / 2**20, 1), "index_mib": round(ix.nbytes() / 2**20, 2)}))
"""


def make_set(root: Path, n: int, seed: int = 0) -> Path:
    import cv2

    imd, lbd = root / "images" / "train", root / "labels" / "train"
    if (root / "data.yaml").exists() and sum(1 for _ in imd.iterdir()) == n:
        return root / "data.yaml"
    imd.mkdir(parents=True, exist_ok=True)
    lbd.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    blobs = [cv2.imencode(".jpg", rng.integers(0, 255, (48 + 8 * k, 64 + 8 * k, 3), np.uint8))[1].tobytes()
             for k in range(4)]
    for i in range(n):
        (imd / f"{i:07d}.jpg").write_bytes(blobs[i % 4])
        k = int(rng.integers(0, 9))
        rows = np.c_[rng.integers(0, 80, k), rng.uniform(0.2, 0.8, (k, 2)), rng.uniform(0.05, 0.3, (k, 2))]
        (lbd / f"{i:07d}.txt").write_text("".join(f"{int(r[0])} {r[1]:.6f} {r[2]:.6f} {r[3]:.6f} {r[4]:.6f}\n"
                                                  for r in rows))
    names = "".join(f"  {i}: c{i}\n" for i in range(80))
    (root / "data.yaml").write_text(f"train: images/train\nval: images/train\nnames:\n{names}")
    return root / "data.yaml"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dir", default="/tmp/index-scale")
    a = ap.parse_args()
    root = Path(a.dir)
    t0 = time.perf_counter()
    data = make_set(root, a.n)
    print(f"synthetic set: {a.n} images in {root} ({time.perf_counter() - t0:.1f}s to write or find)")
    cache = root / "index-cache.npz"
    cache.unlink(missing_ok=True)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    for label in ("cold build (no cache)", "cached start", "cached start"):
        out = subprocess.run([sys.executable, "-c", CHILD, str(data), str(cache)], capture_output=True, text=True,
                             env=env, check=True).stdout
        print(f"{label:22s} {json.loads(out.strip().splitlines()[-1])}")


if __name__ == "__main__":
    main()
