"""The engine seam: what every engine does, whatever paints the pixels.

An engine paints plans from the loader's ``ImageSource`` into batch buffers:

* ``out_buffer(shape)``: a buffer it owns for a batch of ``shape`` (B, H, W, 3) (a CUDA tensor for an
  engine on the GPU), or None: the loader's host ring buffers serve;
* ``paint(plans, out)``: paint these plans into ``out`` (B, H, W, 3), nothing else (no planning, no
  recovery): what tests and benchmarks call;
* ``tasks(work)``: the calls that produce one scheduled batch (``epoch.BatchWork``: its plans, the
  bad-data policy, where the pixels go), run in parallel on the loader's painter threads;
  ``hand_over(work, batch)``: in the consumer's thread, before the batch is yielded (an engine on a GPU
  makes the consumer's stream wait for its work there);
* ``stats()``: its own figures, in the loader's vocabulary (``device``: ``"cpu"`` or ``"cuda"``);
  ``end_of_epoch(samples)``: a hook after each epoch; ``set_batch_size(n)``: batches of ``n`` from now on;
  ``close()``: releases threads, pipelines, GPU memory.
"""

from __future__ import annotations

from .._closing import Closing

__all__ = ["Engine"]


class Engine(Closing):
    name: str = ""
    device: str = "cpu"  # where its batches land: "cpu" (host memory) or "cuda"

    def out_buffer(self, shape):
        return None

    def paint(self, plans, out) -> None:  # pragma: no cover - every engine overrides it
        raise NotImplementedError

    def tasks(self, work) -> list:  # pragma: no cover - every engine overrides it
        raise NotImplementedError

    def hand_over(self, work, batch: dict) -> None:
        pass

    def end_of_epoch(self, samples: int) -> None:
        pass

    def set_batch_size(self, batch_size: int) -> None:
        pass

    def stats(self) -> dict:
        return {}

    def close(self) -> None:
        pass
