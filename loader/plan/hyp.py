"""Augmentation hyperparameters: Ultralytics 8.4's names and defaults, validated once.

Every key that changes detection loading is either honoured or refused here with a
message naming it; none is silently ignored.
"""

from __future__ import annotations

import importlib.util
import logging
import math
from dataclasses import asdict, dataclass, fields

__all__ = ["Hyp", "UnsupportedHyp"]

LOG = logging.getLogger("loader.plan")


class UnsupportedHyp(ValueError):
    """A hyperparameter value this loader cannot honour; the message names the key."""


@dataclass(frozen=True)
class Hyp:
    hsv_h: float = 0.015
    hsv_s: float = 0.7
    hsv_v: float = 0.4
    degrees: float = 0.0
    translate: float = 0.1
    scale: float | tuple = 0.5
    shear: float = 0.0
    perspective: float = 0.0
    flipud: float = 0.0
    fliplr: float = 0.5
    bgr: float = 0.0
    mosaic: float = 1.0
    mixup: float = 0.0
    cutmix: float = 0.0
    copy_paste: float = 0.0
    copy_paste_mode: str = "flip"
    augmentations: object = None

    # Values other than these are refused (not implemented by this loader).
    _REFUSED = {"copy_paste": 0.0, "augmentations": None}
    _WHY = {"copy_paste": "on polygon labels stock pastes each object's outline as a pixel mask (flipped copies, "
                          "or another image's), a per-object mask paint the planned engines do not have yet; on box "
                          "labels stock's copy_paste does nothing, so 0 trains the same there",
            "augmentations": "custom Albumentations transforms are arbitrary per-sample Python on numpy; the planned "
                             "engines (plans as numbers, batched kernels, DALI graphs) cannot run them"}
    _PROBABILITIES = ("flipud", "fliplr", "bgr", "mosaic", "mixup", "cutmix", "copy_paste")

    @classmethod
    def from_any(cls, hyp=None, **overrides) -> Hyp:
        """From None, a dict, or any namespace (Ultralytics' ``IterableSimpleNamespace``).

        Keys that do not affect detection loading (lr0, epochs, ...) are ignored; ours are validated.
        """
        src = {}
        if hyp is not None:
            src = dict(hyp) if isinstance(hyp, dict) else dict(vars(hyp))
        src.update(overrides)
        names = {f.name for f in fields(cls)}
        h = cls(**{k: v for k, v in src.items() if k in names})
        h.validate()
        return h

    def validate(self) -> None:
        for key, default in self._REFUSED.items():
            v = getattr(self, key)
            if (v is not None) if default is None else (v != default):
                raise UnsupportedHyp(f"{key}={v!r} is not supported by this loader (only {key}={default!r}): "
                                     f"{self._WHY[key]}; use the stock Ultralytics loader for it")
        for key in self._PROBABILITIES:
            v = getattr(self, key)
            if not isinstance(v, (int, float)) or not 0.0 <= float(v) <= 1.0:
                raise UnsupportedHyp(f"{key}={v!r} must be a probability in [0, 1]")
        for key in ("hsv_h", "hsv_s", "hsv_v", "degrees", "translate", "shear", "perspective"):
            v = getattr(self, key)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise UnsupportedHyp(f"{key}={v!r} must be a finite number >= 0")
        if self.translate > 1:
            raise UnsupportedHyp(f"translate={self.translate!r} must be <= 1")
        lo, hi = self.scale_range
        if not (math.isfinite(lo) and math.isfinite(hi) and 0 <= lo <= hi):
            raise UnsupportedHyp(f"scale={self.scale!r} must be a number >= 0 or a (min, max) pair with min <= max")
        if self.copy_paste_mode not in ("flip", "mixup"):
            raise UnsupportedHyp(f"copy_paste_mode={self.copy_paste_mode!r} must be 'flip' or 'mixup'")

    @property
    def scale_range(self) -> tuple[float, float]:
        """(min, max) of the random scale gain: ``1 -/+ scale``, or the explicit pair."""
        s = self.scale
        if isinstance(s, (list, tuple)):
            if len(s) != 2:
                raise UnsupportedHyp(f"scale={s!r} must be a number or a (min, max) pair")
            return float(s[0]), float(s[1])
        return 1.0 - float(s), 1.0 + float(s)

    def closed_mosaic(self) -> Hyp:
        """The hyperparameters after Ultralytics' ``close_mosaic`` (mosaic, mixup, cutmix, copy_paste off)."""
        d = self.as_dict()
        d.update(mosaic=0.0, mixup=0.0, cutmix=0.0, copy_paste=0.0)
        return Hyp(**d)

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items()}

    @staticmethod
    def warn_albumentations_once() -> None:
        """Ultralytics applies 1%-probability blur/gray/CLAHE when ``albumentations`` is installed; we do not."""
        if importlib.util.find_spec("albumentations") is not None and not getattr(Hyp, "_warned", False):
            Hyp._warned = True
            LOG.warning("albumentations is installed: stock Ultralytics would apply its default albumentations "
                        "(Blur, MedianBlur, ToGray, CLAHE at p=0.01); this loader does not")
