"""Per-sample plans: every random number of the Ultralytics 8.4 detection chain, drawn once.

A plan is numbers only: which images, where each tile lands, the warp matrix, HSV
gains, flips, mixup, and the final boxes (computed here with ``geometry``, never by a
painter). Painters (``loader/kernels``) execute plans on pixels, so the CPU and DALI
engines can be run on identical plans and pixel/box consistency is this module's
property.

Randomness: sample ``position`` of ``epoch`` on ``rank`` draws from its own generator
seeded by (seed, epoch, rank, position), so plans do not depend on worker count or
timing, and a resumed run redraws them exactly. Draw order per sample: mosaic coin,
mosaic partners, mosaic centre (yc, xc), affine (perspective x/y, degrees, scale, shear
x/y, translate x/y), mixup coin [mixup partner, its own pre-transform draws, beta ratio],
HSV gains, flip up-down coin, flip left-right coin, BGR coin.

Mosaic partners come from a buffer of the most recently planned primary images of this
rank's epoch order (the current one included) with Ultralytics' ``max_buffer_length``
``L = min(n, 8 * batch, 1000)``, which holds L - 1 images (Ultralytics pops at
``len >= L``): the same semantics as the stock per-worker buffer, but one buffer per
process, so partners are nearly always already decoded.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .geometry import (affine_matrix, box_candidates, clip_boxes, flip_matrix, letterbox_params, mosaic_layout,
                       transform_boxes, xywh2xyxy, xyxy2xywh)
from .hyp import Hyp
from .plan import Plan, Tile

__all__ = ["Tile", "Plan", "Planner", "load_size"]


def load_size(h0: int, w0: int, imgsz: int) -> tuple[int, int]:
    """(h, w) of Ultralytics' ``load_image``: long side to imgsz, ``ceil``, capped at imgsz."""
    import math

    r = imgsz / max(h0, w0)
    if r == 1:
        return int(h0), int(w0)
    return min(math.ceil(h0 * r), imgsz), min(math.ceil(w0 * r), imgsz)


