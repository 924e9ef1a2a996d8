"""Batch buffers and the Ultralytics batch dict.

Painters write HWC uint8 straight into a ring of preallocated batch buffers (pinned
when CUDA is available); the trainer receives an NCHW *view* of that memory
(channels-last strides), so no batch is ever copied on the CPU. A buffer is reused only
when nothing outside the ring still references it (its numpy refcount is back to the
ring's own), so a consumer that keeps batches never sees them overwritten.
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


class BatchRing:
    """``slots`` reusable flat uint8 buffers, each viewed as a contiguous (B, H, W, 3) array on demand."""

    def __init__(self, slots: int, capacity_bytes: int, pin_memory: bool | None = None):
        self.slots = int(slots)
        self.capacity = int(capacity_bytes)
        self.pin = _cuda_available() if pin_memory is None else bool(pin_memory)
        self._bufs: list[np.ndarray | None] = [None] * self.slots
        self._keep: list[object] = [None] * self.slots  # pinned torch tensors owning the memory
        self._next = 0
        self._lock = threading.Lock()
        self.allocations = 0

    def _alloc(self, nbytes: int):
        self.allocations += 1
        if self.pin:
            import torch

            t = torch.empty(nbytes, dtype=torch.uint8, pin_memory=True)
            return t.numpy(), t
        return np.empty(nbytes, np.uint8), None

    def acquire(self, shape: tuple[int, ...]) -> np.ndarray:
        """A contiguous uint8 array of ``shape`` whose memory no live batch uses."""
        need = int(np.prod(shape))
        with self._lock:
            k = self._next
            self._next = (k + 1) % self.slots
            buf = self._bufs[k]
            # refs: the list slot + getrefcount's argument; anything more is a consumer's batch
            if buf is None or buf.nbytes < max(need, 1) or sys.getrefcount(buf) > 2:
                buf, keep = self._alloc(max(need, self.capacity))
                self._bufs[k], self._keep[k] = buf, keep
            return buf[:need].reshape(shape)

    def nbytes(self) -> int:
        return sum(b.nbytes for b in self._bufs if b is not None)

    def clear(self) -> None:
        with self._lock:
            self._bufs = [None] * self.slots
            self._keep = [None] * self.slots


def assemble(plans, img, im_files) -> dict:
    """The Ultralytics batch dict for ``plans`` painted into ``img`` (B, H, W, 3; numpy, or a CUDA tensor
    from the DALI engine on a GPU)."""
    import torch

    counts = [len(p.cls) for p in plans]
    cls = np.concatenate([p.cls for p in plans]).astype(np.float32).reshape(-1, 1) if plans else \
        np.zeros((0, 1), np.float32)
    boxes = np.concatenate([p.boxes for p in plans]).astype(np.float32).reshape(-1, 4) if plans else \
        np.zeros((0, 4), np.float32)
    batch_idx = np.repeat(np.arange(len(plans), dtype=np.float32), counts)
    return {
        "img": (img if torch.is_tensor(img) else torch.from_numpy(img)).permute(0, 3, 1, 2),
        "cls": torch.from_numpy(cls),
        "bboxes": torch.from_numpy(boxes),
        "batch_idx": torch.from_numpy(batch_idx),
        "im_file": tuple(im_files[p.index] for p in plans),
        "ori_shape": tuple(p.ori_shape for p in plans),
        "resized_shape": tuple(p.resized_shape for p in plans),
        "ratio_pad": tuple(p.ratio_pad for p in plans),
    }
