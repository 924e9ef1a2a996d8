"""Ultralytics adapter. Importing it checks the installed Ultralytics version first.

``FastDetectionTrainer`` is Ultralytics' detection trainer fed by ``loader.DetectionLoader``;
``fast_trainer(backend=..., workers=...)`` returns a configured subclass.
"""

from .._version import UnsupportedUltralytics, check_ultralytics_version

ULTRALYTICS_VERSION = check_ultralytics_version()

from .adapter import UltralyticsDataset, UltralyticsLoader  # noqa: E402
from .trainer import FastDetectionTrainer, check_trainer_args, fast_trainer, loader_options  # noqa: E402
from .validator import FastDetectionValidator  # noqa: E402

__all__ = ["ULTRALYTICS_VERSION", "UnsupportedUltralytics", "check_ultralytics_version", "FastDetectionTrainer",
           "fast_trainer", "FastDetectionValidator", "loader_options", "check_trainer_args", "UltralyticsLoader", "UltralyticsDataset"]
