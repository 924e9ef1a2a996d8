"""One contender, measured in its own process: build, warm up, drain the prefetched queue, time, report.

The parent starts ``python -m integration.bench --child SPEC_JSON --result FILE``; the row is written to
``FILE`` as JSON (a dedicated channel: nothing is parsed from stdout, which libraries may print to).
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from pathlib import Path

from loader.memory import tree_cpu_seconds, tree_minor_faults, tree_pss_parts

from .contenders import build, cached_ceiling, decode_only
from .spec import RunSpec

__all__ = ["TreeMeter", "measure", "child_main"]


class TreeMeter:
    """Samples the PSS of this process tree once a second (reading smaps costs CPU), and its file-backed part;
    CPU seconds between marks."""

    def __init__(self, period: float = 1.0):
        self.period = period
        self.samples: list[tuple[float, int]] = []
        self.file_peak = 0
        self._seen: dict[int, float] = {}
        self._faults: dict[int, int] = {}
        self._stop = threading.Event()
        self._th = threading.Thread(target=self._run, daemon=True, name="bench-meter")
        self._th.start()

    def cpu_seconds(self) -> float:
        return tree_cpu_seconds(seen=self._seen)

    def minor_faults(self) -> int:
        return tree_minor_faults(seen=self._faults)

    def _run(self):
        while not self._stop.is_set():
            pss, file = tree_pss_parts()  # one walk of the mappings per sample (they cost the kernel ~10 ms each)
            self.samples.append((time.perf_counter(), pss))
            self.file_peak = max(self.file_peak, file)
            self._stop.wait(self.period)

    def close(self):
        self._stop.set()
        self._th.join()


def warmup_batches(spec: RunSpec, c) -> int:
    """Batches before timing: ``spec.warmup``, else until the contender's buffers are full (``c.buffered_images``)
    and two more."""
    return spec.warmup if spec.warmup is not None else -(-c.buffered_images // spec.batch) + 2


def measure(spec: RunSpec) -> dict:
    """The row of one contender.

    Warm-up runs until its mosaic buffers / image cache are full (stock: 255 images per worker; ours: the shared
    buffer, to its byte budget when it holds decoded images); the batches its workers prefetched are drained
    (stock queues up to 4 x workers batches: timing them would measure the queue); then ``spec.batches`` batches
    are timed.
    """
    if spec.kind == "decode":
        return decode_only(spec)
    if spec.kind == "cached-ceiling":
        return cached_ceiling(spec)
    meter = TreeMeter()
    if spec.kind == "train":
        from .train import measure_training

        row = measure_training(spec, meter)
        meter.close()
        peak = max(p for _, p in meter.samples)
        return dict(row, pss_peak_gib=peak / 2**30, pss_peak_bytes=peak)
    t_build = time.perf_counter()
    c = build(spec)
    build_s = time.perf_counter() - t_build
    warm = warmup_batches(spec, c)
    it = iter(c.loader)

    epochs = 0

    def next_batch():
        nonlocal it, epochs
        try:
            return next(it)
        except StopIteration:  # epoch over: the next one starts (warm-up can span epochs)
            it = iter(c.loader)
            epochs += 1
            return next(it)

    lat = []
    for _ in range(warm):
        t = time.perf_counter()
        next_batch()
        lat.append(time.perf_counter() - t)
    # Drain what the workers made ahead (up to prefetch_factor x workers batches for stock), then on until a batch
    # has to be waited for a good part of the production interval (the second half of the warm-up's).
    interval = statistics.mean(lat[len(lat) // 2:]) if lat else 0.0
    drained = 0
    while drained < c.queued_batches + 1000:
        t = time.perf_counter()
        next_batch()
        drained += 1
        if drained >= c.queued_batches and time.perf_counter() - t > 0.5 * interval:
            break
    # every worker process delivers at least two timed batches (its batches arrive in bursts)
    n_batches = max(spec.batches, 2 * c.workers) if spec.kind == "stock" else spec.batches
    t0, c0, f0 = time.perf_counter(), meter.cpu_seconds(), meter.minor_faults()
    e0 = epochs
    n_img = 0
    for _ in range(n_batches):
        batch = next_batch()
        n_img += len(batch["im_file"])
        if getattr(batch["img"], "is_cuda", False):  # batches on the GPU: count one when its pixels exist
            import torch

            torch.cuda.synchronize()
        del batch
        if spec.delay:
            time.sleep(spec.delay)
    t1, c1, f1 = time.perf_counter(), meter.cpu_seconds(), meter.minor_faults()
    meter.close()
    timed = [p for t, p in meter.samples if t0 <= t <= t1] or [meter.samples[-1][1]]
    peak = max(p for _, p in meter.samples)
    row = {"name": spec.name, "kind": spec.kind, "forced": spec.forced, "workers_requested": spec.workers,
           "workers_effective": c.workers,
           "img_s": n_img / (t1 - t0), "it_s": n_batches / (t1 - t0), "cpu_s_per_img": (c1 - c0) / n_img,
           "faults_per_img": (f1 - f0) / n_img,
           "cores_busy": (c1 - c0) / (t1 - t0), "pss_peak_gib": peak / 2**30, "pss_peak_bytes": peak,
           "pss_steady_gib": statistics.median(timed) / 2**30, "warmup_batches": warm, "drained_batches": drained,
           "build_s": build_s, "images_timed": n_img, "batches_timed": n_batches, "cache": spec.cache,
           "pss_file_peak_gib": meter.file_peak / 2**30,
           # an epoch started inside the timed batches: ours then finds the last epoch's images still buffered
           "timed_across_epochs": epochs > e0, **c.extra()}
    if spec.kind == "dali" and row.get("device") != "cuda":
        row["name"] = f"{spec.name} (CPU-only mode)"
    if c.close:
        c.close()
    return row


def child_main(spec_json: str, result: str) -> int:
    row = measure(RunSpec.from_json(spec_json))
    Path(result).write_text(json.dumps(row))
    return 0
