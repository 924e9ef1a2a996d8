"""``DetectionLoader``: index -> sampler -> plan -> paint -> batch, as one iterable.

Usable from a plain PyTorch loop; ``integration.ultralytics`` adapts it to the trainer.
Iteration is lazy (a new ``iter()`` starts where the sampler stands), yields exactly
``len(loader)`` batches per epoch, and advances to the next epoch by itself (as a
shuffling DataLoader does); ``set_epoch(e)`` pins the epoch (DDP).
"""

from __future__ import annotations

import logging
import os
import threading

import numpy as np

from ._closing import Closing
from .batch import BatchRing, assemble
from .dataset import DatasetIndex, build_index
from .imaging import log_backend_report_once
from .plan import Hyp, Planner, UnsupportedHyp, rect_batch_shapes
from .pool import OrderedPool, WorkerError
from .sampler import ShardedSampler

__all__ = ["DetectionLoader", "BadDataError", "default_workers"]

LOG = logging.getLogger("loader")


class BadDataError(RuntimeError):
    """Too many images failed to read during an epoch (or one failed in validation); names them."""


class _Unreadable(Exception):
    def __init__(self, index: int, reason: str):
        super().__init__(reason)
        self.index, self.reason = index, reason


def _choose_backend(backend: str) -> str:
    """``dali``: the DALI engine (GPU when usable, else its CPU-only mode); ``auto``: DALI only on a usable GPU."""
    if backend == "cpu":
        return "cpu"
    from .backends.dali.decoder import cuda_usable, dali_available

    gpu, gwhy = cuda_usable()
    if backend == "auto" and not gpu:  # importing DALI costs ~0.6 s: only when it may be used
        LOG.info("backend auto -> cpu (%s)", gwhy)
        return "cpu"
    ok, why = dali_available()
    if backend == "dali":
        if not ok:
            raise RuntimeError(f"backend='dali' requested but {why}")
        LOG.info("backend dali: %s", "on the GPU" if gpu else f"CPU-only mode ({gwhy})")
        return "dali"
    choice = "dali" if ok else "cpu"
    LOG.info("backend auto -> %s (%s; %s)", choice, gwhy, why)
    return choice


def _single_threaded_opencv() -> None:
    """Painter threads are the parallelism: OpenCV's own pool on top only oversubscribes the cores
    (an ad-hoc run: 124 -> 144 img/s with 2 workers on 2 cores). Ultralytics sets the same at import."""
    import cv2

    if cv2.getNumThreads() > 1:
        LOG.debug("cv2.setNumThreads(1): the painter threads do the parallel work")
        cv2.setNumThreads(1)


