"""Training rows: real Ultralytics training iterations per second, the user's own metric.

``train-stock`` (Ultralytics' ``DetectionTrainer`` with its own loader), ``train-cpu`` / ``train-dali``
(``FastDetectionTrainer`` with our engines) and ``train-synthetic``: the same trainer and training loop fed
batches made once and kept on the training device (no loading at all), the ceiling any loader can reach with
that model. Each runs in its own process with the same arguments (model from a yaml: no weights, no
validation, no plots); after ``warmup`` iterations the next ``iterations`` are timed (it/s over their
intervals), and the run is stopped. PSS of the process tree is sampled throughout.
"""

from __future__ import annotations

import time

from .spec import RunSpec

__all__ = ["measure_training", "ResidentLoader", "TRAINERS"]

TRAINERS = ("stock", "cpu", "dali", "synthetic")


class _Done(Exception):
    """Raised from the batch callback once the timed iterations are over: training stops there."""


class ResidentLoader:
    """``k`` batches made once by our loader and moved to ``device``, yielded round-robin: the trainer's contract
    (``len``, ``batch_size``, ``num_workers``, ``sampler``, ``dataset``, ``reset``, ``close``) with no loading."""

    def __init__(self, inner, device, k: int = 2):
        self.inner, self.dataset = inner, inner.dataset
        it = iter(inner)
        self.batches = []
        for _ in range(k):
            b = next(it)
            self.batches.append({key: (v.to(device) if hasattr(v, "to") else v) for key, v in b.items()})
        inner.reset()

    def __iter__(self):
        for j in range(len(self)):
            yield self.batches[j % len(self.batches)]

    def __len__(self) -> int:
        return len(self.inner)

    batch_size = property(lambda self: self.inner.batch_size)
    num_workers = property(lambda self: 0)
    sampler = property(lambda self: self.inner.sampler)

    def reset(self) -> None:
        pass

    def close(self) -> None:
        self.inner.close()


def _trainer_class(which: str, workers):
    from ultralytics.models.yolo.detect import DetectionTrainer

    from integration.ultralytics import fast_trainer

    if which == "stock":
        return DetectionTrainer
    if which in ("cpu", "dali"):
        return fast_trainer(backend=which, workers=workers)
    base = fast_trainer(backend="cpu", workers=workers)

    class SyntheticTrainer(base):
        def get_dataloader(self, dataset_path, batch_size: int = 16, rank: int = 0, mode: str = "train"):
            loader = super().get_dataloader(dataset_path, batch_size, rank, mode)
            return ResidentLoader(loader, self.device) if mode == "train" else loader

    return SyntheticTrainer


def measure_training(spec: RunSpec, meter) -> dict:
    """Train ``spec.train`` for ``spec.warmup`` + ``spec.batches`` iterations; the row (``it_s`` over the timed
    iterations, ``img_s``, peak PSS)."""
    from ultralytics import YOLO

    warmup = spec.warmup if spec.warmup is not None else 3
    stamps: list[float] = []

    def on_batch_end(trainer):
        stamps.append(time.perf_counter())
        if len(stamps) > warmup + spec.batches:
            raise _Done

    model = YOLO(spec.model)
    model.add_callback("on_train_batch_end", on_batch_end)
    workers = spec.workers if spec.workers not in (0, "0", None) else "auto"
    import tempfile

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-train-") as project:
        try:
            model.train(data=spec.data, imgsz=spec.imgsz, batch=spec.batch, epochs=1000, device=spec.device,
                        workers=spec.workers if isinstance(spec.workers, int) else 8, plots=False, val=False,
                        amp=spec.device != "cpu", project=project, name="run", exist_ok=True, verbose=False,
                        close_mosaic=0, trainer=_trainer_class(spec.train, workers))
        except _Done:
            pass
    timed = stamps[warmup:warmup + spec.batches + 1]
    if len(timed) < 2:
        raise RuntimeError(f"training stopped after {len(stamps)} iterations: too few to time")
    it_s = (len(timed) - 1) / (timed[-1] - timed[0])
    return {"name": spec.name, "kind": "train", "trainer": spec.train, "model": spec.model, "device": spec.device,
            "imgsz": spec.imgsz, "batch": spec.batch, "it_s": it_s, "img_s": it_s * spec.batch,
            "iterations_timed": len(timed) - 1, "warmup_iterations": warmup, "wall_s": time.perf_counter() - t0}
