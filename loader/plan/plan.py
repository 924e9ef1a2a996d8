"""Plans as plain, immutable data: what one output image is made of. Painters read them; nothing writes them."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Tile", "Plan"]


def _frozen_array(a, dtype, shape=None) -> np.ndarray:
    a = np.array(a, dtype)  # a copy: the plan owns it
    if shape is not None:
        a = a.reshape(shape)
    a.setflags(write=False)
    return a


@dataclass(frozen=True)
class Tile:
    """Part of a loaded image placed on the canvas: ``crop`` (x1, y1, x2, y2) of the image at load size
    ``hw``, pasted with its top-left at ``at`` (x, y) of the canvas."""

    index: int
    hw: tuple[int, int]
    crop: tuple[int, int, int, int]
    at: tuple[int, int]


@dataclass(frozen=True)
class Plan:
    """One output image. ``M`` (float64 3x3) maps canvas pixels to output pixels, flips included."""

    index: int
    out_hw: tuple[int, int]
    canvas_hw: tuple[int, int]
    tiles: tuple[Tile, ...]
    M: np.ndarray
    perspective: bool = False
    hsv: np.ndarray | None = None  # Ultralytics' r: hue offset, saturation and value gains minus 1
    keep_bgr: bool = False
    mix: Plan | None = None
    mix_r: float = 0.0
    mix_boxes: int = 0  # the boxes before the CutMix ones that belong to the mixup partner
    cut: Plan | None = None  # CutMix: the partner's canvas (mosaic + affine of its own), painted like ``mix``
    cut_area: tuple[int, int, int, int] | None = None  # CutMix: (x1, y1, x2, y2) output pixels from ``cut``, flips in
    cut_boxes: int = 0  # the last ``cut_boxes`` boxes are the CutMix partner's, clipped to the area
    cls: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))  # normalized xywh
    ori_shape: tuple[int, int] = (0, 0)
    resized_shape: tuple[int, int] = (0, 0)
    ratio_pad: tuple = ()
    mosaic: bool = False
    flips: tuple[bool, bool] = (False, False)  # (up-down, left-right)
    scale: float = 1.0  # the affine's drawn scale gain (box_candidates compares against it)
    # val: Ultralytics' LetterBox as (new unpadded h, w, top, left): cv2.resize to that size, then pad with 114
    letterbox: tuple[int, int, int, int] | None = None

    def __post_init__(self):
        set_ = object.__setattr__
        set_(self, "tiles", tuple(self.tiles))
        set_(self, "M", _frozen_array(self.M, np.float64, (3, 3)))
        set_(self, "cls", _frozen_array(self.cls, np.float32, (-1,)))
        set_(self, "boxes", _frozen_array(self.boxes, np.float32, (-1, 4)))
        if self.hsv is not None:
            set_(self, "hsv", _frozen_array(self.hsv, np.float64, (3,)))

    @property
    def axis_aligned(self) -> bool:
        return not self.perspective and self.M[0, 1] == 0 and self.M[1, 0] == 0

    def indices(self) -> list[int]:
        """Every dataset image this plan reads (tiles, then the mixup partner's, then the CutMix partner's)."""
        out = [t.index for t in self.tiles]
        out += self.mix.indices() if self.mix is not None else []
        return out + (self.cut.indices() if self.cut is not None else [])
