"""yolo-dali-loader: a fast, lean training data loader for Ultralytics YOLO.

Data flows one way: ``dataset`` (index) -> ``sampler`` (order) -> plan -> paint -> batch.
This package never imports Ultralytics; ``integration`` adapts it.
Heavy modules are imported lazily so that worker processes start fast.
"""

from __future__ import annotations

from importlib import import_module

from ._log import setup_default_logging

__version__ = "0.1.0"
__all__ = ["DetectionLoader", "painter_cap", "BadDataError", "LoaderConfig", "tuner", "Hyp", "UnsupportedHyp", "DatasetIndex", "DatasetError", "build_index", "ShardedSampler", "epoch_order", "shard",
           "backend_report", "__version__"]

_LAZY = {
    "DetectionLoader": "loader.loader", "painter_cap": "loader.loader", "BadDataError": "loader.recovery", "LoaderConfig": "loader.config",
    "Hyp": "loader.plan", "UnsupportedHyp": "loader.plan",
    "DatasetIndex": "loader.dataset", "DatasetError": "loader.dataset", "build_index": "loader.dataset",
    "ShardedSampler": "loader.sampler", "epoch_order": "loader.sampler", "shard": "loader.sampler",
    "backend_report": "loader.imaging",
}
_MODULES = {"tuner": "loader.tuner"}

setup_default_logging()


def __getattr__(name):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    if name in _MODULES:
        return import_module(_MODULES[name])
    raise AttributeError(f"module 'loader' has no attribute {name!r}")
