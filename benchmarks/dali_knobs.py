"""Sweep the DALI engine's knobs on your data and machine: ``dali_threads`` (DALI's CPU thread pool) and, on
a GPU, ``hw_decoder_load`` (share of JPEGs for the hardware decoder). Each point runs in its own
process (``yolo-loader bench``'s child), so figures include the whole process tree.

    python benchmarks/dali_knobs.py --data data.yaml [--imgsz 896] [--batch 128] [--threads 1,2,4,8]
        [--hw-load 0.0,0.65,1.0] [--batches 8]

Prints images/s, CPU cores busy and peak PSS per point.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from integration.bench import RunSpec, run_child  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--imgsz", type=int, default=896)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--batches", type=int, default=6)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", default="1,2,4")
    ap.add_argument("--hw-load", default=None, help="comma-separated hw_decoder_load values (GPU only)")
    a = ap.parse_args(argv)
    loads = [float(x) for x in a.hw_load.split(",")] if a.hw_load else [None]
    print(f"{'dali_threads':>12s} | {'hw_load':>8s} | {'img/s':>8s} | {'cores busy':>10s} | {'PSS peak GiB':>12s} | device")
    for t in (int(x) for x in a.threads.split(",")):
        for load in loads:
            spec = RunSpec(kind="dali", name="dali", data=a.data, imgsz=a.imgsz, batch=a.batch, batches=a.batches,
                           warmup=a.warmup, workers=0, dali_threads=t, hw_decoder_load=load)
            r = run_child(spec, timeout=1800)
            if "error" in r:
                print(f"{t:>12d} | {str(load):>8s} | ERROR {r['error'].strip().splitlines()[-1]}")
                continue
            print(f"{t:>12d} | {str(load):>8s} | {r['img_s']:8.1f} | {r['cores_busy']:10.2f} | "
                  f"{r['pss_peak_gib']:12.2f} | {r.get('device')}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
