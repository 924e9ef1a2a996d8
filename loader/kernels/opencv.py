"""Execute a plan on pixels with OpenCV, straight into a batch buffer, the way Ultralytics does it.

The part of the mosaic canvas the output sees is assembled (the tiles' visible crops, 114 where no tile is)
and warped once with the plan's matrix (flips, scale, translation, rotation, shear, perspective), as
Ultralytics' ``Mosaic`` + ``RandomPerspective`` do; then mixup (Ultralytics' float blend), then HSV with the
BGR->RGB swap folded in (``hsv.py``: Ultralytics' bytes on the box of pixels that can see a tile, in one pass).

One route for every plan. An earlier "axis-aligned" route warped each tile into the output pixels it
covered, skipping the canvas; at every seam its border pixels blended with grey instead of the neighbouring
tile (up to ~90 grey levels off on some 3,000 pixels of a 640 px mosaic, +3.8 % sharpness), and its
sub-rectangle warps rounded sub-pixel positions differently elsewhere. Measured on identical plans against
Ultralytics (``tests/parity/test_parity_ultralytics.py``): the canvas route is off by at most a few grey
levels on ~1e-5 of the pixels. The canvas costs a copy of the visible window (the window buffer is reused
per painter thread); ``benchmarks/host_path.py`` and ``yolo-loader bench`` measure the price. For matrices
without rotation or shear (Ultralytics' default augmentation) ``BatchGeometry`` skips that copy: ``warp.py``
gives the same bytes as warping the composed window, reading the tiles in place, and with the native HSV kernel
runs the colour step inside it, on the box's rows as they are made (``hsv.row_finisher``).
"""

from __future__ import annotations

import threading

import cv2
import numpy as np

from .hsv import apply_hsv, hsv_luts_batch, land, planar_luts, row_finisher
from .warp import warp_pastes
from ..plan import FILL, Plan, PlanBatch, paste_regions, translate, visible_window, visible_windows, window_pastes

__all__ = ["paint", "paint_geometry", "finish", "hsv_luts", "hsv_luts_batch", "apply_hsv", "BatchGeometry"]


def _warp_into(src: np.ndarray, A: np.ndarray, dst: np.ndarray, border: int, perspective: bool = False) -> None:
    """Warp ``src`` by ``A`` (src pixel -> dst pixel) into the view ``dst`` in place."""
    h, w = dst.shape[:2]
    if perspective:
        out = cv2.warpPerspective(src, A, (w, h), dst=dst, flags=cv2.INTER_LINEAR, borderMode=border,
                                  borderValue=(FILL, FILL, FILL))
    else:
        out = cv2.warpAffine(src, A[:2], (w, h), dst=dst, flags=cv2.INTER_LINEAR, borderMode=border,
                             borderValue=(FILL, FILL, FILL))
    land(out, dst)


def _fill_uncovered(out: np.ndarray, rects: list[tuple[int, int, int, int]], fill=(FILL, FILL, FILL)) -> None:
    """Fill every pixel outside the painted rectangles (row bands, no full-frame pass). A grey fill (all channels
    equal, as 114 is before and after HSV) is written as a scalar: numpy then sets bytes instead of broadcasting
    a 3-vector pixel by pixel (6x faster here)."""
    H, W = out.shape[:2]
    FILL = int(fill[0]) if fill[0] == fill[1] == fill[2] else np.asarray(fill, np.uint8)  # noqa: N806
    if not rects:
        out[...] = FILL
        return
    ys = sorted({0, H, *[r[0] for r in rects], *[r[1] for r in rects]})
    for y0, y1 in zip(ys[:-1], ys[1:]):
        spans = sorted((r[2], r[3]) for r in rects if r[0] <= y0 and r[1] >= y1)
        x = 0
        for a, b in spans:
            if a > x:
                out[y0:y1, x:a] = FILL
            x = max(x, b)
        if x < W:
            out[y0:y1, x:W] = FILL


_local = threading.local()  # per painter thread: the canvas window and the mixup partner's image, reused


def _buffer(name: str, shape: tuple[int, int, int]) -> np.ndarray:
    """A per-thread uint8 buffer of ``shape``, grown when needed (a mosaic window is up to 2S x 2S: 9.6 MB at
    896 px; allocating and filling it per sample cost more than the copy into it)."""
    n = shape[0] * shape[1] * shape[2]
    buf = getattr(_local, name, None)
    if buf is None or buf.size < n:
        buf = np.empty(n, np.uint8)
        setattr(_local, name, buf)
    return buf[:n].reshape(shape)


