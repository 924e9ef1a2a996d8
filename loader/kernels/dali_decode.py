"""Batched decode + INTER_LINEAR resize (antialias off) with NVIDIA DALI."""

from __future__ import annotations

import logging

import numpy as np

from .._closing import Closing
from ..device import cuda_usable, device_id_of

__all__ = ["DaliDecoder", "dali_available", "feed_to_torch"]

LOG = logging.getLogger("loader.dali")


def dali_available() -> tuple[bool, str]:
    try:
        import nvidia.dali  # noqa: F401
    except Exception as e:  # not installed, or a broken install
        return False, f"nvidia-dali is not importable ({type(e).__name__}: {e})"
    return True, "nvidia-dali importable"


def feed_to_torch(samples, dsts) -> None:
    """DALI GPU samples into CUDA tensors of their shapes (device-to-device copies on torch's stream), then waited
    for by this thread only: DALI's next run may reuse its output memory, and what was fed may be dropped."""
    import torch
    from nvidia.dali.plugin.pytorch import feed_ndarray

    if not dsts:
        return
    stream = torch.cuda.current_stream(dsts[0].device)
    for t, d in zip(samples, dsts):
        feed_ndarray(t, d, cuda_stream=stream)
    stream.synchronize()


def _to_torch(res, n: int, device_id: int) -> list:
    """Samples of a DALI GPU batch -> CUDA tensors of their own."""
    import torch

    dev = torch.device("cuda", device_id)
    samples = [res[k] for k in range(n)]
    out = [torch.empty(tuple(t.shape()), dtype=torch.uint8, device=dev) for t in samples]
    feed_to_torch(samples, out)
    return out


class DaliDecoder(Closing):
    """``decode(blobs, sizes)`` -> BGR uint8 arrays at ``sizes`` ((h, w) each), in input order.

    ``device``: "gpu" (nvJPEG via DALI's ``mixed`` decoder), "cpu" (DALI CPU operators,
    ``device_id=None``) or "auto" (gpu when CUDA is usable). ``to_torch`` (gpu only): results stay on
    the GPU as CUDA tensors (the loader's tile buffer). EXIF orientation is not applied by DALI's
    decoder: callers route EXIF-rotated files elsewhere.
    """

    def __init__(self, max_batch: int, threads: int = 2, device: str = "auto", hw_decoder_load: float = 0.65,
                 to_torch: bool = False, device_id: int | None = None):
        from nvidia.dali import fn, pipeline_def, types

        gpu, why = cuda_usable()
        if device == "gpu" and not gpu:
            raise RuntimeError(f"DALI on GPU requested but {why}")
        self.device = "gpu" if (device == "gpu" or (device == "auto" and gpu)) else "cpu"
        self.max_batch = int(max_batch)
        self.to_torch = bool(to_torch) and self.device == "gpu"
        self.device_id = device_id_of(device_id) if self.device == "gpu" else None

        @pipeline_def(batch_size=self.max_batch, num_threads=max(1, int(threads)),
                      device_id=self.device_id, prefetch_queue_depth=1,
                      exec_async=False, exec_pipelined=False)
        def _pipe():
            enc = fn.external_source(name="enc", dtype=types.UINT8)
            size = fn.external_source(name="size", dtype=types.FLOAT)
            if self.device == "gpu":
                img = fn.decoders.image(enc, device="mixed", output_type=types.BGR, hw_decoder_load=hw_decoder_load)
            else:
                img = fn.decoders.image(enc, device="cpu", output_type=types.BGR)
            return fn.resize(img, size=size, interp_type=types.INTERP_LINEAR, antialias=False)

        self._pipe = _pipe()
        self._pipe.build()
        LOG.info("DALI decoder on %s (%s)", self.device, why if self.device == "gpu" else "CPU-only mode")

    def decode(self, blobs: list[np.ndarray], sizes: list[tuple[int, int]]) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        for lo in range(0, len(blobs), self.max_batch):
            chunk, hw = blobs[lo:lo + self.max_batch], sizes[lo:lo + self.max_batch]
            self._pipe.feed_input("enc", [np.asarray(b, np.uint8) for b in chunk])
            self._pipe.feed_input("size", [np.array(s, np.float32) for s in hw])
            (res,) = self._pipe.run()
            if self.to_torch:
                out += _to_torch(res, len(chunk), self.device_id)
                continue
            if self.device == "gpu":
                res = res.as_cpu()
            out += [np.array(res[k]) for k in range(len(chunk))]
        return out

    def close(self) -> None:
        pipe, self._pipe = getattr(self, "_pipe", None), None
        del pipe
