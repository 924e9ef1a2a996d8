"""``FastDetectionValidator``: Ultralytics' standalone validator fed by our val loader.

``YOLO("best.pt").val(data="data.yaml", validator=FastDetectionValidator)``. During training
the trainer's own val loader (ours, through ``FastDetectionTrainer``) is used instead.
Both are exact: the CPU engine, full JPEG decode and Ultralytics' own letterbox resize, so every
val image is bitwise the stock validator's and the metrics are the same numbers
(``tests/test_validator_exact.py``).
"""

from __future__ import annotations

from ultralytics.models.yolo.detect import DetectionValidator

from loader import DetectionLoader

from .adapter import UltralyticsLoader
from .selection import index_for

__all__ = ["FastDetectionValidator"]


class FastDetectionValidator(DetectionValidator):
    def get_dataloader(self, dataset_path, batch_size: int):
        index = index_for(dataset_path, "val", self.args, self.data, mode="val")
        loader = DetectionLoader(index, imgsz=self.args.imgsz, batch_size=batch_size, augment=False, backend="cpu",
                                 rect=bool(self.args.rect), stride=int(self.stride), pad=0.5,
                                 workers=int(self.args.workers) if int(self.args.workers or 0) > 0 else "auto")
        return UltralyticsLoader(loader, self.data)
