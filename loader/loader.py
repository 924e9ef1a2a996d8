"""``DetectionLoader``: index -> sampler -> plan -> engine -> batch, as one iterable.

Usable from a plain PyTorch loop; ``integration.ultralytics`` adapts it to the trainer. This class only puts
the parts together (``config``, ``images``, ``schedule``, ``engines``, ``epoch``) and answers for them:
iteration is lazy (a new ``iter()`` starts where the sampler stands), yields exactly ``len(loader)``
batches per epoch, and advances to the next epoch by itself (as a shuffling DataLoader does);
``set_epoch(e)`` pins the epoch (DDP).
"""

from __future__ import annotations

import logging
import os

from . import engines
from ._closing import Closing
from .batch import BatchRing
from .config import LoaderConfig
from .dataset import DatasetIndex, build_index
from .epoch import EpochRunner
from .images import ImageSource
from .imaging import log_backend_report_once
from .plan import Hyp, Planner
from .recovery import BadDataError, BadDataPolicy
from .sampler import ShardedSampler
from .schedule import TrainSchedule, ValSchedule

__all__ = ["DetectionLoader", "BadDataError", "default_workers", "painter_cap"]

LOG = logging.getLogger("loader")


def default_workers() -> int:
    """Painter threads when ``workers="auto"`` and no tuner recommendation exists: one per core."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def painter_cap() -> int:
    """The most painter threads worth running: this rank's share of the usable cores (``LOCAL_WORLD_SIZE`` ranks
    per node), as Ultralytics caps its worker processes at ``cpu_count // devices``. The trainer applies it to
    Ultralytics' ``workers`` (``min(workers, painter_cap())``); an explicit ``DetectionLoader(workers=N)`` is
    taken as given. Painting is CPU work (decode, warp, colour): threads beyond the cores only contend (2 cores,
    896 px: 8 threads 404 vs 2 threads 455 img/s with ``cache="disk"``, 163 vs 175 img/s from JPEG)."""
    try:
        local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        local = 1
    return max(1, default_workers() // local)


def _auto_workers(source, index, cfg: LoaderConfig, engine: str) -> int:
    from .tuner import key_for, recommendation

    where = source if isinstance(source, (str, os.PathLike)) else index.data.get("yaml_file")
    tuned = recommendation(key_for(where, cfg.imgsz, cfg.batch_size, engine)) if where else None
    LOG.debug("workers=auto -> %s", f"{tuned} (tuner recommendation)" if tuned else "one per core")
    return tuned or default_workers()


class DetectionLoader(Closing):
    """Ultralytics-compatible detection batches from a data.yaml, folder, file list or ``DatasetIndex``.

    Keyword arguments are ``LoaderConfig``'s (its docstring says what each does), validated before anything
    starts. Train (``augment=True``): Ultralytics' augmentation chain, planned by ``loader.plan``. Val
    (``augment=False``): letterbox without upscaling, exactly as Ultralytics' validator.
    """

    def __init__(self, source, **kwargs):
        cfg = LoaderConfig.from_kwargs(**kwargs)
        engine = engines.choose(cfg.backend)
        log_backend_report_once()
        self.index: DatasetIndex = source if isinstance(source, DatasetIndex) else build_index(
            source, cfg.split_name, names=cfg.names, cache=cfg.index_cache)
        if cfg.augment:
            Hyp.warn_albumentations_once()
        workers = cfg.workers if cfg.workers != "auto" else _auto_workers(source, self.index, cfg, engine)
        self.config = cfg = cfg.replace(workers=workers, backend=engine)
        n = len(self.index)
        self.planner = Planner(self.index, cfg.imgsz, cfg.hyp, cfg.augment, cfg.batch_size, cfg.seed, cfg.rank)
        if cfg.augment:
            self.sampler = ShardedSampler(n, cfg.seed, cfg.rank, cfg.world_size, shuffle=True, drop_last=cfg.drop_last)
            self.schedule = TrainSchedule(self.planner, cfg.imgsz, self.sampler)
        else:  # validation: every image once, in Ultralytics' order, on every rank
            self.sampler = ShardedSampler(n, cfg.seed, 0, 1, shuffle=False)
            self.schedule = ValSchedule(self.planner, self.index, cfg.imgsz, cfg.batch_size, cfg.rect, cfg.stride,
                                        cfg.pad)
        per_image = cfg.imgsz * cfg.imgsz * 3
        budget = cfg.cache_bytes if cfg.cache_bytes is not None else (
            min((self.planner.buffer_len + 2 * cfg.batch_size) * per_image, 4 << 30) if cfg.augment
            else 2 * cfg.batch_size * per_image)  # one buffer for all painters, sized for Ultralytics' mosaic buffer
        self.images = ImageSource(self.index, self.planner.load_shapes, imgsz=cfg.imgsz, budget_bytes=budget,
                                  store=cfg.cache, reduced_decode=cfg.reduced_decode if cfg.augment else False,
                                  workers=workers, key=f"{self.index.data.get('yaml_file') or self.index.im_files[0]}"
                                                       f"|{self.index.split}", cache_dir=cfg.cache_dir)
        self.engine = engines.build(engine, self.images, cfg, workers, lambda: self.planner.hyp)
        # prefetched batches, the one the consumer holds and the one it just dropped (the loop variable still
        # holds it while the next is requested); a consumer that keeps more gets fresh buffers
        self.ring = BatchRing(cfg.prefetch + 2, cfg.batch_size * self.schedule.max_hw ** 2 * 3, cfg.pin_memory)
        self.policy = BadDataPolicy(cfg.max_bad_fraction, self.index.im_files)
        self.runner = EpochRunner(self.sampler, self.schedule, self.engine, self.policy, self._out_buffer,
                                  self.index.im_files, workers, cfg.prefetch, cfg.batch_size)

    def _out_buffer(self, shape):
        buf = self.engine.out_buffer(shape)
        return buf if buf is not None else self.ring.acquire(shape)

    # ------------------------------------------------------------------ what it is
    backend = property(lambda self: self.engine.name, doc="The engine painting the batches (engines.choose).")
    device = property(lambda self: self.engine.device, doc="Where batches land: 'cpu' or 'cuda'.")
    workers = num_workers = property(lambda self: self.config.workers)
    imgsz = property(lambda self: self.config.imgsz)
    batch_size = property(lambda self: self.config.batch_size)
    augment = property(lambda self: self.config.augment)
    rect = property(lambda self: self.config.rect)
    hyp = property(lambda self: self.planner.hyp, doc="The current hyperparameters (close_mosaic changes them).")
    unreadable = property(lambda self: self.images.unreadable, doc="Images found unreadable: index -> reason.")
    samples = property(lambda self: self.runner.samples, doc="Samples delivered so far.")
    closed = property(lambda self: self.runner.closed)
    epoch = property(lambda self: self.sampler.epoch)

    @property
    def val_order(self):
        """Validation: dataset indices in the order batches deliver them (aspect ratio with ``rect``)."""
        return self.schedule.order if not self.augment else None

    def __len__(self) -> int:
        return len(self.runner)

    def __iter__(self):
        """Lazy: nothing is planned until the first ``next()``; a newer iterator retires older ones."""
        return iter(self.runner)

    # ------------------------------------------------------------------ changes
    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def set_batch_size(self, batch_size: int) -> None:
        """Batches of ``batch_size`` from the next ``iter()`` on (e.g. a smaller batch after running out of GPU
        memory). Prefetched batches are dropped; val rect shapes are recomputed; the engine adapts on its next
        batch. Plans do not change (the mosaic buffer keeps the length set at construction).
        """
        cfg = self.config.replace(batch_size=int(batch_size))
        if self.sampler.position % cfg.batch_size and self.sampler.position < len(self.sampler):
            raise ValueError(f"sampler position {self.sampler.position} is not a multiple of batch_size "
                             f"{cfg.batch_size}")
        self.reset()
        self.config = cfg
        self.schedule.set_batch_size(cfg.batch_size)
        self.runner.batch_size = cfg.batch_size
        self.engine.set_batch_size(cfg.batch_size)

    def close_mosaic(self) -> None:
        """Turn off mosaic, mixup and CutMix from the next planned batch on (and drop prefetched batches)."""
        self.planner.close_mosaic()
        self.reset()

    @property
    def mosaic_closed(self) -> bool:
        return self.hyp.mosaic == 0.0 and self.hyp.mixup == 0.0 and self.hyp.cutmix == 0.0

    def reset(self) -> None:
        """Drop prefetched batches; the next ``iter()`` re-plans from the sampler's position."""
        self.runner.reset()

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        return {"sampler": self.sampler.state_dict(), "hyp": self.hyp.as_dict(), "imgsz": self.imgsz,
                "batch_size": self.batch_size, "buffer_len": self.planner.buffer_len}

    def load_state_dict(self, state: dict) -> None:
        """Continue where ``state`` was taken, bitwise: the state decides everything plans depend on (the seed
        of order *and* augmentation, hyp after ``close_mosaic()``, the mosaic buffer length), so a loader built
        with another seed or batch size resumes the saved run, not a mix of two. A batch size changed with
        ``set_batch_size()`` is applied again; another ``imgsz`` is refused (the plans' pixels would differ)."""
        if state.get("imgsz", self.imgsz) != self.imgsz:
            raise ValueError(f"state is for imgsz={state.get('imgsz')}; this loader has imgsz={self.imgsz}")
        batch = int(state.get("batch_size", self.batch_size))
        self.reset()
        self.sampler.load_state_dict(state["sampler"])
        self.planner.seed = self.sampler.seed
        self.planner.hyp = Hyp.from_any(state.get("hyp", self.hyp.as_dict()))
        if "buffer_len" in state:
            self.planner.buffer_len = int(state["buffer_len"])
        if batch != self.batch_size:
            LOG.info("resuming with batch_size=%d from the saved state (this loader was built with %d)", batch,
                     self.batch_size)
            self.set_batch_size(batch)

    def stats(self) -> dict:
        """Figures of the whole loader: samples, decodes, the image buffer, ring buffers, the engine's own."""
        store = self.images.store_stats()
        return {"samples": self.samples, "decodes": self.images.decodes,
                "decodes_per_sample": self.images.decodes / max(self.samples, 1), "image_cache": self.images.stats(),
                "store": store, "store_errors": store["store_errors"], "read_faults": store["read_faults"],
                "ring_bytes": self.ring.nbytes(), "ring_allocations": self.ring.allocations, "workers": self.workers,
                "engine": self.backend, "device": self.device, **self.engine.stats()}

    def close(self) -> None:
        """Stop and join painter threads, release buffers, the image source and the engine. Idempotent (and safe
        on a loader whose construction failed half-way: what was built is released)."""
        runner = getattr(self, "runner", None)
        if runner is not None:
            if runner.closed:
                return
            runner.close()
        for part in ("images", "engine"):
            if getattr(self, part, None) is not None:
                getattr(self, part).close()
        if getattr(self, "ring", None) is not None:
            self.ring.clear()