class Planner:
    """Draws plans for one data set (``DatasetIndex``-like: ``shapes``, ``labels_of``, ``__len__``)."""

    def __init__(self, index, imgsz: int = 640, hyp: Hyp | dict | None = None, augment: bool = True,
                 batch_size: int = 16, seed: int = 0, rank: int = 0, buffer_len: int | None = None):
        if imgsz < 32 or imgsz % 2:
            raise ValueError(f"imgsz must be an even number >= 32, got {imgsz}")
        self.index, self.imgsz, self.augment = index, int(imgsz), bool(augment)
        self.hyp = hyp if isinstance(hyp, Hyp) else Hyp.from_any(hyp)
        self.seed, self.rank = int(seed), int(rank)
        n = len(index)
        self.buffer_len = int(buffer_len) if buffer_len is not None else min(n, batch_size * 8, 1000)
        self._load_hw = np.array([load_size(h, w, self.imgsz) for h, w in index.shapes], np.int32).reshape(-1, 2)

    # ------------------------------------------------------------------ helpers
    @property
    def load_shapes(self) -> np.ndarray:
        """(n, 2) Ultralytics load size (h, w) of every image (read-only view)."""
        v = self._load_hw.view()
        v.flags.writeable = False
        return v

    def load_hw(self, i: int) -> tuple[int, int]:
        h, w = self._load_hw[i]
        return int(h), int(w)

    def rng(self, epoch: int, position: int) -> np.random.Generator:
        return np.random.Generator(np.random.PCG64([self.seed & 0xFFFFFFFF, epoch, self.rank, position, 0xA11]))

    def close_mosaic(self) -> None:
        self.hyp = self.hyp.closed_mosaic()

    def _pixel_boxes(self, i: int, scale_hw: tuple[int, int], offset=(0, 0)):
        """Index boxes of image i as float32 xyxy pixels at ``scale_hw``, shifted by ``offset``."""
        cls, b = self.index.labels_of(i)
        h, w = scale_hw
        b = xywh2xyxy(b)
        b *= np.array([w, h, w, h], np.float32)  # Instances.denormalize
        if offset != (0, 0):
            b += np.array([offset[0], offset[1], offset[0], offset[1]], np.float32)  # add_padding
        return cls.astype(np.float32), b

    # ------------------------------------------------------------------ train
    def _pre(self, rng: np.random.Generator, primary: int, buffer: np.ndarray) -> tuple:
        """Mosaic (or the single image) and the affine warp: (plan without colour/flip, cls, xyxy boxes)."""
        s, hyp = self.imgsz, self.hyp
        use_mosaic = hyp.mosaic > 0 and rng.random() <= hyp.mosaic
        if use_mosaic:
            partners = [int(x) for x in rng.choice(buffer, 3)]
            border = -(-s // 2)  # Ultralytics: -imgsz // 2 as the (negative) border
            yc = int(rng.uniform(border, 2 * s - border))
            xc = int(rng.uniform(border, 2 * s - border))
            ids = [primary] + partners
            shapes = [self.load_hw(i) for i in ids]
            tiles, cls_l, box_l = [], [], []
            for i, hw, (a, b) in zip(ids, shapes, mosaic_layout(s, xc, yc, shapes)):
                tiles.append(Tile(i, hw, b, (a[0], a[1])))
                c, bx = self._pixel_boxes(i, hw, (a[0] - b[0], a[1] - b[1]))
                cls_l.append(c)
                box_l.append(bx)
            cls, boxes = np.concatenate(cls_l), np.concatenate(box_l)
            boxes = clip_boxes(boxes, 2 * s, 2 * s)
            good = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) > 0
            cls, boxes = cls[good], boxes[good]
            canvas = (2 * s, 2 * s)
        else:
            hw = self.load_hw(primary)
            tiles = [Tile(primary, hw, (0, 0, hw[1], hw[0]), (0, 0))]
            cls, boxes = self._pixel_boxes(primary, hw)
            canvas = hw
        persp = (float(rng.uniform(-hyp.perspective, hyp.perspective)),
                 float(rng.uniform(-hyp.perspective, hyp.perspective)))
        deg = float(rng.uniform(-hyp.degrees, hyp.degrees))
        lo, hi = hyp.scale_range
        sc = float(rng.uniform(lo, hi))
        shear = (float(rng.uniform(-hyp.shear, hyp.shear)), float(rng.uniform(-hyp.shear, hyp.shear)))
        tr = (float(rng.uniform(0.5 - hyp.translate, 0.5 + hyp.translate)),
              float(rng.uniform(0.5 - hyp.translate, 0.5 + hyp.translate)))
        M = affine_matrix((canvas[1], canvas[0]), (s, s), persp, deg, sc, shear, tr)
        perspective = bool(hyp.perspective)
        new = clip_boxes(transform_boxes(boxes, M, perspective), s, s)
        keep = box_candidates(box1=(boxes * np.float32(sc)).T, box2=new.T)
        plan = Plan(index=primary, out_hw=(s, s), canvas_hw=canvas, tiles=tuple(tiles), M=M, perspective=perspective,
                    mosaic=use_mosaic, scale=sc)
        return plan, cls[keep], new[keep]

    def _avoid(self, i: int, exclude: frozenset) -> int:
        """``i``, or the next dataset index (cyclically) not in ``exclude``."""
        n = len(self.index)
        for k in range(n):
            j = (i + k) % n
            if j not in exclude:
                return j
        raise ValueError("every image of the data set is excluded")

    def train_plan(self, epoch: int, position: int, order: np.ndarray, exclude: frozenset = frozenset()) -> Plan:
        """Plan for ``order[position]`` (``order``: this rank's sample order for ``epoch``).

        ``exclude``: images found unreadable while painting this sample. The same random draws
        then pick replacements deterministically (the primary moves on through the epoch order,
        partners come from the buffer without them), so the result depends only on which files
        are bad, never on timing or worker count.
        """
        s, hyp = self.imgsz, self.hyp
        rng = self.rng(epoch, position)
        primary = int(order[position])
        # Ultralytics pops once the buffer reaches its max length: it holds max(1, L - 1) images
        buffer = order[max(0, position - max(1, self.buffer_len - 1) + 1):position + 1]
        if exclude:
            k = 0
            while primary in exclude:
                k += 1
                if k >= len(order):
                    raise ValueError("every image of the epoch is excluded")
                primary = int(order[(position + k) % len(order)])
            buffer = buffer[~np.isin(buffer, list(exclude))]
            if not len(buffer):
                buffer = np.array([primary])
        plan, cls, boxes = self._pre(rng, primary, buffer)
        mix, mix_r, mix_boxes = None, 0.0, 0
        if hyp.mixup > 0 and rng.random() <= hyp.mixup:
            partner = self._avoid(int(rng.integers(0, len(self.index))), exclude)
            mix, cls2, boxes2 = self._pre(rng, partner, buffer)
            mix_r, mix_boxes = float(rng.beta(32.0, 32.0)), len(cls2)
            cls, boxes = np.concatenate([cls, cls2]), np.concatenate([boxes, boxes2])
        hsv = None
        if hyp.hsv_h or hyp.hsv_s or hyp.hsv_v:
            hsv = rng.uniform(-1, 1, 3) * [hyp.hsv_h, hyp.hsv_s, hyp.hsv_v]
        ud = bool(rng.random() < hyp.flipud)
        lr = bool(rng.random() < hyp.fliplr)
        keep_bgr = bool(rng.random() < hyp.bgr)
        xywh = xyxy2xywh(boxes)
        if ud:
            xywh[:, 1] = s - xywh[:, 1]
        if lr:
            xywh[:, 0] = s - xywh[:, 0]
        M = plan.M
        if ud or lr:
            F = flip_matrix(lr, ud, (s, s))
            M = F @ M
            if mix is not None:
                mix = replace(mix, M=F @ mix.M)
        xywh[:, [0, 2]] /= s
        xywh[:, [1, 3]] /= s
        h0, w0 = (int(v) for v in self.index.shapes[primary])
        h, w = self.load_hw(primary)
        return replace(plan, M=M, hsv=hsv, keep_bgr=keep_bgr, mix=mix, mix_r=mix_r, mix_boxes=mix_boxes,
                       flips=(ud, lr), cls=cls.astype(np.float32), boxes=xywh.astype(np.float32), ori_shape=(h0, w0),
                       resized_shape=(s, s), ratio_pad=(h / h0, w / w0))

    # ------------------------------------------------------------------ val
    def val_plan(self, i: int, out_hw: tuple[int, int]) -> Plan:
        """Letterboxed image ``i`` centred in ``out_hw`` with 114 fill, never upscaled (Ultralytics' val)."""
        h, w = self.load_hw(i)
        r, (nw, nh), top, _, left, _ = letterbox_params((h, w), out_hw, scaleup=False)
        M = np.array([[nw / w, 0, left], [0, nh / h, top], [0, 0, 1]], np.float64)
        # resize maps pixel centres (x + 0.5) * s - 0.5: fold that half-pixel shift into M
        M[0, 2] += 0.5 * (nw / w) - 0.5
        M[1, 2] += 0.5 * (nh / h) - 0.5
        cls, b = self._pixel_boxes(i, (h, w))
        b *= np.array([r, r, r, r], np.float32)
        b += np.array([left, top, left, top], np.float32)
        xywh = xyxy2xywh(b)
        xywh[:, [0, 2]] /= out_hw[1]
        xywh[:, [1, 3]] /= out_hw[0]
        h0, w0 = (int(v) for v in self.index.shapes[i])
        return Plan(index=i, out_hw=tuple(int(v) for v in out_hw), canvas_hw=(h, w),
                    tiles=(Tile(i, (h, w), (0, 0, w, h), (0, 0)),), M=M, cls=cls, boxes=xywh.astype(np.float32),
                    ori_shape=(h0, w0), resized_shape=tuple(int(v) for v in out_hw),
                    ratio_pad=((h / h0 * r, w / w0 * r), (left, top)), letterbox=(int(nh), int(nw), int(top), int(left)))
