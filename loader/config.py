"""``LoaderConfig``: every knob of ``DetectionLoader`` with its default, validated once, before any thread starts.

Frozen: a change (``set_batch_size``) is a new config (``dataclasses.replace``), validated again. Refusals
name the key. Ultralytics' spellings are mapped here and only here (``cache=True`` -> ``"ram"``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, fields, replace

from .plan import Hyp, UnsupportedHyp

__all__ = ["LoaderConfig", "cache_mode"]

BACKENDS = ("auto", "cpu", "dali")


def cache_mode(value) -> str | None:
    """Ultralytics' ``cache`` argument (False/None, True, "ram", "disk", or their strings) -> None, "ram" or
    "disk"; anything else is refused, naming it."""
    if value in (False, None, "False", "false", "", "none", "None"):
        return None
    if value in (True, "True", "true", "ram"):
        return "ram"
    if value == "disk":
        return "disk"
    raise UnsupportedHyp(f"cache={value!r} must be False, True / 'ram' or 'disk'")


@dataclass(frozen=True)
class LoaderConfig:
    """What ``DetectionLoader`` does.

    ``imgsz``: training size (even, >= 32). ``batch_size``: per rank. ``workers``: painter threads, or
    ``"auto"`` (the tuner's pick for this data / imgsz / batch / engine, else one per core).
    ``backend``: ``"cpu"`` (OpenCV painter threads), ``"dali"`` (DALI decodes and paints; on a GPU when CUDA
    is usable, else DALI's CPU-only mode) or ``"auto"`` (DALI only on a usable GPU).
    ``augment``: training (mosaic, affine, mixup, HSV, flips with Ultralytics' ``hyp``) or validation
    (letterbox; ``rect`` sorts by aspect ratio and shapes each batch as Ultralytics' validator does, with
    ``stride`` and ``pad``). ``seed``, ``rank``, ``world_size``, ``drop_last``: the sample order and its DDP
    shard. ``split`` / ``names`` / ``index_cache``: how the index is built from a path.
    ``prefetch``: batches painted ahead. ``cache_bytes``: the decoded-image buffer (default: Ultralytics'
    mosaic buffer plus two batches, at most 4 GiB). ``pin_memory``: pinned batch buffers (default: when
    CUDA is available). ``reduced_decode``: DCT-reduced JPEG decoding in training: ``"equivalent"``
    (default: only where it gives Ultralytics' images, a target of exactly half the source), ``True`` (wherever
    it can: faster, but 0.45-0.65x the sharpness at other scales), ``False``; validation always decodes as
    Ultralytics does. It applies to OpenCV's decodes: the DALI engine decodes JPEGs in full (a WARNING says so
    when ``True`` is asked). ``max_bad_fraction``: share of an epoch's samples that may need a
    replacement for an image unreadable at training time before ``BadDataError``. ``cache``: None,
    ``"ram"`` (one copy per node in shared memory) or ``"disk"`` (one file), both every image at training size
    in one packed store read as views (``images/packed.py``); ``cache_dir``: where ``"disk"`` goes (default
    ``YOLO_LOADER_DISK_CACHE_DIR``, else ``~/.cache/yolo-loader/images``): a local SSD, or ``/dev/shm``, when the
    images sit on a network share.
    ``dali_threads``: DALI's CPU thread pool (default: ``min(4, workers)`` on a GPU, ``workers`` in
    CPU-only mode). ``hw_decoder_load``: share of JPEGs for the GPU's hardware decoder.
    """

    imgsz: int = 896
    batch_size: int = 16
    workers: int | str = "auto"
    backend: str = "auto"
    augment: bool = True
    hyp: Hyp = field(default_factory=Hyp)
    rect: bool = False
    seed: int = 0
    rank: int = 0
    world_size: int = 1
    split: str | None = None
    names: object = None
    prefetch: int = 2
    cache_bytes: int | None = None
    stride: int = 32
    pad: float = 0.5
    drop_last: bool = False
    index_cache: object = True
    pin_memory: bool | None = None
    reduced_decode: bool | str = "equivalent"
    max_bad_fraction: float = 0.01
    cache: str | None = None
    dali_threads: int | None = None
    hw_decoder_load: float = 0.65
    cache_dir: str | None = None

    @classmethod
    def from_kwargs(cls, **kwargs) -> LoaderConfig:
        """From ``DetectionLoader``'s keyword arguments: unknown keys refused, spellings mapped, validated."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise TypeError(f"unknown DetectionLoader argument(s) {unknown}; known: {sorted(known)}")
        if "cache" in kwargs:
            kwargs["cache"] = cache_mode(kwargs["cache"])
        if kwargs.get("workers") is None:
            kwargs["workers"] = "auto"
        kwargs["hyp"] = kwargs["hyp"] if isinstance(kwargs.get("hyp"), Hyp) else Hyp.from_any(kwargs.get("hyp"))
        cfg = cls(**kwargs)
        cfg.validate()
        return cfg

    def replace(self, **changes) -> LoaderConfig:
        cfg = replace(self, **changes)
        cfg.validate()
        return cfg

    @property
    def split_name(self) -> str:
        return self.split or ("train" if self.augment else "val")

    def validate(self) -> None:
        def need(ok: bool, key: str, what: str, error=ValueError):
            if not ok:
                raise error(f"{key} must be {what}, got {getattr(self, key)!r}")

        need(isinstance(self.imgsz, int) and self.imgsz >= 32 and self.imgsz % 2 == 0, "imgsz",
             "an even number >= 32")
        need(isinstance(self.batch_size, int) and self.batch_size >= 1, "batch_size", ">= 1")
        need(self.workers == "auto" or (isinstance(self.workers, int) and self.workers >= 1), "workers",
             ">= 1 or 'auto'")
        need(self.backend in BACKENDS, "backend", "'auto', 'cpu' or 'dali'")
        if self.augment and self.rect:
            raise UnsupportedHyp("rect=True with augmentation (rectangular training) is not supported; "
                                 "use rect=False for training (mosaic needs square batches)")
        need(self.cache in (None, "ram", "disk"), "cache", "None, 'ram' or 'disk'", UnsupportedHyp)
        need(isinstance(self.world_size, int) and self.world_size >= 1, "world_size", ">= 1")
        need(isinstance(self.rank, int) and 0 <= self.rank < self.world_size, "rank", "in [0, world_size)")
        need(isinstance(self.prefetch, int) and self.prefetch >= 1, "prefetch", ">= 1")
        need(self.cache_bytes is None or self.cache_bytes >= 0, "cache_bytes", "None or >= 0")
        need(isinstance(self.stride, int) and self.stride >= 1, "stride", ">= 1")
        need(math.isfinite(self.pad) and self.pad >= 0, "pad", "a finite number >= 0")
        need(0.0 <= self.max_bad_fraction <= 1.0, "max_bad_fraction", "in [0, 1]")
        need(self.dali_threads is None or (isinstance(self.dali_threads, int) and self.dali_threads >= 1),
             "dali_threads", "None or >= 1")
        need(0.0 <= self.hw_decoder_load <= 1.0, "hw_decoder_load", "in [0, 1]")
        need(self.cache_dir is None or isinstance(self.cache_dir, (str, os.PathLike)), "cache_dir", "None or a path")
        need(any(self.reduced_decode is m or self.reduced_decode == m for m in (False, True, "equivalent")),
             "reduced_decode", "True, False or 'equivalent'")
        self.hyp.validate()
