"""``PlanBatch``: the plans of one batch as arrays (a struct of arrays), the form the batch planner produces.

Per sample (B rows): primary ``index``, ``canvas_hw``, ``M`` (float64 3x3, flips included), HSV gains, flags.
Tiles and boxes are flat arrays with offsets (``tile_off``, ``box_off``: B + 1 entries), so nothing holds a
Python object per sample. ``mix`` is the batch of mixup partners' canvases, row for row (a row with no tiles:
no mixup for that sample). Engines that paint per batch (the DALI graph, assembly) read the arrays;
per-sample kernels take ``plan(j)``, a ``Plan`` view built on demand.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from .plan import Plan, Tile

__all__ = ["PlanBatch"]


def _ro(a, dtype=None) -> np.ndarray:
    a = np.ascontiguousarray(a, dtype)
    if a.flags.writeable:
        a = a.copy() if a.base is not None else a
        a.setflags(write=False)
    return a


@dataclass(frozen=True)
class PlanBatch:
    out_hw: tuple[int, int]
    index: np.ndarray  # (B,) int64
    canvas_hw: np.ndarray  # (B, 2) int64
    M: np.ndarray  # (B, 3, 3) float64
    tile_off: np.ndarray  # (B + 1,) int64
    tile_index: np.ndarray  # (T,) int64
    tile_hw: np.ndarray  # (T, 2) int64
    tile_crop: np.ndarray  # (T, 4) int64: x1, y1, x2, y2 in the tile image
    tile_at: np.ndarray  # (T, 2) int64: x, y on the canvas
    perspective: bool = False
    hsv: np.ndarray | None = None  # (B, 3) float64 (a NaN row: no jitter for that sample), or None: none at all
    keep_bgr: np.ndarray | None = None  # (B,) bool
    mosaic: np.ndarray | None = None  # (B,) bool
    flips: np.ndarray | None = None  # (B, 2) bool: up-down, left-right
    scale: np.ndarray | None = None  # (B,) float64
    mix: PlanBatch | None = None  # (B rows) the mixup partners' canvases; rows without tiles: no mixup
    mix_r: np.ndarray | None = None  # (B,) float64
    mix_boxes: np.ndarray | None = None  # (B,) int64: sample j's boxes before its CutMix ones end with these
    cut: PlanBatch | None = None  # (B rows) the CutMix partners' canvases; rows without tiles: no CutMix
    cut_area: np.ndarray | None = None  # (B, 4) int64: x1, y1, x2, y2 in output pixels (flips applied)
    cut_boxes: np.ndarray | None = None  # (B,) int64: the last cut_boxes[j] boxes of sample j are the partner's
    box_off: np.ndarray | None = None  # (B + 1,) int64
    cls: np.ndarray | None = None  # (N,) float32
    boxes: np.ndarray | None = None  # (N, 4) float32 normalized xywh
    ori_shape: np.ndarray | None = None  # (B, 2) int64
    ratio: np.ndarray | None = None  # (B, 2) float64: train (h/h0, w/w0); val the letterbox gains
    pad: np.ndarray | None = None  # (B, 2) int64: val (left, top); None in training
    letterbox: np.ndarray | None = None  # (B, 4) int64: val (new h, new w, top, left)

    def __post_init__(self):
        B = len(self.index)
        defaults = {"keep_bgr": np.zeros(B, bool), "mosaic": np.zeros(B, bool), "flips": np.zeros((B, 2), bool),
                    "scale": np.ones(B), "mix_r": np.zeros(B), "mix_boxes": np.zeros(B, np.int64),
                    "cut_area": np.zeros((B, 4), np.int64), "cut_boxes": np.zeros(B, np.int64),
                    "box_off": np.zeros(B + 1, np.int64), "cls": np.zeros(0, np.float32),
                    "boxes": np.zeros((0, 4), np.float32), "ori_shape": np.zeros((B, 2), np.int64),
                    "ratio": np.ones((B, 2))}
        for f in fields(self):
            v = getattr(self, f.name)
            if v is None and f.name in defaults:
                v = defaults[f.name]
            if isinstance(v, np.ndarray):
                object.__setattr__(self, f.name, _ro(v))
        object.__setattr__(self, "out_hw", (int(self.out_hw[0]), int(self.out_hw[1])))

    def __len__(self) -> int:
        return len(self.index)

    @property
    def has_mix(self) -> np.ndarray:
        """(B,) bool: samples with a mixup partner."""
        if self.mix is None:
            return np.zeros(len(self), bool)
        return np.diff(self.mix.tile_off) > 0

    @property
    def has_cut(self) -> np.ndarray:
        """(B,) bool: samples with a CutMix partner."""
        if self.cut is None:
            return np.zeros(len(self), bool)
        return np.diff(self.cut.tile_off) > 0

    def indices(self) -> np.ndarray:
        """Every dataset image the batch reads (tiles, mixup and CutMix partners' tiles), with repeats."""
        parts = [self.tile_index] + [p.tile_index for p in (self.mix, self.cut) if p is not None]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    # ------------------------------------------------------------------ per-sample views
    def _canvas(self, j: int, out_hw=None, **extra) -> Plan:
        a, b = self.tile_off[j], self.tile_off[j + 1]
        tiles = tuple(Tile(int(i), (int(hw[0]), int(hw[1])), tuple(int(v) for v in c), (int(at[0]), int(at[1])))
                      for i, hw, c, at in zip(self.tile_index[a:b], self.tile_hw[a:b], self.tile_crop[a:b],
                                              self.tile_at[a:b]))
        return Plan(index=int(self.index[j]), out_hw=out_hw or self.out_hw,
                    canvas_hw=(int(self.canvas_hw[j, 0]), int(self.canvas_hw[j, 1])), tiles=tiles, M=self.M[j],
                    perspective=self.perspective, mosaic=bool(self.mosaic[j]), scale=float(self.scale[j]), **extra)

    def plan(self, j: int) -> Plan:
        """Sample ``j`` as a ``Plan`` (for kernels that paint one image at a time)."""
        mix = self.mix._canvas(j, self.out_hw) if self.has_mix[j] else None
        cut = self.cut._canvas(j, self.out_hw) if self.has_cut[j] else None
        a, b = self.box_off[j], self.box_off[j + 1]
        if self.pad is not None:
            ratio_pad = ((float(self.ratio[j, 0]), float(self.ratio[j, 1])), (int(self.pad[j, 0]), int(self.pad[j, 1])))
        else:
            ratio_pad = (float(self.ratio[j, 0]), float(self.ratio[j, 1]))
        return self._canvas(
            j, hsv=None if self.hsv is None or np.isnan(self.hsv[j, 0]) else self.hsv[j],
            keep_bgr=bool(self.keep_bgr[j]), mix=mix,
            mix_r=float(self.mix_r[j]), mix_boxes=int(self.mix_boxes[j]), cut=cut,
            cut_area=tuple(int(v) for v in self.cut_area[j]) if cut is not None else None,
            cut_boxes=int(self.cut_boxes[j]), cls=self.cls[a:b], boxes=self.boxes[a:b],
            ori_shape=(int(self.ori_shape[j, 0]), int(self.ori_shape[j, 1])), resized_shape=self.out_hw,
            ratio_pad=ratio_pad, flips=(bool(self.flips[j, 0]), bool(self.flips[j, 1])),
            letterbox=None if self.letterbox is None else tuple(int(v) for v in self.letterbox[j]))

    def plans(self) -> list[Plan]:
        return [self.plan(j) for j in range(len(self))]

    def with_plans(self, replaced: dict[int, Plan]) -> PlanBatch:
        """This batch with the samples of ``replaced`` (sample -> plan) swapped for those plans."""
        if not replaced:
            return self
        return PlanBatch.from_plans([replaced.get(j) or self.plan(j) for j in range(len(self))])

    # ------------------------------------------------------------------ from per-sample plans
    @staticmethod
    def _canvases(plans: list[Plan | None], out_hw) -> PlanBatch:
        tiles = [p.tiles if p is not None else () for p in plans]
        counts = [len(t) for t in tiles]
        flat = [t for ts in tiles for t in ts]
        eye = np.eye(3)
        return PlanBatch(
            out_hw=out_hw, index=np.array([p.index if p is not None else -1 for p in plans], np.int64),
            canvas_hw=np.array([p.canvas_hw if p is not None else (1, 1) for p in plans], np.int64).reshape(-1, 2),
            M=np.array([p.M if p is not None else eye for p in plans], np.float64).reshape(-1, 3, 3),
            tile_off=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
            tile_index=np.array([t.index for t in flat], np.int64),
            tile_hw=np.array([t.hw for t in flat], np.int64).reshape(-1, 2),
            tile_crop=np.array([t.crop for t in flat], np.int64).reshape(-1, 4),
            tile_at=np.array([t.at for t in flat], np.int64).reshape(-1, 2),
            perspective=any(p.perspective for p in plans if p is not None),
            mosaic=np.array([bool(p is not None and p.mosaic) for p in plans]),
            scale=np.array([p.scale if p is not None else 1.0 for p in plans], np.float64))

    @classmethod
    def from_plans(cls, plans: list[Plan]) -> PlanBatch:
        """The batch of these plans (one output size). The slow path: replacements, tests, hand-made plans."""
        if not plans or any(p.out_hw != plans[0].out_hw for p in plans):
            raise ValueError("a batch needs one or more plans of one output size")
        out_hw = plans[0].out_hw
        mix = cls._canvases([p.mix for p in plans], out_hw) if any(p.mix is not None for p in plans) else None
        cut = cls._canvases([p.cut for p in plans], out_hw) if any(p.cut is not None for p in plans) else None
        hsv = None
        if any(p.hsv is not None for p in plans):
            hsv = np.array([p.hsv if p.hsv is not None else np.full(3, np.nan) for p in plans], np.float64)
        val = all(p.letterbox is not None for p in plans)
        counts = [len(p.cls) for p in plans]
        return replace(
            cls._canvases(plans, out_hw), hsv=hsv, keep_bgr=np.array([p.keep_bgr for p in plans]),
            flips=np.array([p.flips for p in plans], bool).reshape(-1, 2), mix=mix,
            mix_r=np.array([p.mix_r for p in plans], np.float64), mix_boxes=np.array([p.mix_boxes for p in plans]),
            cut=cut, cut_area=np.array([p.cut_area or (0, 0, 0, 0) for p in plans], np.int64).reshape(-1, 4),
            cut_boxes=np.array([p.cut_boxes for p in plans], np.int64),
            box_off=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
            cls=np.concatenate([p.cls for p in plans]).astype(np.float32),
            boxes=np.concatenate([p.boxes for p in plans]).astype(np.float32).reshape(-1, 4),
            ori_shape=np.array([p.ori_shape for p in plans], np.int64).reshape(-1, 2),
            ratio=np.array([p.ratio_pad[0] if val else (p.ratio_pad or (1.0, 1.0)) for p in plans],
                           np.float64).reshape(-1, 2),
            pad=np.array([p.ratio_pad[1] for p in plans], np.int64).reshape(-1, 2) if val else None,
            letterbox=np.array([p.letterbox for p in plans], np.int64).reshape(-1, 4) if val else None)
