"""The contenders a bench child builds: Ultralytics' stock loader, ours (CPU or DALI engine), and plain
decoding. The only place of the bench that touches Ultralytics' dataset internals."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from .spec import RunSpec

__all__ = ["Contender", "build", "decode_only"]


@dataclass
class Contender:
    """A built loader: ``workers`` it really runs, ``buffered_images`` its mosaic buffers hold when full (the
    warm-up target), ``queued_batches`` how many finished batches it can hold ahead of the consumer (drained
    before timing: timing a queue measures the queue), ``close``, and ``extra()`` (figures for the row once the
    run is over)."""

    loader: object
    workers: int
    buffered_images: int
    queued_batches: int
    close: object
    extra: object


def _stock(spec: RunSpec) -> Contender:
    from ultralytics.cfg import get_cfg
    from ultralytics.data import build_dataloader, build_yolo_dataset
    from ultralytics.data.build import InfiniteDataLoader, seed_worker
    from ultralytics.data.utils import check_det_dataset

    cfg = get_cfg(overrides={"imgsz": spec.imgsz, "batch": spec.batch, "workers": spec.workers,
                             "cache": spec.cache or False})
    data = check_det_dataset(spec.data)
    ds = build_yolo_dataset(cfg, data["train"], spec.batch, data, mode="train")
    if not spec.cache:  # stock loads a *.npy beside an image in any cache mode once one exists (a cache="disk" row
        # wrote them): the uncached rows decode the JPEGs, what a run without that cache does
        ds.npy_files = [Path(os.devnull).with_name(f"no-such-dir-{os.getpid()}") / f"{i}.npy"
                        for i in range(len(ds.npy_files))]
    if spec.forced:
        import torch

        g = torch.Generator()
        g.manual_seed(0)
        dl = InfiniteDataLoader(ds, batch_size=spec.batch, shuffle=True, num_workers=spec.workers,
                                prefetch_factor=4 if spec.workers else None, pin_memory=False,
                                collate_fn=ds.collate_fn, worker_init_fn=seed_worker, generator=g)
    else:
        dl = build_dataloader(ds, spec.batch, spec.workers, shuffle=True, rank=-1, device="cpu")
    buffer = ds.max_buffer_length - 1

    def extra() -> dict:
        if spec.cache == "ram":
            return {"cache_bytes": int(sum(im.nbytes for im in ds.ims if im is not None))}
        if spec.cache == "disk":
            return {"cache_bytes": int(sum(f.stat().st_size for f in ds.npy_files if f.exists()))}
        return {}

    w = max(dl.num_workers, 1)  # DataLoader: prefetch_factor (4) batches per worker, one more being made by each
    return Contender(dl, dl.num_workers, buffer * w, 4 * w + w if dl.num_workers else 0, getattr(dl, "close", None),
                     extra)


def _ours(spec: RunSpec) -> Contender:
    from loader import DetectionLoader

    kw = {k: getattr(spec, k) for k in ("dali_threads", "hw_decoder_load", "reduced_decode")
          if getattr(spec, k) is not None}
    dl = DetectionLoader(spec.data, imgsz=spec.imgsz, batch_size=spec.batch, workers=spec.workers or "auto",
                         cache=spec.cache, backend="dali" if spec.kind == "dali" else "cpu", **kw)

    def extra() -> dict:
        st = dl.stats()
        out = {"engine": st["engine"], "device": st["device"], "decodes_per_sample": st["decodes_per_sample"],
               "cache_bytes": dl.images.cache_bytes, "store_backing": st["store"]["backing"],
               "store_built_here": st["store"]["built_here"],
               "store_errors": st["store_errors"], "read_faults": st["read_faults"]}
        if spec.kind == "dali":
            out.update(dali_fallbacks=st["dali_fallbacks"], tile_buffer_device=st["tile_buffer"]["device"],
                       tile_uploads=st["tile_uploads"])
        return out

    return Contender(dl, dl.num_workers, _held_when_full(dl, spec), dl.config.prefetch + 1, dl.close, extra)


def _held_when_full(dl, spec: RunSpec) -> int:
    """Images our buffer holds once full: Ultralytics' mosaic buffer plus two batches, or, without a store (the
    image cache is then filled by decodes), as many load-size tiles as its byte budget holds. The budget is sized
    for square tiles, so on 16:9 images it holds ~1.8x as many: a warm-up that stopped at the mosaic buffer's count
    timed the cache's first fill (~85 instead of ~6 page faults per image at 896 px), which a large data set pays
    once, in its first few hundred images."""
    import numpy as np

    held = dl.planner.buffer_len + 2 * spec.batch
    if spec.cache is None:
        tile = float(np.prod(dl.planner.load_shapes, axis=1, dtype=np.float64).mean()) * 3
        held = max(held, min(len(dl.planner.load_shapes), int(dl.images.stats()["budget"] // tile)))
    return held


def build(spec: RunSpec) -> Contender:
    return _stock(spec) if spec.kind == "stock" else _ours(spec)


def _warm_rates(one_pass, images: int, passes: int) -> list[float]:
    """Images/s of ``passes`` timed runs of ``one_pass()`` after one untimed (warm-up) run, sorted."""
    one_pass()
    rates = []
    for _ in range(passes):
        t0 = time.perf_counter()
        one_pass()
        rates.append(images / (time.perf_counter() - t0))
    return sorted(rates)


def decode_only(spec: RunSpec, passes: int = 3) -> dict:
    """The ceiling of any loader without a pixel cache, measured warm: the data set's JPEGs (up to 400) decoded by
    one thread per core with the CPU engine's settings (``cv2.setNumThreads(1)``), after one untimed pass over
    them all (allocator and page cache warm: a cold first pass measured under half of this, issue 23), then
    ``passes`` timed passes: the median and the spread. The decoder is the fastest one the engine has for those
    bytes (``loader.kernels.jpeg.decode_jpeg``: the native kernel where it runs, else cv2.imdecode), so the
    ceiling never flatters the engine; ``img_s_opencv`` is cv2.imdecode's own rate (stock's decoder). Also decode
    + resize to the load size through the engine's ``decode_resized`` (what a fresh image costs any loader that
    resizes as Ultralytics does), and the DCT-reduced 1/2 decode."""
    from concurrent.futures import ThreadPoolExecutor

    import cv2
    import numpy as np

    from loader.dataset import build_index
    from loader.images.decode import decode_resized
    from loader.kernels.jpeg import decode_jpeg, kernel
    from loader.plan import load_size

    cv2.setNumThreads(1)  # as the CPU engine: the threads do the parallel work
    ix = build_index(spec.data, verbose=False)
    k = min(len(ix), 400)
    blobs = [np.fromfile(ix.im_files[i], np.uint8) for i in range(k)]
    shapes = [tuple(int(v) for v in ix.shapes[i]) for i in range(k)]
    jpeg = [bool(ix.formats[i] == 1) for i in range(k)]
    n = len(os.sched_getaffinity(0))
    jobs = {
        "full": lambda j: decode_jpeg(blobs[j], 1, shapes[j]) if jpeg[j] else cv2.imdecode(blobs[j], cv2.IMREAD_COLOR),
        "opencv": lambda j: cv2.imdecode(blobs[j], cv2.IMREAD_COLOR),
        "decode_resize": lambda j: decode_resized(blobs[j], shapes[j], load_size(*shapes[j], spec.imgsz), jpeg[j]),
        "reduced_2": lambda j: cv2.imdecode(blobs[j], cv2.IMREAD_REDUCED_COLOR_2),
    }
    with ThreadPoolExecutor(n) as ex:
        out = {name: _warm_rates(lambda job=job: list(ex.map(job, range(k))), k, passes) for name, job in jobs.items()}
    mid = passes // 2
    return {"name": spec.name, "img_s": out["full"][mid], "img_s_min": out["full"][0], "img_s_max": out["full"][-1],
            "img_s_opencv": out["opencv"][mid], "decoder": kernel(),
            "img_s_decode_resize": out["decode_resize"][mid], "img_s_reduced": out["reduced_2"][mid], "threads": n,
            "images": k, "passes": passes, "warm": True}


def cached_ceiling(spec: RunSpec, passes: int = 3) -> dict:
    """The ceiling of a cached regime (``cache="ram"`` / ``"disk"``: no decode), measured warm: per image, the work
    no painter can skip: a training-size tile held in memory (as the packed store's views are), warped to the
    output with a 114 border (``cv2.warpAffine``, INTER_LINEAR, a scale-and-translate matrix), HSV jitter into RGB
    with Ultralytics' tables (``apply_hsv``), written into a batch buffer; one thread per core with
    ``cv2.setNumThreads(1)``, the data set's first 400 images, one untimed pass then ``passes`` timed ones."""
    from concurrent.futures import ThreadPoolExecutor

    import cv2
    import numpy as np

    from loader.dataset import build_index
    from loader.images.decode import decode_resized
    from loader.kernels.opencv import apply_hsv, hsv_luts_batch
    from loader.plan import load_size

    cv2.setNumThreads(1)
    ix = build_index(spec.data, verbose=False)
    k = min(len(ix), 400)
    tiles = []
    for i in range(k):
        hw0 = tuple(int(v) for v in ix.shapes[i])
        tiles.append(decode_resized(np.fromfile(ix.im_files[i], np.uint8), hw0, load_size(*hw0, spec.imgsz),
                                    bool(ix.formats[i] == 1)))
    S = spec.imgsz
    rng = np.random.default_rng(0)
    gains = (rng.uniform(-1, 1, (k, 3)) * [0.015, 0.7, 0.4])
    luts = hsv_luts_batch(gains)
    mats = [np.array([[s, 0, (S - s * t.shape[1]) / 2], [0, s, (S - s * t.shape[0]) / 2]], np.float64)
            for t, s in zip(tiles, rng.uniform(0.5, 1.5, k))]
    n = len(os.sched_getaffinity(0))
    batch = np.empty((n, S, S, 3), np.uint8)  # one slot per thread: the batch memory written once per image

    def one(j: int, slot: int) -> None:
        out = batch[slot]
        cv2.warpAffine(tiles[j], mats[j], (S, S), dst=out, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                       borderValue=(114, 114, 114))
        apply_hsv(out, gains[j], True, luts[j:j + 1])

    def chunk(slot: int) -> None:
        for j in range(slot, k, n):
            one(j, slot)

    with ThreadPoolExecutor(n) as ex:
        rates = _warm_rates(lambda: list(ex.map(chunk, range(n))), k, passes)
    return {"name": spec.name, "img_s": rates[passes // 2], "img_s_min": rates[0], "img_s_max": rates[-1],
            "threads": n, "images": k, "passes": passes, "warm": True}
