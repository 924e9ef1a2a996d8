"""Execute a plan on pixels with OpenCV, straight into a batch buffer, the way Ultralytics does it.

The part of the mosaic canvas the output sees is assembled (the tiles' visible crops, 114 where no tile is)
and warped once with the plan's matrix (flips, scale, translation, rotation, shear, perspective), as
Ultralytics' ``Mosaic`` + ``RandomPerspective`` do; then mixup (Ultralytics' float blend), HSV through one
3-channel LUT, and the BGR->RGB swap folded into the HSV->RGB conversion.

One route for every plan. An earlier "axis-aligned" route warped each tile into the output pixels it
covered, skipping the canvas; at every seam its border pixels blended with grey instead of the neighbouring
tile (up to ~90 grey levels off on some 3,000 pixels of a 640 px mosaic, +3.8 % sharpness), and its
sub-rectangle warps rounded sub-pixel positions differently elsewhere. Measured on identical plans against
Ultralytics (``tests/parity/test_parity_ultralytics.py``): the canvas route is off by at most a few grey
levels on ~1e-5 of the pixels. The canvas costs a copy of the visible window (the window buffer is reused
per painter thread); ``benchmarks/host_path.py`` and ``yolo-loader bench`` measure the price.
"""

from __future__ import annotations

import threading

import cv2
import numpy as np

from ..plan import FILL, Plan, translate, visible_window, window_pastes

__all__ = ["paint", "paint_geometry", "finish", "hsv_luts", "hsv_luts_batch", "apply_hsv"]


def _same_buffer(a: np.ndarray, b: np.ndarray) -> bool:
    return a is b or a.__array_interface__["data"][0] == b.__array_interface__["data"][0]


def _warp_into(src: np.ndarray, A: np.ndarray, dst: np.ndarray, border: int, perspective: bool = False) -> None:
    """Warp ``src`` by ``A`` (src pixel -> dst pixel) into the view ``dst`` in place."""
    h, w = dst.shape[:2]
    if perspective:
        out = cv2.warpPerspective(src, A, (w, h), dst=dst, flags=cv2.INTER_LINEAR, borderMode=border,
                                  borderValue=(FILL, FILL, FILL))
    else:
        out = cv2.warpAffine(src, A[:2], (w, h), dst=dst, flags=cv2.INTER_LINEAR, borderMode=border,
                             borderValue=(FILL, FILL, FILL))
    if not _same_buffer(out, dst):  # OpenCV allocated instead of writing the view: copy
        dst[...] = out


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


def hsv_luts_batch(r: np.ndarray) -> np.ndarray:
    """Ultralytics' ``RandomHSV`` tables for gains ``r`` (B, 3) (already times the hyp gains): (B, 256, 3) uint8,
    the hue, saturation and value table of each sample."""
    r = np.asarray(r, np.float64).reshape(-1, 3)
    x = np.arange(0, 256, dtype=np.float64)
    lut_hue = ((x + r[:, :1] * 180) % 180).astype(np.uint8)
    lut_sat = np.clip(x * (r[:, 1:2] + 1), 0, 255).astype(np.uint8)
    lut_val = np.clip(x * (r[:, 2:3] + 1), 0, 255).astype(np.uint8)
    lut_sat[:, 0] = 0
    return np.stack([lut_hue, lut_sat, lut_val], -1)


def hsv_luts(r: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The three tables of one sample (see ``hsv_luts_batch``)."""
    t = hsv_luts_batch(r)[0]
    return t[:, 0], t[:, 1], t[:, 2]


def apply_hsv(img_bgr: np.ndarray, r: np.ndarray | None, to_rgb: bool, lut: np.ndarray | None = None) -> None:
    """HSV jitter in place, ending in RGB (``to_rgb``) or BGR channel order. ``lut``: the tables of ``r`` made
    already (``hsv_luts_batch(r)``: a plan painted in several parts builds them once).

    (Split / per-plane LUT / merge is faster in isolation but measured slower inside the
    loader, 105 vs 125 img/s in an ad-hoc run: more memory traffic across threads.)
    """
    if r is None:
        if to_rgb:
            _cvt_into(img_bgr, cv2.COLOR_BGR2RGB)
        return
    hsv = cv2.cvtColor(img_bgr, cv2.COLOR_BGR2HSV)
    cv2.LUT(hsv, (hsv_luts_batch(r) if lut is None else lut).reshape(1, 256, 3), dst=hsv)
    _cvt_into(hsv, cv2.COLOR_HSV2RGB if to_rgb else cv2.COLOR_HSV2BGR, img_bgr)


def _cvt_into(src: np.ndarray, code: int, dst: np.ndarray | None = None) -> None:
    dst = src if dst is None else dst
    res = cv2.cvtColor(src, code, dst=dst)
    if not _same_buffer(res, dst):
        dst[...] = res


def _tiles_box(plan: Plan, window) -> tuple[int, int, int, int] | None:
    """(Y0, Y1, X0, X1): output pixels that can see a tile (the tiles' canvas box, plus the interpolation margin,
    through M). Every pixel outside it is 114 after the warp. None for perspective (no box is cheap to trust)."""
    if plan.perspective:
        return None
    boxes = [(t.at[0], t.at[1], t.at[0] + t.crop[2] - t.crop[0], t.at[1] + t.crop[3] - t.crop[1]) for t in plan.tiles]
    x0, y0 = min(b[0] for b in boxes) - 2, min(b[1] for b in boxes) - 2
    x1, y1 = max(b[2] for b in boxes) + 2, max(b[3] for b in boxes) + 2
    pts = np.array([[x0, y0, 1], [x1, y0, 1], [x0, y1, 1], [x1, y1, 1]], np.float64) @ plan.M.T
    H, W = plan.out_hw
    X0, Y0 = (max(int(np.floor(v)) - 1, 0) for v in pts[:, :2].min(0))
    X1, Y1 = min(int(np.ceil(pts[:, 0].max())) + 2, W), min(int(np.ceil(pts[:, 1].max())) + 2, H)
    return (Y0, Y1, X0, X1) if Y1 > Y0 and X1 > X0 else (0, 0, 0, 0)


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
        Y0, Y1, X0, X1 = box
        if Y1 > Y0 and X1 > X0:
            apply_hsv(out[Y0:Y1, X0:X1], plan.hsv, not plan.keep_bgr, lut)
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
    apply_hsv(out, plan.hsv, to_rgb=not plan.keep_bgr)
