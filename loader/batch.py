"""Batch buffers and the Ultralytics batch dict.

Painters write HWC uint8 straight into a ring of preallocated batch buffers (pinned
batches from torch's caching host allocator when CUDA is available); the trainer receives an
NCHW *view* of that memory (channels-last strides), so no batch is ever copied on the CPU. A
buffer is reused only when nothing outside the ring still references it (its numpy refcount is
back to the ring's own), so a consumer that keeps batches never sees them overwritten.
"""

from __future__ import annotations

import sys
import threading

import numpy as np

__all__ = ["BatchRing", "assemble"]


def _cuda_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


def _unused_refcount() -> int:
    """What ``sys.getrefcount`` says of a buffer held only by a list slot and a local, read the way ``acquire``
    reads it: measured, not assumed (interpreters differ in the references they count)."""
    bufs = [np.empty(1, np.uint8)]
    buf = bufs[0]
    return sys.getrefcount(buf)


class BatchRing:
    """``slots`` reusable flat uint8 buffers, each viewed as a contiguous (B, H, W, 3) array on demand.

    Pinned buffers (CUDA present) are not repainted here as soon as the consumer drops a batch: a ``non_blocking``
    host-to-device copy of it may still be reading (the copy reads through ``torch.from_numpy``'s tensor, for
    which torch records no event). Each batch takes a fresh one from torch's caching host allocator (recycled
    pinned blocks: no page faults), held here for ``slots`` more batches before it goes back."""

    def __init__(self, slots: int, capacity_bytes: int, pin_memory: bool | None = None):
        self.slots = int(slots)
        self.capacity = int(capacity_bytes)
        self.pin = _cuda_available() if pin_memory is None else bool(pin_memory)
        self._bufs: list[np.ndarray | None] = [None] * self.slots
        self._keep: list[object] = [None] * self.slots  # the pinned path's last tensors, held for `slots` batches
        self._next = 0
        self._lock = threading.Lock()
        self.allocations = 0
        self._unused = _unused_refcount()

    def acquire(self, shape: tuple[int, ...]) -> np.ndarray:
        """A contiguous uint8 array of ``shape`` whose memory no live batch uses."""
        need = int(np.prod(shape))
        if self.pin:
            import torch

            t = torch.empty(max(need, 1), dtype=torch.uint8, pin_memory=True)
            with self._lock:
                self._keep[self._next] = t
                self._next = (self._next + 1) % self.slots
                self.allocations += 1
            return t.numpy()[:need].reshape(shape)
        with self._lock:
            k = self._next
            self._next = (k + 1) % self.slots
            buf = self._bufs[k]
            # anything above an unused buffer's count (the list slot, ``buf`` here, getrefcount's argument) is a
            # live batch viewing it. This once counted two, so no buffer was ever reused: every batch was a fresh
            # 77 MB allocation (32 x 896^2) the painters faulted in
            if buf is None or buf.nbytes < max(need, 1) or sys.getrefcount(buf) > self._unused:
                self.allocations += 1
                buf = self._bufs[k] = np.empty(max(need, self.capacity), np.uint8)
            return buf[:need].reshape(shape)

    def nbytes(self) -> int:
        return sum(b.nbytes for b in self._bufs if b is not None) + sum(t.numel() for t in self._keep if t is not None)

    def clear(self) -> None:
        with self._lock:
            self._bufs = [None] * self.slots
            self._keep = [None] * self.slots


def assemble(batch, img, im_files) -> dict:
    """The Ultralytics batch dict for a ``PlanBatch`` painted into ``img`` (B, H, W, 3; numpy, or a tensor from an
    engine on the GPU). Boxes, classes and ``batch_idx`` come straight from the batch's flat arrays."""
    import torch

    counts = np.diff(batch.box_off)
    batch_idx = np.repeat(np.arange(len(batch), dtype=np.float32), counts)
    ori = batch.ori_shape.tolist()
    ratio = batch.ratio.tolist()
    if batch.pad is not None:
        ratio_pad = tuple(((a, b), (int(c), int(d))) for (a, b), (c, d) in zip(ratio, batch.pad.tolist()))
    else:
        ratio_pad = tuple((a, b) for a, b in ratio)
    return {
        "img": (img if torch.is_tensor(img) else torch.from_numpy(img)).permute(0, 3, 1, 2),
        "cls": torch.from_numpy(batch.cls.astype(np.float32).reshape(-1, 1)),
        "bboxes": torch.from_numpy(batch.boxes.astype(np.float32).reshape(-1, 4)),
        "batch_idx": torch.from_numpy(batch_idx),
        "im_file": tuple(im_files[int(i)] for i in batch.index),
        "ori_shape": tuple((h, w) for h, w in ori),
        "resized_shape": (batch.out_hw,) * len(batch),
        "ratio_pad": ratio_pad,
    }
