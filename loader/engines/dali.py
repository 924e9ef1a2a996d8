"""``DaliEngine``: DALI decodes each batch's new JPEGs in one run and paints the batch's plans in one graph.

On the GPU when CUDA is usable (nvJPEG; decoded tiles stay there as CUDA tensors in the image source's
buffer, batches come back as CUDA tensors), else with DALI's CPU operators (``device_id=None``, the
correctness path). It owns everything with threads, pipelines or GPU memory and releases it in ``close()``:
the file readers, the batched decoder, the painter graph (rebuilt when its shape changes), the CUDA device
and stream they share. Decisions that are DALI's live here too: which tiles DALI may decode, what happens
when it cannot, the graph's tile slots, where perspective plans go (DALI has no perspective warp), the
one-time log of the tile buffer.

On a GPU all of its work runs on its own CUDA stream: DALI's runs are bound to it, torch's colour step runs
on it, and each batch records an event there; ``hand_over`` makes the consumer's stream wait for that event
(no host synchronisation, nothing queued on the trainer's stream). Per-stage host times are in ``stats()``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..device import cuda_usable, device_id_of
from ..images import read_bytes
from ..plan import PlanBatch
from ..stats import StageTimes
from .base import Engine

__all__ = ["DaliEngine"]

LOG = logging.getLogger("loader.dali")


class DaliEngine(Engine):
    """``source``: the loader's ``ImageSource``; ``max_batch``: the batch size; ``workers``: painter threads.

    ``threads``: DALI's CPU thread pool and the file readers. Default: on a GPU ``min(4, workers)``,
    since DALI's CPU threads then only feed nvJPEG's host stage and the engine is meant to need at
    most 4 busy cores; in CPU-only mode DALI does all the work: ``workers`` (measured best on 2 cores:
    ``benchmarks/dali_knobs.py``). ``hw_decoder_load``: share of JPEGs for the hardware decoder.
    ``augment`` and ``hyp()`` (the current hyperparameters) size the graph's tile slots.
    """

    name = "dali"

    def __init__(self, source, max_batch: int, workers: int, threads: int | None = None,
                 hw_decoder_load: float = 0.65, augment: bool = True, hyp=None):
        from ..kernels.dali_decode import DaliDecoder

        gpu = cuda_usable()[0]
        self.source, self.max_batch, self.augment, self._hyp = source, int(max_batch), bool(augment), hyp
        self.device = "cuda" if gpu else "cpu"
        self._dali_device = "gpu" if gpu else "cpu"  # DALI's own word for it
        # the constructing thread's GPU (a DDP rank's own): painter threads use it explicitly
        self.device_id = device_id_of(None) if gpu else None
        self.stream = None
        if gpu:
            import torch

            self.stream = torch.cuda.Stream(torch.device("cuda", self.device_id))
        self.threads = int(threads or (min(4, workers) if gpu else workers))
        self.fallbacks = 0  # files DALI could not decode (OpenCV decoded them, or reported them unreadable)
        self.decoded = 0  # tiles DALI decoded
        self.builds = 0  # painter graphs built
        self.uploads = 0  # host images copied to the GPU (each once while the tile buffer holds it)
        self._upload_lock = threading.Lock()
        self.times = StageTimes()
        self.painter = None
        self._lock = threading.Lock()
        self._decode_lock = threading.Lock()  # one decoder run (and the choice of what it decodes) at a time
        self.decoder = self._readers = None
        self._perspective_logged = self._buffer_logged = self._cutmix_logged = False
        self.cutmix_repainted = 0  # samples the graph painted without their CutMix area, then the per-image painter
        ix = source.index
        self._dali_can = (ix.formats == 1) & np.isin(ix.orientation, (0, 1))  # JPEGs without EXIF rotation
        if source.store is None:  # a RAM / disk cache holds the tiles otherwise
            # file reads in parallel (I/O waits overlap): 1.6-2.2x over one thread on 2 cores, page-cached
            # files (an ad-hoc run over 512 files of 265 kB)
            self._readers = ThreadPoolExecutor(self.threads, thread_name_prefix="loader-read")
            self.decoder = DaliDecoder(max_batch=4 * max_batch, threads=self.threads, device=self._dali_device,
                                       hw_decoder_load=hw_decoder_load, to_torch=gpu, device_id=self.device_id)
            if source.reduced_decode is True:  # "equivalent" needs no word: a full decode is Ultralytics' image
                LOG.warning("reduced_decode=True does not apply to the JPEGs the DALI engine decodes: DALI decodes "
                            "them in full and resizes them as Ultralytics does (only files OpenCV decodes, e.g. PNG "
                            "or EXIF-rotated, are DCT-reduced)")

    def _on_stream(self):
        """The engine's CUDA stream as torch's current one (a no-op on the CPU)."""
        if self.stream is None:
            return contextlib.nullcontext()
        import torch

        return torch.cuda.stream(self.stream)

    # ------------------------------------------------------------------ decode
    def _fallback(self, i: int, error: Exception) -> None:
        with self._lock:
            self.fallbacks += 1
            first = self.fallbacks == 1
        (LOG.warning if first else LOG.debug)(
            "DALI cannot decode %s (%s: %s); OpenCV decodes it instead%s", self.source.index.im_files[i],
            type(error).__name__, str(error).strip().splitlines()[0] if str(error).strip() else "",
            " (further fallbacks are counted in stats()['dali_fallbacks'])" if first else "")

    def _decode(self, want: np.ndarray) -> list:
        """Decode images ``want`` in one DALI run (None in the result where DALI gives no image). A file that
        cannot be read (deleted, no permission) is left to the source, which names it unreadable for the bad-data
        policy. If the run fails (a file DALI cannot decode), each file is tried alone: the ones that fail are
        named, counted, never given to DALI again, and left to OpenCV."""
        src, ix = self.source, self.source.index
        with self.times("read"):
            blobs = list(self._readers.map(_read_or_none, [ix.im_files[int(i)] for i in want]))
        out: list = [None] * len(want)
        keep = [k for k, b in enumerate(blobs) if b is not None]
        if not keep:
            return out
        blobs = [blobs[k] for k in keep]
        sizes = [src.load_hw(int(want[k])) for k in keep]
        with self.times("decode"):
            try:
                images = self.decoder.decode(blobs, sizes, self.stream)
            except Exception:  # noqa: BLE001 - found file by file below
                images = []
                for k, blob, hw in zip(keep, blobs, sizes):
                    try:
                        images += self.decoder.decode([blob], [hw], self.stream)
                    except Exception as e:  # noqa: BLE001 - reported; the source decodes it (or names it unreadable)
                        self._dali_can[int(want[k])] = False
                        self._fallback(int(want[k]), e)
                        images.append(None)
        for k, im in zip(keep, images):
            out[k] = im
        return out

    def prepare(self, batch: PlanBatch) -> dict:
        """Decode + resize, in one DALI run, every JPEG tile of the batch the source does not hold yet.

        Returns the batch's tiles that the buffer holds (references: another batch's decode may evict them from
        the buffer before this one is painted, and their pixels must not then come from an OpenCV decode).
        EXIF-rotated and non-JPEG files stay on the source's OpenCV path, as do files DALI fails on."""
        if self.decoder is None:
            return {}
        src = self.source
        with self._decode_lock:  # one decoder run at a time; what is wanted is decided under it (no file twice)
            with self.times("prepare"):
                want = np.unique(batch.indices())
                tiles = src.take(want.tolist())
                missing = np.fromiter((i not in tiles for i in want.tolist()), bool, len(want))
                want = want[missing & ~src.unreadable_mask[want] & self._dali_can[want]]
            if not len(want):
                return tiles
            images = self._decode(want)
            with self.times("prepare"):
                for i, im in zip(want.tolist(), images):
                    if im is not None:
                        src.put(i, im)
                        tiles[i] = im
                        self.decoded += 1
        return tiles

    # ------------------------------------------------------------------ paint
    def painter_for(self, batch: PlanBatch):
        """The graph for this batch: tile slots from the hyp (close_mosaic -> 1), widened if a plan needs more;
        mixup slots while the hyp has mixup; the batch size. Rebuilt (the old graph released) on a change."""
        from ..kernels.dali_paint import DaliPainter, PainterConfig

        hyp = self._hyp() if self._hyp is not None else None
        per = np.diff(batch.tile_off)
        if batch.mix is not None:
            per = np.concatenate([per, np.diff(batch.mix.tile_off)])
        slots = max(4 if self.augment and hyp is not None and hyp.mosaic > 0 else 1, int(per.max()))
        mix = (self.augment and hyp is not None and hyp.mixup > 0) or bool(batch.has_mix.any())
        cfg = PainterConfig(slots, mix, max(self.max_batch, len(batch)), self._dali_device)
        with self._lock:
            if self.painter is None or self.painter.cfg != cfg:
                if self.painter is not None:
                    self.painter.close()
                self.painter = DaliPainter(cfg, threads=self.threads, device_id=self.device_id, times=self.times)
                self.builds += 1
            return self.painter

    def paint(self, plans, out) -> None:
        """Paint a ``PlanBatch`` (or a list of plans) into ``out``, decoding what it needs."""
        batch = plans if isinstance(plans, PlanBatch) else PlanBatch.from_plans(plans)
        self._paint(batch, out, self._getter(self.prepare(batch)))

    def _getter(self, tiles: dict):
        """Image lookup for one batch: its held tiles first, then the source (OpenCV's files, a cache store).

        On a GPU every host image (a cache store's tile, an OpenCV decode of a PNG or EXIF-rotated file, a DALI
        fallback) is uploaded once and the CUDA tensor kept in the tile buffer in its place, so later batches use
        it from GPU memory (gpu_review_2.md finding 4: up to ~512 pageable uploads of 1.35 MB per batch at
        896 px with a cache). ``stats()["tile_uploads"]`` counts the uploads."""
        get = self.source.get
        if self.device != "cuda":
            return lambda i: tiles[i] if i in tiles else get(i)
        buffer = self.source.buffer

        def on_gpu(i: int):
            im = tiles.get(i)
            if not _on_device(im):  # a host image (a cache store's, OpenCV's) may have been uploaded already
                held = buffer.take([i]).get(i)
                im = held if _on_device(held) else (im if im is not None else get(i))
            if not _on_device(im):
                im = self._upload(i, im)
            tiles[i] = im
            return im

        return on_gpu

    def _upload(self, i: int, image: np.ndarray):
        """One host image to the GPU: staged in pinned memory, copied without blocking on the engine's stream,
        and kept in the tile buffer instead of the host array. Under a lock, so two painter threads wanting the
        same image upload it once (a 1.35 MB pinned copy takes ~0.2 ms: the lock is never held long)."""
        import torch

        with self._upload_lock:
            held = self.source.buffer.take([i]).get(i)
            if _on_device(held):
                return held
            with self._on_stream():
                t = torch.from_numpy(np.ascontiguousarray(image)).pin_memory()
                t = t.to(torch.device("cuda", self.device_id), non_blocking=True)
            self.source.buffer.replace(i, t)
            self.uploads += 1
            return t

    def _paint(self, batch: PlanBatch, out, get) -> None:
        with self._on_stream():
            if batch.perspective:  # not affine: the OpenCV / torch painter, image by image
                self._log_perspective_once()
                for j in range(len(batch)):
                    self._paint_one(batch.plan(j), out[j], get)
                return
            painter = self.painter_for(batch)
            with self.times("feed"):
                feeds = painter.feeds(batch, get)
            res = painter.run(feeds, self.stream)  # times its own "feed" (hand-over) and "graph" (DALI's run)
            with self.times("finish"):
                painter.finish(batch, res, out)
            cut = np.nonzero(batch.has_cut)[0]
            if len(cut):  # the graph has no CutMix step yet: those samples again, by the per-image painter
                self._log_cutmix_once()
                with self.times("cutmix"):
                    for j in cut.tolist():
                        self._paint_one(batch.plan(j), out[j], get)
                with self._lock:  # painter threads paint batches at the same time
                    self.cutmix_repainted += len(cut)

    def _paint_one(self, plan, out, get) -> None:
        if self.device == "cuda":  # tiles on the GPU: the torch painter
            from ..kernels.torch_paint import paint_torch

            out[...] = paint_torch(plan, get, out.device)
            return
        from ..kernels.opencv import paint

        paint(plan, get, out)

    def _readable(self, plan) -> None:
        for i in plan.indices():
            self.source.get(i)

    def tasks(self, work) -> list:
        return [(self._batch, (work,))]

    def _batch(self, work) -> None:
        """One batch: plans, batched decode, unreadable images replaced (the work's policy), one graph run."""
        with self.times("plan"):
            batch = work.batch()
        tiles = self.prepare(batch)
        src = self.source
        with self.times("readable"):
            for i in np.unique(batch.indices()).tolist():
                if i not in tiles:  # not decoded by DALI: OpenCV's (PNG, EXIF, ...), a cache store's, or bad
                    try:
                        tiles[i] = src.get(i)
                    except OSError:
                        pass
            samples = set()
            for canvases in (batch, batch.mix, batch.cut):  # its own tiles, its mixup and CutMix partners'
                if canvases is not None:
                    bad = src.unreadable_mask[canvases.tile_index]
                    samples |= set(np.repeat(np.arange(len(batch)), np.diff(canvases.tile_off))[bad].tolist())
            for j in sorted(samples):
                work.attempt(j, self._readable)
        final = work.final()
        if final is not batch:  # replacement plans: their new tiles too (the ones held above stay as they are)
            tiles = {**self.prepare(final), **tiles}
        self._paint(final, work.out, self._getter(tiles))
        if self.stream is not None:
            import torch

            work.event = torch.cuda.Event()
            work.event.record(self.stream)

    def hand_over(self, work, batch: dict) -> None:
        """The consumer's stream waits (on the GPU, not the host) for this batch's work on the engine's stream;
        the batch memory is marked as used there, so it is not reused before the consumer is done with it."""
        if work.event is None:
            return
        import torch

        consumer = torch.cuda.current_stream(torch.device("cuda", self.device_id))
        consumer.wait_event(work.event)
        batch["img"].record_stream(consumer)

    def set_batch_size(self, batch_size: int) -> None:
        self.max_batch = int(batch_size)  # the graph is rebuilt for it on its next batch

    def out_buffer(self, shape):
        """A batch buffer on the GPU (CUDA tensor, from the engine's stream's memory), or None: host memory is the
        loader's ring."""
        if self.device != "cuda":
            return None
        import torch

        with self._on_stream():
            return torch.empty(shape, dtype=torch.uint8, device=torch.device("cuda", self.device_id))

    # ------------------------------------------------------------------ reporting
    def _log_cutmix_once(self) -> None:
        if not self._cutmix_logged:
            self._cutmix_logged = True
            LOG.warning("cutmix > 0: the DALI graph has no CutMix step yet; samples with a CutMix partner are painted "
                        "again by the %s painter (counted in stats()['cutmix_repainted'])",
                        "torch (GPU)" if self.device == "cuda" else "OpenCV")

    def _log_perspective_once(self) -> None:
        if not self._perspective_logged:
            self._perspective_logged = True
            LOG.info("perspective > 0: DALI has no perspective warp; these plans are painted by the %s painter",
                     "torch (GPU)" if self.device == "cuda" else "OpenCV")

    def end_of_epoch(self, samples: int) -> None:
        """Once, after the first epoch: where the decoded tiles live and what they take."""
        if self._buffer_logged:
            return
        self._buffer_logged = True
        cache = self.source.stats()
        LOG.info("DALI engine: decoded-tile buffer in %s memory: %.0f MiB (budget %.0f MiB), %d tiles; "
                 "%.3f decodes per sample; %d files DALI could not decode", "GPU" if self.device == "cuda" else "host",
                 cache["bytes"] / 2**20, cache["budget"] / 2**20, cache["items"], self.source.decodes / max(samples, 1),
                 self.fallbacks)

    def stats(self) -> dict:
        return {"dali_fallbacks": self.fallbacks, "dali_decoded": self.decoded, "dali_builds": self.builds,
                "tile_uploads": self.uploads, "cutmix_repainted": self.cutmix_repainted,
                "tile_buffer": {"device": self.device, "bytes": self.source.stats()["bytes"]},
                "stage_seconds": {k: v["s"] for k, v in self.times.snapshot().items()}}

    def close(self) -> None:
        if self._readers is not None:
            self._readers.shutdown(wait=True, cancel_futures=True)
            self._readers = None
        if self.decoder is not None:
            self.decoder.close()
            self.decoder = None
        with self._lock:
            if self.painter is not None:
                self.painter.close()
                self.painter = None


def _read_or_none(path: str):
    """The file's bytes, or None when it cannot be read (the source then reads it again and reports it)."""
    try:
        return read_bytes(path)
    except OSError:
        return None


def _on_device(im) -> bool:
    """Whether ``im`` is a CUDA tensor (not None, a numpy array or a host tensor)."""
    return bool(getattr(im, "is_cuda", False))