def default_workers() -> int:
    """Painter threads when ``workers="auto"`` and no tuner recommendation exists: one per core."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


class DetectionLoader(Closing):
    """Ultralytics-compatible detection batches from a data.yaml, folder, file list or ``DatasetIndex``.

    Train (``augment=True``): mosaic, affine, mixup, HSV, flips as planned by ``loader.plan`` with
    Ultralytics' hyperparameters (``hyp``: dict/namespace, unknown keys ignored, unsupported values
    refused). Val (``augment=False``): letterbox without upscaling; ``rect=True`` sorts by aspect ratio
    and gives each batch its own shape, as Ultralytics' validator does.

    ``workers``: painter threads (``"auto"``: the tuner's pick for this data/imgsz/batch, else one per
    core). ``cache``: False, ``"ram"`` (one shared arena per node) or ``"disk"`` (training-size images,
    memory-mapped). ``max_bad_fraction``: share of an epoch's samples that may need a replacement
    for an image unreadable at training time before ``BadDataError``. ``reduced_decode``: DCT-reduced
    JPEG decoding in training (off: full decode, as Ultralytics); validation always decodes in full and
    letterboxes with Ultralytics' own resize, so its pixels (and mAP) are bitwise the stock validator's. ``prefetch``: batches painted ahead.

    ``backend="dali"``: DALI decodes JPEGs in batches and paints the plans in one graph (on the GPU,
    batches come back as CUDA tensors; without CUDA, DALI's CPU-only mode). ``dali_threads``: DALI's
    CPU thread pool (default: ``min(4, workers)`` on a GPU, ``workers`` in CPU-only mode);
    ``hw_decoder_load``: share of JPEGs for the hardware decoder on GPUs that have one (DALI's
    default; not yet measured on a GPU).
    """

    def __init__(self, source, imgsz: int = 896, batch_size: int = 16, workers="auto", backend: str = "auto",
                 augment: bool = True, hyp=None, rect: bool = False, seed: int = 0, rank: int = 0,
                 world_size: int = 1, split: str | None = None, names=None, prefetch: int = 2,
                 cache_bytes: int | None = None, stride: int = 32, pad: float = 0.5, drop_last: bool = False,
                 index_cache=True, pin_memory: bool | None = None, reduced_decode: bool = True,
                 max_bad_fraction: float = 0.01, cache: bool | str | None = False, dali_threads: int | None = None,
                 hw_decoder_load: float = 0.65):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if augment and rect:
            raise UnsupportedHyp("rect=True with augmentation (rectangular training) is not supported; "
                                 "use rect=False for training (mosaic needs square batches)")
        if cache is True:
            cache = "ram"  # Ultralytics' cache=True
        if cache not in (False, None, "disk", "ram"):
            raise UnsupportedHyp(f"cache={cache!r} must be False, 'disk' or 'ram'")
        if backend not in ("auto", "cpu", "dali"):
            raise ValueError(f"backend must be 'auto', 'cpu' or 'dali', got {backend!r}")
        self.backend = _choose_backend(backend)
        log_backend_report_once()
        self.index: DatasetIndex = source if isinstance(source, DatasetIndex) else build_index(
            source, split or ("train" if augment else "val"), names=names, cache=index_cache)
        self.imgsz, self.batch_size, self.augment, self.rect = int(imgsz), int(batch_size), bool(augment), bool(rect)
        self.hyp = Hyp.from_any(hyp)
        if augment:
            Hyp.warn_albumentations_once()
        if workers in ("auto", None):
            from .tuner import key_for, recommendation

            where = source if isinstance(source, (str, os.PathLike)) else self.index.data.get("yaml_file")
            tuned = recommendation(key_for(where, imgsz, batch_size)) if where else None
            self.workers = tuned or default_workers()
            LOG.debug("workers=auto -> %d (%s)", self.workers, "tuner recommendation" if tuned else "one per core")
        else:
            self.workers = int(workers)
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1 or 'auto', got {workers!r}")
        # images that failed to read at training time: index -> reason (they never come back)
        self.max_bad_fraction = float(max_bad_fraction)
        self.unreadable: dict[int, str] = {}
        self._replaced: list[tuple[int, int]] = []  # (epoch position, unreadable index) this epoch
        self._lock = threading.Lock()
        self.prefetch = max(1, int(prefetch))
        self.reduced_decode = bool(reduced_decode) and self.augment  # validation is exact: full decode
        n = len(self.index)
        self.planner = Planner(self.index, self.imgsz, self.hyp, augment, self.batch_size, seed, rank)
        if augment:
            self.sampler = ShardedSampler(n, seed, rank, world_size, shuffle=True, drop_last=drop_last)
            self._val_order = self._val_shapes = None
        else:  # validation: every image once, in Ultralytics' order, on every rank
            self.sampler = ShardedSampler(n, seed, 0, 1, shuffle=False)
            self._stride_pad = (stride, pad)
            self._set_val_shapes()
        # one decoded-image cache for all painter threads, sized for Ultralytics' mosaic buffer
        from .backends.cpu.images import ImageCache

        per_image = self.imgsz * self.imgsz * 3
        if cache_bytes is None:
            cache_bytes = min((self.planner.buffer_len + 2 * self.batch_size) * per_image, 4 << 30) if augment \
                else 2 * self.batch_size * per_image
        self.images = ImageCache(cache_bytes)
        self.disk = self.arena = None
        key = f"{self.index.data.get('yaml_file') or self.index.im_files[0]}|{self.index.split}"
        if cache == "disk":
            from .backends.cpu.diskcache import DiskCache

            self.disk = DiskCache(key, self.imgsz)
            built = self.disk.build(((self.index.im_files[i], self.planner.load_hw(i), i)
                                     for i in range(len(self.index))), self._decode, self.workers)
            if built:
                LOG.info("disk cache: %d images encoded at training size in %s", built, self.disk.dir)
        elif cache == "ram":
            from .backends.cpu.ramcache import RamArena

            def load_or_none(i):
                try:
                    return self._decode(i)
                except OSError as e:
                    self.unreadable[i] = str(e)
                    return None

            self.arena = RamArena(f"{key}|{self.imgsz}", self.planner.load_shapes, load_or_none,
                                  workers=self.workers)
            for i in self.arena.unreadable.tolist():
                self.unreadable.setdefault(i, "unreadable when the RAM cache was built")
        self.dali = None  # the DALI engine (backend="dali"): readers, decoder, painter graph, CUDA device
        if self.backend == "dali":
            from .backends.dali.engine import DaliEngine

            self.dali = DaliEngine(self.batch_size, self.workers, dali_threads, hw_decoder_load,
                                   decode=self.arena is None and self.disk is None)
        max_hw = int(self._val_shapes.max()) if self._val_shapes is not None else self.imgsz
        # prefetched batches, the one the consumer holds and the one it just dropped (the loop variable still
        # holds it while the next is requested); a consumer that keeps more gets fresh buffers
        self.ring = BatchRing(self.prefetch + 2, self.batch_size * max_hw * max_hw * 3, pin_memory)
        if self.workers > 1:
            _single_threaded_opencv()
        self._pool: OrderedPool | None = None
        self._closed = False
        self._generation = 0
        self.samples = 0
        self._buffer_logged = self._perspective_logged = False  # one-time log lines (DALI engine)

    # ------------------------------------------------------------------ sizes
    def __len__(self) -> int:
        return -(-len(self.sampler) // self.batch_size)

    def _set_val_shapes(self) -> None:
        n = len(self.index)
        if self.rect:
            irect, _, shapes = rect_batch_shapes(self.index.shapes, self.batch_size, self.imgsz, *self._stride_pad)
            self._val_order, self._val_shapes = irect, shapes
        else:
            self._val_order = np.arange(n)
            self._val_shapes = np.full((-(-n // self.batch_size), 2), self.imgsz, int)

    def set_batch_size(self, batch_size: int) -> None:
        """Batches of ``batch_size`` from the next ``iter()`` on (e.g. a smaller batch after running out of GPU
        memory). Prefetched batches are dropped; val rect shapes are recomputed; the DALI graph is rebuilt on
        its next batch. Plans do not change (the mosaic buffer keeps the length set at construction).
        """
        batch_size = int(batch_size)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if self.sampler.position % batch_size and self.sampler.position < len(self.sampler):
            raise ValueError(f"sampler position {self.sampler.position} is not a multiple of batch_size {batch_size}")
        self.reset()
        self.batch_size = batch_size
        if not self.augment:
            self._set_val_shapes()

    @property
    def num_workers(self) -> int:
        return self.workers

    @property
    def val_order(self) -> np.ndarray | None:
        """Validation: dataset indices in the order batches deliver them (aspect ratio with ``rect``)."""
        return self._val_order

    @property
    def epoch(self) -> int:
        return self.sampler.epoch

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def close_mosaic(self) -> None:
        """Turn off mosaic/mixup from the next planned batch on (call ``reset()`` to drop prefetched ones)."""
        self.planner.close_mosaic()
        self.hyp = self.planner.hyp
        self.reset()

    @property
    def mosaic_closed(self) -> bool:
        return self.hyp.mosaic == 0.0 and self.hyp.mixup == 0.0

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        return {"sampler": self.sampler.state_dict(), "hyp": self.hyp.as_dict(), "imgsz": self.imgsz,
                "batch_size": self.batch_size}

    def load_state_dict(self, state: dict) -> None:
        if state.get("imgsz", self.imgsz) != self.imgsz or state.get("batch_size", self.batch_size) != self.batch_size:
            raise ValueError(f"state is for imgsz={state.get('imgsz')}, batch_size={state.get('batch_size')}; "
                             f"this loader has imgsz={self.imgsz}, batch_size={self.batch_size}")
        self.reset()
        self.sampler.load_state_dict(state["sampler"])
        self.hyp = Hyp.from_any(state.get("hyp", self.hyp.as_dict()))
        self.planner.hyp = self.hyp

    # ------------------------------------------------------------------ painting
    def _decode(self, i: int) -> np.ndarray:
        from .backends.cpu.images import decode_resized, read_bytes

        return decode_resized(read_bytes(self.index.im_files[i]), tuple(self.index.shapes[i]),
                              self.planner.load_hw(i), bool(self.index.formats[i] == 1), self.reduced_decode,
                              self.index.im_files[i])

    def _load(self, i: int) -> np.ndarray:
        if i in self.unreadable:
            raise _Unreadable(i, self.unreadable[i])
        if self.arena is not None:
            return self.arena.get(i)

        def cached():
            return self.disk.get(self.index.im_files[i], self.planner.load_hw(i), lambda: self._decode(i))

        try:
            return self.images.get(i, cached if self.disk is not None else lambda: self._decode(i))
        except OSError as e:  # DecodeError, or the file vanished / cannot be read
            with self._lock:
                if i not in self.unreadable:
                    self.unreadable[i] = str(e)
                    LOG.warning("unreadable at training time: %s (%s)", self.index.im_files[i], e)
            raise _Unreadable(i, str(e)) from None

    def _predecode(self, plans) -> None:
        """DALI stage: decode + resize, in one batch, every JPEG tile of these plans not yet cached.

        EXIF-rotated files (DALI's decoder ignores orientation) and non-JPEGs stay on the OpenCV path.
        If DALI fails on the batch (a corrupt file), the OpenCV path decodes them one by one, which
        also names the bad file; the fallback is counted.
        """
        want, seen = [], set()
        for p in plans:
            for i in p.indices():
                if i in seen or i in self.unreadable or i in self.images:
                    continue
                seen.add(i)
                if self.index.formats[i] == 1 and self.index.orientation[i] in (0, 1):
                    want.append(i)
        arrays = self.dali.decode([self.index.im_files[i] for i in want],
                                  [self.planner.load_hw(i) for i in want]) if want else None
        for i, arr in zip(want, arrays or ()):
            self.images.get(i, lambda a=arr: a)

    def _paint(self, plan, out) -> None:
        if self.dali is not None and self.dali.device == "gpu":  # tiles on the GPU: the torch painter (perspective)
            from .backends.torch_painter import paint_torch

            out[...] = paint_torch(plan, self._load, out.device)
            return
        from .backends.cpu.painter import paint

        paint(plan, self._load, out)

    def _load_all(self, plan) -> None:
        for i in plan.indices():
            self._load(i)

    def _train_attempt(self, attempt, plan, epoch: int, position: int, order: np.ndarray):
        """``attempt(plan)``; if an image is unreadable, re-plan this sample without it (deterministic), retry."""
        exclude: set[int] = set()
        for _ in range(16):
            try:
                attempt(plan)
                return plan
            except _Unreadable as e:
                exclude.add(e.index)
                with self._lock:
                    self._replaced.append((position, e.index))
                plan = self.planner.train_plan(epoch, position, order, frozenset(exclude))
        raise BadDataError(f"sample {position} of epoch {epoch}: 16 unreadable images in a row "
                           f"({[self.index.im_files[i] for i in sorted(exclude)]})")

    def _val_attempt(self, attempt, plan):
        try:
            attempt(plan)
        except _Unreadable as e:
            raise BadDataError(f"validation image unreadable: {self.index.im_files[e.index]} ({e.reason}); "
                               "validation needs every image, fix or remove the file") from None
        return plan

    def _plan_and_paint(self, b: int, position: int, out, epoch: int, order: np.ndarray):
        """CPU engine, one sample (in a painter thread: planning stays off the consumer's thread)."""
        plan = self._plan(b, position, epoch, order)
        if self.augment:
            return self._train_attempt(lambda p: self._paint(p, out), plan, epoch, position, order)
        return self._val_attempt(lambda p: self._paint(p, out), plan)

    def _painter_for(self, plans):
        """The DALI painter for these plans: tile slots from the hyp (close_mosaic -> 1), widened if a plan needs
        more; mixup slots while the hyp has mixup; the batch size (``set_batch_size`` rebuilds)."""
        hyp = self.hyp
        slots = 4 if self.augment and hyp.mosaic > 0 else 1
        slots = max([slots] + [len(p.tiles) for p in plans] + [len(p.mix.tiles) for p in plans if p.mix is not None])
        mix = (self.augment and hyp.mixup > 0) or any(p.mix is not None for p in plans)
        return self.dali.painter_for(slots, mix, max(self.batch_size, len(plans)))

    def _paint_batch_dali(self, b: int, img, epoch: int, order: np.ndarray):
        """DALI engine, one batch: plans, batched decode, unreadable images replaced, then one graph run."""
        lo, hi, _ = self._batch_span(b, order)
        plans = [self._plan(b, p, epoch, order) for p in range(lo, hi)]
        if self.dali.decoder is not None:
            self._predecode(plans)
        if self.augment:
            plans = [self._train_attempt(self._load_all, p, epoch, lo + j, order) for j, p in enumerate(plans)]
        else:
            plans = [self._val_attempt(self._load_all, p) for p in plans]
        if any(p.perspective for p in plans):  # not affine: the OpenCV / torch painter, image by image
            self._log_perspective_once()
            for j, p in enumerate(plans):
                self._paint(p, img[j])
        else:
            self._painter_for(plans).paint(plans, self._load, img)
        return plans

    def _log_perspective_once(self) -> None:
        if not self._perspective_logged:
            self._perspective_logged = True
            LOG.info("perspective > 0: DALI has no perspective warp; these plans are painted by the %s painter",
                     "torch (GPU)" if self.dali.device == "gpu" else "OpenCV")

    def _log_tile_buffer(self) -> None:
        """Once, after the first epoch: where the DALI engine's decoded tiles live and what they take."""
        self._buffer_logged = True
        st = self.stats()
        cache = st["image_cache"]
        LOG.info("DALI engine: decoded-tile buffer in %s memory: %.0f MiB (budget %.0f MiB), %d tiles; "
                 "%.3f decodes per sample", "GPU" if self.dali_device == "gpu" else "host", cache["bytes"] / 2**20,
                 cache["budget"] / 2**20, cache["items"], st["decodes_per_sample"])

    def _out_buffer(self, shape):
        gpu = self.dali.out_buffer(shape) if self.dali is not None else None
        return gpu if gpu is not None else self.ring.acquire(shape)

    def _check_bad(self, final: bool = False) -> None:
        """Raise when more than ``max_bad_fraction`` of this epoch's samples needed a replacement."""
        with self._lock:
            replaced = list(self._replaced)
        if not replaced:
            return
        files = sorted({self.index.im_files[i] for _, i in replaced})
        limit = self.max_bad_fraction * len(self.sampler)
        if len(replaced) > limit:
            raise BadDataError(f"{len(replaced)} samples of epoch {self.sampler.epoch} needed a replacement image, "
                               f"more than max_bad_fraction={self.max_bad_fraction} of {len(self.sampler)}; "
                               f"unreadable files: {files[:20]}{' ...' if len(files) > 20 else ''}")
        if final:
            LOG.warning("epoch %d: %d samples used a replacement for %d unreadable files: %s", self.sampler.epoch,
                        len(replaced), len(files), files[:20])

    def _batch_span(self, b: int, order: np.ndarray) -> tuple[int, int, tuple[int, int]]:
        """Epoch positions [lo, hi) of batch ``b`` and its image shape."""
        lo, hi = b * self.batch_size, min((b + 1) * self.batch_size, len(order))
        shape = (self.imgsz, self.imgsz) if self.augment else tuple(int(v) for v in self._val_shapes[b])
        return lo, hi, shape

    def _plan(self, b: int, position: int, epoch: int, order: np.ndarray):
        if self.augment:
            return self.planner.train_plan(epoch, position, order)
        return self.planner.val_plan(int(self._val_order[position]), self._batch_span(b, order)[2])

    def _ensure_pool(self) -> OrderedPool:
        if self._closed:
            raise RuntimeError("loader is closed")
        if self._pool is None:
            self._pool = OrderedPool(self.workers, self.prefetch, name="loader-paint")
        return self._pool

    def __iter__(self):
        """Lazy: nothing is planned until the first ``next()``; a newer iterator retires older ones."""
        self._generation += 1
        generation = self._generation
        pool = self._ensure_pool()
        pool.drain()
        if self.sampler.position >= len(self.sampler):  # last epoch finished: move on, as a shuffling loader does
            self.sampler.set_epoch(self.sampler.epoch + 1)
        if self.sampler.position % self.batch_size:
            raise RuntimeError(f"sampler position {self.sampler.position} is not at a batch boundary")
        order = self.sampler.indices()
        epoch = self.sampler.epoch
        nb = len(self)
        next_b = first = self.sampler.position // self.batch_size
        if first == 0:
            with self._lock:
                self._replaced.clear()
        try:
            for b in range(first, nb):
                while next_b < nb and not pool.full:
                    lo, hi, (h, w) = self._batch_span(next_b, order)
                    img = self._out_buffer((hi - lo, h, w, 3))
                    if self.backend == "dali":  # one call plans and paints the batch (DALI works on batches)
                        calls = [(self._paint_batch_dali, (next_b, img, epoch, order))]
                    else:
                        calls = [(self._plan_and_paint, (next_b, p, img[p - lo], epoch, order)) for p in range(lo, hi)]
                    pool.submit_group((next_b, img), calls)
                    next_b += 1
                try:
                    (bk, img), plans = pool.next_group()  # the plans as painted (replacements included)
                    if self.backend == "dali":
                        (plans,) = plans
                except WorkerError as e:
                    if isinstance(e.__cause__, BadDataError):  # a data problem, already explained: no traceback
                        raise e.__cause__ from None
                    raise
                assert bk == b, (bk, b)
                self._check_bad(final=b == nb - 1)
                batch = assemble(plans, img, self.index.im_files)
                del img
                self.sampler.advance(len(plans))
                self.samples += len(plans)
                if b == nb - 1 and self.dali is not None and not self._buffer_logged:
                    self._log_tile_buffer()
                yield batch
                if generation != self._generation:  # reset() or a newer iterator took over
                    return
        finally:
            if generation == self._generation and self._pool is not None:
                self._pool.drain()

    def reset(self) -> None:
        """Drop prefetched batches; the next ``iter()`` re-plans from the sampler's position."""
        self._generation += 1
        if self._pool is not None:
            self._pool.drain()

    def stats(self) -> dict:
        decodes = self.images.misses
        return {"samples": self.samples, "decodes": decodes, "decodes_per_sample": decodes / max(self.samples, 1),
                "image_cache": self.images.stats(),
                "ring_bytes": self.ring.nbytes(), "workers": self.workers, "backend": self.backend,
                "dali_device": self.dali_device, "painter_builds": self.dali.builds if self.dali else 0,
                "dali_fallbacks": self.dali.fallbacks if self.dali else 0,
                "tile_buffer": {"device": "cuda" if self.dali_device == "gpu" else "host",
                                "bytes": self.images.bytes}}

    @property
    def dali_device(self) -> str | None:
        """Where the DALI engine runs ("gpu" or "cpu"), None for the CPU engine."""
        return self.dali.device if self.dali is not None else None

    def close(self) -> None:
        """Stop and join painter threads, release buffers and the image cache. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        self.images.clear()
        self.ring.clear()
        if self.disk is not None:
            self.disk.flush()
        if self.arena is not None:
            self.arena.close()
        if self.dali is not None:
            self.dali.close()
            self.dali = None
