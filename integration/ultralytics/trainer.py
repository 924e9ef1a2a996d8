"""``FastDetectionTrainer``: Ultralytics' ``DetectionTrainer`` with our loader for train and val.

Switching is one argument::

    YOLO("yolo11n.yaml").train(data="data.yaml", imgsz=896, batch=128, trainer=FastDetectionTrainer)

Our own options cannot be new ``train()`` keywords (Ultralytics' ``get_cfg`` rejects unknown
keys). They come, in this order of precedence, from ``fast_trainer(...)`` (a configured
subclass), environment variables ``YOLO_LOADER_BACKEND``, ``YOLO_LOADER_WORKERS``,
``YOLO_LOADER_PREFETCH``, ``YOLO_LOADER_REDUCED_DECODE`` (true / false / equivalent), or defaults. The options are also written to the environment,
so Ultralytics' DDP workers (which re-import the trainer class by name) see them too.
"""

from __future__ import annotations

import json
import logging
import os

from ultralytics.models.yolo.detect import DetectionTrainer
from ultralytics.utils import RANK
from ultralytics.utils.torch_utils import unwrap_model

from loader import DetectionLoader, Hyp, UnsupportedHyp, painter_cap
from loader.config import cache_mode

from .adapter import UltralyticsLoader
from .selection import index_for

__all__ = ["FastDetectionTrainer", "fast_trainer", "loader_options", "check_trainer_args"]

LOG = logging.getLogger("loader.integration")
_ENV = "YOLO_LOADER_TRAINER_OPTIONS"
_DEFAULTS = {"backend": "auto", "workers": None, "prefetch": 2, "reduced_decode": None}


def loader_options(explicit: dict | None = None, inherited: bool = False) -> dict:
    """Effective options: ``explicit`` > ``YOLO_LOADER_*`` environment > defaults.

    ``inherited``: also read the options a parent process's trainer exported (DDP workers).
    """
    opts = dict(_DEFAULTS)
    if inherited and os.environ.get(_ENV):
        opts.update(json.loads(os.environ[_ENV]))
    for key in _DEFAULTS:
        v = os.environ.get(f"YOLO_LOADER_{key.upper()}")
        if v:
            opts[key] = int(v) if key in ("workers", "prefetch") and v.isdigit() else \
                {"true": True, "false": False}.get(v.lower(), v) if key == "reduced_decode" else v
    opts.update({k: v for k, v in (explicit or {}).items() if v is not None})
    unknown = set(opts) - set(_DEFAULTS)
    if unknown:
        raise TypeError(f"unknown loader option(s) {sorted(unknown)}; known: {sorted(_DEFAULTS)}")
    return opts


def check_trainer_args(args) -> None:
    """Refuse, naming the key, every train argument our loader would otherwise ignore."""
    refused = []
    try:
        cache_mode(args.cache)
    except UnsupportedHyp:
        refused.append(f"cache={args.cache!r} (use False, True / 'ram' or 'disk')")
    if args.rect:
        refused.append("rect=True (rectangular training batches are unshuffled and aspect-ratio sorted without "
                       "mosaic; the planner builds square mosaic batches. Validation is always rectangular)")
    if refused:
        raise UnsupportedHyp("FastDetectionTrainer does not support: " + "; ".join(refused))
    Hyp.from_any(vars(args))  # augmentation hyperparameters: refused here, before any data is read


class FastDetectionTrainer(DetectionTrainer):
    """Ultralytics' detection trainer fed by ``loader.DetectionLoader``."""

    loader_options: dict = {}

    def __init__(self, *args, **kwargs):
        opts = loader_options(type(self).loader_options, inherited=RANK != -1)
        os.environ[_ENV] = json.dumps(opts)  # DDP subprocesses rebuild the trainer by class name
        self.fast_options = opts
        super().__init__(*args, **kwargs)
        check_trainer_args(self.args)

    def _build_train_pipeline(self):
        """After an out-of-memory retry Ultralytics builds new loaders. 8.4.150 closes neither loader it replaces
        and goes on validating with the first val loader (8.4.190 closes the train loader and hands the validator
        the new one), so painter threads and prefetched batches would live on. Here both replaced loaders are
        closed and the validator gets the new val loader, whichever version runs (closing is idempotent)."""
        old_train, old_test = getattr(self, "train_loader", None), getattr(self, "test_loader", None)
        if old_train is not None and hasattr(old_train, "close"):
            old_train.close()
        out = super()._build_train_pipeline()
        if old_test is not None and old_test is not self.test_loader:
            validator = getattr(self, "validator", None)
            if validator is not None and getattr(validator, "dataloader", None) is old_test:
                validator.dataloader = self.test_loader
            if hasattr(old_test, "close"):
                old_test.close()
        return out

    def get_dataloader(self, dataset_path, batch_size: int = 16, rank: int = 0, mode: str = "train"):
        assert mode in {"train", "val"}, f"mode must be 'train' or 'val', not {mode}"
        opts = self.fast_options
        # our option, else the trainer's `workers` as painter threads, capped as Ultralytics caps its worker
        # processes (this rank's share of the cores: painter_cap); Ultralytics sets it to 0 on CPU devices, where
        # our threads still pay off: then "auto" (tuner pick, else one per core)
        asked = int(self.args.workers or 0)
        workers = opts["workers"] or (min(asked, painter_cap()) if asked > 0 else "auto")
        model = unwrap_model(self.model) if self.model is not None and not isinstance(self.model, str) else None
        gs = max(int(model.stride.max()), 32) if model is not None and hasattr(model, "stride") else 32
        index = index_for(dataset_path, "train" if mode == "train" else "val", self.args, self.data, mode)
        world = self.world_size if RANK != -1 else 1
        common = dict(imgsz=self.args.imgsz, batch_size=batch_size, workers=workers, backend=opts["backend"],
                      prefetch=opts["prefetch"])
        if mode == "train":
            extra = {} if opts["reduced_decode"] is None else {"reduced_decode": opts["reduced_decode"]}
            loader = DetectionLoader(index, augment=True, hyp=vars(self.args), seed=self.args.seed, rank=max(RANK, 0),
                                     world_size=world, drop_last=bool(self.args.compile),
                                     cache=self.args.cache, **common, **extra)
        else:  # exact validation whatever trains: the CPU engine decodes and letterboxes as Ultralytics does
            loader = DetectionLoader(index, augment=False, rect=True, stride=gs, pad=0.5, **dict(common, backend="cpu"))
        return UltralyticsLoader(loader, self.data)


def fast_trainer(backend: str | None = None, workers: int | str | None = None, prefetch: int | None = None,
                 reduced_decode: bool | str | None = None):
    """A ``FastDetectionTrainer`` with these loader options (pass it as ``trainer=``).

    The subclass carries the name ``FastDetectionTrainer`` so that Ultralytics' DDP launcher,
    which imports the trainer class by module and name, finds a class that behaves the same
    (its options travel through the environment).
    """
    opts = loader_options({"backend": backend, "workers": workers, "prefetch": prefetch,
                           "reduced_decode": reduced_decode})
    return type("FastDetectionTrainer", (FastDetectionTrainer,), {"loader_options": opts,
                                                                   "__module__": __name__})