def _compose(plan: Plan, images: list[np.ndarray], window: tuple[int, int, int, int]) -> np.ndarray:
    """The window of the plan's canvas: the tiles' crops where they are, 114 elsewhere (only there)."""
    cx0, cy0, cx1, cy1 = window
    ch, cw = plan.canvas_hw
    if len(plan.tiles) == 1 and plan.tiles[0].at == (0, 0) and plan.tiles[0].crop == (0, 0, cw, ch):
        return images[0][cy0:cy1, cx0:cx1]  # the canvas is the image itself: no copy
    sub = _buffer("canvas", (cy1 - cy0, cx1 - cx0, 3))
    rects = []
    for k, (iy, ix), (h, w), (oy, ox) in window_pastes(plan, window):  # mosaic tiles never overlap
        sub[oy:oy + h, ox:ox + w] = images[k][iy:iy + h, ix:ix + w]
        rects.append((oy, oy + h, ox, ox + w))
    _fill_uncovered(sub, rects)
    return sub


def hsv_luts(r: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The three tables of one sample (see ``hsv_luts_batch``)."""
    t = hsv_luts_batch(r)[0]
    return t[:, 0], t[:, 1], t[:, 2]


def _tiles_boxes(M: np.ndarray, tile_crop: np.ndarray, tile_at: np.ndarray, tile_off: np.ndarray,
                 out_hw: tuple[int, int]) -> np.ndarray:
    """For B affine canvases: (B, 4) Y0, Y1, X0, X1, the output pixels that can see a tile (the tiles' canvas box,
    plus the interpolation margin, through M); every pixel outside is 114 after the warp (0s: no tile seen)."""
    B = len(M)
    x0 = np.full(B, np.inf)
    y0 = np.full(B, np.inf)
    x1 = np.full(B, -np.inf)
    y1 = np.full(B, -np.inf)
    owner = np.repeat(np.arange(B), np.diff(tile_off))
    np.minimum.at(x0, owner, tile_at[:, 0])
    np.minimum.at(y0, owner, tile_at[:, 1])
    np.maximum.at(x1, owner, tile_at[:, 0] + tile_crop[:, 2] - tile_crop[:, 0])
    np.maximum.at(y1, owner, tile_at[:, 1] + tile_crop[:, 3] - tile_crop[:, 1])
    has = np.isfinite(x0)
    x0, y0, x1, y1 = (np.where(has, v, 0) for v in (x0 - 2, y0 - 2, x1 + 2, y1 + 2))
    pts = np.stack([np.stack([x0, y0, np.ones(B)], 1), np.stack([x1, y0, np.ones(B)], 1),
                    np.stack([x0, y1, np.ones(B)], 1), np.stack([x1, y1, np.ones(B)], 1)], 1) @ M.transpose(0, 2, 1)
    H, W = out_hw
    X0 = np.maximum(np.floor(pts[:, :, 0].min(1)).astype(np.int64) - 1, 0)
    Y0 = np.maximum(np.floor(pts[:, :, 1].min(1)).astype(np.int64) - 1, 0)
    X1 = np.minimum(np.ceil(pts[:, :, 0].max(1)).astype(np.int64) + 2, W)
    Y1 = np.minimum(np.ceil(pts[:, :, 1].max(1)).astype(np.int64) + 2, H)
    ok = has & (Y1 > Y0) & (X1 > X0)
    return np.where(ok[:, None], np.stack([Y0, Y1, X0, X1], 1), 0)


def _tiles_box(plan: Plan, window) -> tuple[int, int, int, int] | None:
    """(Y0, Y1, X0, X1): output pixels that can see a tile (the tiles' canvas box, plus the interpolation margin,
    through M). Every pixel outside it is 114 after the warp. None for perspective (no box is cheap to trust)."""
    if plan.perspective:
        return None
    crop = np.array([t.crop for t in plan.tiles], np.int64).reshape(-1, 4)
    at = np.array([t.at for t in plan.tiles], np.int64).reshape(-1, 2)
    box = _tiles_boxes(plan.M[None], crop, at, np.array([0, len(crop)]), plan.out_hw)[0]
    return tuple(int(v) for v in box)


def paint_geometry(plan: Plan, load, out: np.ndarray):
    """The plan's tiles composed and warped into ``out`` (BGR), before mixup and colour. Returns the output box
    outside which every pixel is 114 (``_tiles_box``), or None when that is not known."""
    window = visible_window(plan)
    if window is None:  # the output sees nothing of its canvas
        out[...] = FILL
        return 0, 0, 0, 0
    sub = _compose(plan, [load(t.index) for t in plan.tiles], window)
    _warp_into(sub, plan.M @ translate(window[0], window[1]), out, cv2.BORDER_CONSTANT, plan.perspective)
    return _tiles_box(plan, window)


def _final_fill(plan: Plan, lut) -> tuple[int, int, int]:
    """The colour a 114 pixel has after the plan's HSV and channel order (grey: saturation 0, the same on every
    conversion path)."""
    px = np.full((1, 1, 3), FILL, np.uint8)
    apply_hsv(px, plan.hsv, not plan.keep_bgr, lut)
    return tuple(int(v) for v in px[0, 0])


def paint(plan: Plan, load, out: np.ndarray) -> None:
    """Paint ``plan`` into ``out`` (H, W, 3 uint8, RGB unless the plan keeps BGR).

    ``load(index)`` returns the BGR image at Ultralytics' load size (``ImageSource.get``). The colour step runs
    on the box of pixels that can see a tile; the rest, all 114 after the warp, is written in its final colour
    directly: the same pixels as converting the whole frame, for less work.
    """
    if out.shape != (*plan.out_hw, 3) or out.dtype != np.uint8:
        raise ValueError(f"output buffer {out.shape} {out.dtype} does not match plan {plan.out_hw}")
    if plan.letterbox is not None:
        _letterbox(plan, load(plan.tiles[0].index), out)
        return
    box = paint_geometry(plan, load, out)
    if plan.mix is None and plan.cut is None and box is not None:
        lut = None if plan.hsv is None else hsv_luts_batch(plan.hsv)
        apply_hsv(out, plan.hsv, not plan.keep_bgr, lut, box, plan.flips[1])
        _fill_uncovered(out, [box], _final_fill(plan, lut))
        return
    other = cut = None
    if plan.mix is not None:
        other = _buffer("partner", out.shape)
        paint_geometry(plan.mix, load, other)
    if plan.cut is not None:
        cut = _buffer("cut", out.shape)
        paint_geometry(plan.cut, load, cut)
    finish(plan, out, other, cut)


class BatchGeometry:
    """What ``paint`` works out per sample, worked out once for a whole ``PlanBatch`` on arrays: the visible
    canvas windows, each tile's paste into its window, the box of output pixels that can see a tile, the HSV
    tables and the final colour of 114. Painting sample ``j`` from it (``paint_sample``) gives the same pixels as
    ``paint(batch.plan(j))`` with no per-sample numpy on small arrays (which held the GIL for ~20 % of a painter
    thread's time at 896 px, cache="disk"). Samples with mixup, CutMix, a perspective warp or a letterbox take
    ``paint``."""

    def __init__(self, batch: PlanBatch):
        B = len(batch)
        self.batch = batch
        self.simple = ~(batch.has_mix | batch.has_cut) & (not batch.perspective) & (batch.letterbox is None)
        win, vis = visible_windows(batch.M, batch.canvas_hw, batch.out_hw, batch.perspective,
                                   np.diff(batch.tile_off) > 0)
        t_owner = np.repeat(np.arange(B), np.diff(batch.tile_off))
        src, hw, dst, ok = paste_regions(batch.tile_crop, batch.tile_at, win[t_owner])
        self.window, self.visible = win.tolist(), vis.tolist()
        self.tiles = [[] for _ in range(B)]  # every tile's image is read, visible or not, as stock reads them
        self.pastes = [[] for _ in range(B)]
        for t, (j, i, sy, sx, h, w, dy, dx) in enumerate(np.concatenate(
                [t_owner[:, None], batch.tile_index[:, None], src, hw, dst], 1).tolist()):
            self.tiles[j].append(i)
            if ok[t]:
                self.pastes[j].append((len(self.tiles[j]) - 1, sy, sx, h, w, dy, dx))
        self.single = [len(p) == 1 and batch.tile_off[j + 1] - batch.tile_off[j] == 1 and
                       tuple(batch.tile_at[batch.tile_off[j]]) == (0, 0) and
                       tuple(batch.tile_crop[batch.tile_off[j]]) == (0, 0, batch.canvas_hw[j, 1], batch.canvas_hw[j, 0])
                       for j, p in enumerate(self.pastes)]
        self.box = _tiles_boxes(batch.M, batch.tile_crop, batch.tile_at, batch.tile_off, batch.out_hw).tolist()
        has_hsv = np.zeros(B, bool) if batch.hsv is None else ~np.isnan(batch.hsv[:, 0])
        self.luts = hsv_luts_batch(np.where(has_hsv[:, None], batch.hsv, 0.0)) if has_hsv.any() else None
        self.has_hsv = has_hsv.tolist()
        self.fill = [FILL] * B
        if self.luts is not None:  # 114 is grey: HSV (0, 0, 114), through the tables, back to grey
            hsv = np.stack([self.luts[:, 0, 0], self.luts[:, 0, 1], self.luts[:, FILL, 2]], 1)[None]
            grey = cv2.cvtColor(np.ascontiguousarray(hsv), cv2.COLOR_HSV2RGB)[0]
            self.fill = [int(g[0]) if h else FILL for g, h in zip(grey, has_hsv)]
        self.planar = None if self.luts is None else planar_luts(self.luts)
        self.keep_bgr = batch.keep_bgr.tolist()
        self.flip_lr = batch.flips[:, 1].tolist()
        self.M = batch.M

    def paint_sample(self, j: int, load, out: np.ndarray) -> None:
        """Sample ``j`` into ``out`` (H, W, 3), as ``paint(batch.plan(j), load, out)``."""
        if not self.visible[j]:
            out[...] = self.fill[j]
            return
        cx0, cy0, cx1, cy1 = self.window[j]
        pastes = self.pastes[j]
        images = [load(i) for i in self.tiles[j]]
        M = self.M[j] @ translate(cx0, cy0)
        box = tuple(self.box[j])
        # the kernel reads the tiles in place and writes 114's final colour in the rows above and below the box;
        # with the native HSV kernel it colours the box's rows as it makes them, and the sample is done
        finish = row_finisher(self.planar[j], not self.keep_bgr[j], out.shape[1], self.flip_lr[j]) \
            if self.has_hsv[j] else None
        rows_done = warp_pastes(images, pastes, (cy1 - cy0, cx1 - cx0), M, out, box, self.fill[j], finish)
        if rows_done and finish is not None:
            return
        if not rows_done:
            if self.single[j]:
                sub = images[0][cy0:cy1, cx0:cx1]
            else:
                sub = _buffer("canvas", (cy1 - cy0, cx1 - cx0, 3))
                rects = []
                for k, sy, sx, h, w, dy, dx in pastes:
                    sub[dy:dy + h, dx:dx + w] = images[k][sy:sy + h, sx:sx + w]
                    rects.append((dy, dy + h, dx, dx + w))
                _fill_uncovered(sub, rects)
            _warp_into(sub, M, out, cv2.BORDER_CONSTANT)
        apply_hsv(out, self.batch.hsv[j] if self.has_hsv[j] else None, not self.keep_bgr[j],
                  self.luts[j] if self.has_hsv[j] else None, box, self.flip_lr[j])
        fill = (self.fill[j],) * 3
        if rows_done:  # beside the box, in its rows: 114 until now (HSV's OpenCV route may have read it)
            Y0, Y1, X0, X1 = box
            _fill_uncovered(out[Y0:Y1], [(0, Y1 - Y0, X0, X1)], fill)
        else:
            _fill_uncovered(out, [box], fill)


def _letterbox(plan: Plan, im: np.ndarray, out: np.ndarray) -> None:
    """Validation: Ultralytics' ``LetterBox`` step for step (INTER_LINEAR resize when the size changes, 114 pad),
    so validation pixels are bitwise the stock validator's; then the channel order."""
    nh, nw, top, left = plan.letterbox
    if im.shape[:2] != (nh, nw):
        im = cv2.resize(im, (nw, nh), interpolation=cv2.INTER_LINEAR)
    out[top:top + nh, left:left + nw] = im
    _fill_uncovered(out, [(top, top + nh, left, left + nw)])
    finish(plan, out)


def finish(plan: Plan, out: np.ndarray, other: np.ndarray | None = None, cut: np.ndarray | None = None) -> None:
    """After the geometry (BGR in ``out``, the mixup partner's in ``other``, the CutMix partner's in ``cut``):
    Ultralytics' mixup blend, CutMix's pasted area, HSV and the channel order, in place (Ultralytics' order)."""
    if plan.mix is not None:
        r = plan.mix_r
        out[...] = (out * r + other * (1 - r)).astype(np.uint8)
    if plan.cut is not None:
        x1, y1, x2, y2 = plan.cut_area
        out[y1:y2, x1:x2] = cut[y1:y2, x1:x2]
    apply_hsv(out, plan.hsv, not plan.keep_bgr, flip_lr=plan.flips[1])
