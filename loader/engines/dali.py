"""``DaliEngine``: DALI decodes each batch's new JPEGs in one run and paints the batch's plans in one graph.

On the GPU when CUDA is usable (nvJPEG; decoded tiles stay there as CUDA tensors in the image source's
buffer, batches come back as CUDA tensors), else with DALI's CPU operators (``device_id=None``, the
correctness path). It owns everything with threads, pipelines or GPU memory and releases it in ``close()``:
the file readers, the batched decoder, the painter graph (rebuilt when its shape changes) and the CUDA device
they share. Decisions that are DALI's live here too: which tiles DALI may decode, the graph's tile slots,
where perspective plans go (DALI has no perspective warp), the one-time log of the tile buffer.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from ..device import cuda_usable, device_id_of
from ..images import read_bytes
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
        self.threads = int(threads or (min(4, workers) if gpu else workers))
        self.fallbacks = 0  # batches DALI could not decode (OpenCV decoded them, naming the bad file)
        self.builds = 0  # painter graphs built
        self.painter = None
        self._lock = threading.Lock()
        self._decode_lock = threading.Lock()  # one decoder run at a time
        self.decoder = self._readers = None
        self._perspective_logged = self._buffer_logged = False
        if source.arena is None and source.disk is None:  # a RAM / disk cache holds the tiles otherwise
            # file reads in parallel (I/O waits overlap): 1.6-2.2x over one thread on 2 cores, page-cached
            # files (an ad-hoc run over 512 files of 265 kB)
            self._readers = ThreadPoolExecutor(self.threads, thread_name_prefix="loader-read")
            self.decoder = DaliDecoder(max_batch=4 * max_batch, threads=self.threads, device=self._dali_device,
                                       hw_decoder_load=hw_decoder_load, to_torch=gpu, device_id=self.device_id)

    # ------------------------------------------------------------------ decode
    def _decode(self, paths: list[str], sizes: list[tuple[int, int]]) -> list | None:
        """Read and decode ``paths`` at ``sizes`` in one DALI run; None (counted) when DALI cannot."""
        try:
            blobs = list(self._readers.map(read_bytes, paths))
            with self._decode_lock:
                return self.decoder.decode(blobs, sizes)
        except Exception as e:  # noqa: BLE001 - the caller decodes one by one, which reports the file
            with self._lock:
                self.fallbacks += 1
            LOG.debug("DALI batch decode failed (%s); OpenCV decodes this batch", e)
            return None

    def prepare(self, plans) -> None:
        """Decode + resize, in one DALI run, every JPEG tile of these plans the source does not hold yet.

        EXIF-rotated files (DALI's decoder is not asked to apply orientation) and non-JPEGs stay on the
        source's OpenCV path. If DALI fails on the batch (a corrupt file), the source decodes them one by one,
        which also names the bad file; the fallback is counted.
        """
        if self.decoder is None:
            return
        src, ix = self.source, self.source.index
        want, seen = [], set()
        for p in plans:
            for i in p.indices():
                if i in seen or src.is_unreadable(i) or i in src:
                    continue
                seen.add(i)
                if ix.formats[i] == 1 and ix.orientation[i] in (0, 1):
                    want.append(i)
        arrays = self._decode([ix.im_files[i] for i in want], [src.load_hw(i) for i in want]) if want else None
        for i, arr in zip(want, arrays or ()):
            src.put(i, arr)

    # ------------------------------------------------------------------ paint
    def _painter_for(self, plans):
        """The graph for these plans: tile slots from the hyp (close_mosaic -> 1), widened if a plan needs more;
        mixup slots while the hyp has mixup; the batch size. Rebuilt (the old graph released) on a change."""
        from ..kernels.dali_paint import DaliPainter, PainterConfig

        hyp = self._hyp() if self._hyp is not None else None
        slots = 4 if self.augment and hyp is not None and hyp.mosaic > 0 else 1
        slots = max([slots] + [len(p.tiles) for p in plans] + [len(p.mix.tiles) for p in plans if p.mix is not None])
        mix = (self.augment and hyp is not None and hyp.mixup > 0) or any(p.mix is not None for p in plans)
        cfg = PainterConfig(slots, mix, max(self.max_batch, len(plans)), self._dali_device)
        with self._lock:
            if self.painter is None or self.painter.cfg != cfg:
                if self.painter is not None:
                    self.painter.close()
                self.painter = DaliPainter(cfg, threads=self.threads, device_id=self.device_id)
                self.builds += 1
            return self.painter

    def paint(self, plans, out) -> None:
        self.prepare(plans)
        if any(p.perspective for p in plans):  # not affine: the OpenCV / torch painter, image by image
            self._log_perspective_once()
            for p, o in zip(plans, out):
                self._paint_one(p, o)
        else:
            self._painter_for(plans).paint(plans, self.source.get, out)

    def _paint_one(self, plan, out) -> None:
        if self.device == "cuda":  # tiles on the GPU: the torch painter
            from ..kernels.torch_paint import paint_torch

            out[...] = paint_torch(plan, self.source.get, out.device)
            return
        from ..kernels.opencv import paint

        paint(plan, self.source.get, out)

    def _readable(self, plan) -> None:
        for i in plan.indices():
            self.source.get(i)

    def tasks(self, work) -> list:
        return [(self._batch, (work,))]

    def _batch(self, work):
        """One batch: plans, batched decode, unreadable images replaced (the work's policy), one graph run."""
        self.prepare(work.plans())
        plans = [work.attempt(j, self._readable) for j in range(len(work))]
        self.paint(plans, work.out)
        return plans

    def set_batch_size(self, batch_size: int) -> None:
        self.max_batch = int(batch_size)  # the graph is rebuilt for it on its next batch

    def collect(self, results: list) -> list:
        (plans,) = results
        return plans

    def out_buffer(self, shape):
        """A batch buffer on the GPU (CUDA tensor), or None: host memory is the loader's ring."""
        if self.device != "cuda":
            return None
        import torch

        return torch.empty(shape, dtype=torch.uint8, device=torch.device("cuda", self.device_id))

    # ------------------------------------------------------------------ reporting
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
                 "%.3f decodes per sample", "GPU" if self.device == "cuda" else "host", cache["bytes"] / 2**20,
                 cache["budget"] / 2**20, cache["items"], self.source.decodes / max(samples, 1))

    def stats(self) -> dict:
        return {"dali_fallbacks": self.fallbacks, "dali_builds": self.builds,
                "tile_buffer": {"device": self.device, "bytes": self.source.stats()["bytes"]}}

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
