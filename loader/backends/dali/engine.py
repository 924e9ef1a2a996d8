"""The DALI engine's resources for one loader: file readers, the batched decoder, the painter graph
(rebuilt when its shape changes) and the CUDA device they share.

``DetectionLoader`` keeps the orchestration (plans, unreadable-file replacement, batches); this
class owns everything that has threads, pipelines or GPU memory, and releases it in ``close()``.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from ..._closing import Closing
from .decoder import DaliDecoder, cuda_usable, device_id_of
from .painter import DaliPainter, PainterConfig

__all__ = ["DaliEngine"]

LOG = logging.getLogger("loader.dali")


class DaliEngine(Closing):
    """``decode``: a DALI decoder feeds the tile cache (off when a RAM/disk cache holds the tiles).

    ``threads``: DALI's CPU thread pool and the file readers. Default: on a GPU ``min(4, workers)``,
    since DALI's CPU threads then only feed nvJPEG's host stage and the engine is meant to need at
    most 4 busy cores; in CPU-only mode DALI does all the work: ``workers`` (measured best on 2 cores:
    ``benchmarks/dali_knobs.py``). ``hw_decoder_load``: share of JPEGs for the hardware decoder.
    """

    def __init__(self, max_batch: int, workers: int, threads: int | None = None, hw_decoder_load: float = 0.65,
                 decode: bool = True):
        gpu = cuda_usable()[0]
        self.device = "gpu" if gpu else "cpu"
        # the constructing thread's GPU (a DDP rank's own): painter threads use it explicitly
        self.device_id = device_id_of(None) if gpu else None
        self.threads = int(threads or (min(4, workers) if gpu else workers))
        self.fallbacks = 0  # batches DALI could not decode (OpenCV decoded them, naming the bad file)
        self.builds = 0  # painter graphs built
        self.painter: DaliPainter | None = None
        self._lock = threading.Lock()
        self._decode_lock = threading.Lock()  # one decoder run at a time
        self.decoder = self._readers = None
        if decode:
            # file reads in parallel (I/O waits overlap): 1.6-2.2x over one thread on 2 cores, page-cached
            # files (an ad-hoc run over 512 files of 265 kB)
            self._readers = ThreadPoolExecutor(self.threads, thread_name_prefix="loader-read")
            self.decoder = DaliDecoder(max_batch=4 * max_batch, threads=self.threads, device=self.device,
                                       hw_decoder_load=hw_decoder_load, to_torch=gpu, device_id=self.device_id)

    def decode(self, paths: list[str], sizes: list[tuple[int, int]]) -> list | None:
        """Read and decode ``paths`` at ``sizes`` in one DALI run; None (counted) when DALI cannot."""
        from ..cpu.images import read_bytes

        try:
            blobs = list(self._readers.map(read_bytes, paths))
            with self._decode_lock:
                return self.decoder.decode(blobs, sizes)
        except Exception as e:  # noqa: BLE001 - the caller decodes one by one, which reports the file
            with self._lock:
                self.fallbacks += 1
            LOG.debug("DALI batch decode failed (%s); OpenCV decodes this batch", e)
            return None

    def painter_for(self, slots: int, mix: bool, max_batch: int) -> DaliPainter:
        """The painter for this shape of batch; rebuilt (the old graph released) when the shape changes."""
        cfg = PainterConfig(slots, mix, max_batch, self.device)
        with self._lock:
            if self.painter is None or self.painter.cfg != cfg:
                if self.painter is not None:
                    self.painter.close()
                self.painter = DaliPainter(cfg, threads=self.threads, device_id=self.device_id)
                self.builds += 1
            return self.painter

    def out_buffer(self, shape):
        """A batch buffer on the GPU (CUDA tensor), or None: host memory is the loader's ring."""
        if self.device != "gpu":
            return None
        import torch

        return torch.empty(shape, dtype=torch.uint8, device=torch.device("cuda", self.device_id))

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
