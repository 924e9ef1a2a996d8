"""Execute a plan on pixels with OpenCV, straight into a batch buffer.

Two routes, chosen per plan:

* **axis-aligned** (scale + translate + flips: the default hyperparameters, val
  letterboxing): each tile's visible crop is warped straight into the output pixels it
  covers. No 2s x 2s canvas, no full-frame fill: only uncovered pixels get 114.
* **general** (rotation, shear, perspective): the part of the mosaic canvas that the
  output sees is assembled (114 fill + tile crops) and warped once, exactly as
  Ultralytics does.

Then mixup (Ultralytics' float blend), HSV through one 3-channel LUT, and the BGR->RGB
swap folded into the HSV->RGB conversion. Flips are already in the plan's matrix.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..plan import FILL, Plan, tile_placements, translate, visible_window, window_pastes

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


def _paint_axis_aligned(plan: Plan, images: list[np.ndarray], out: np.ndarray, fill=(FILL, FILL, FILL)) -> list:
    """Warp each tile into the output pixels it covers; ``fill`` the rest. Returns the covered rectangles."""
    covered = []
    for k, tile, (Y0, Y1, X0, X1), A in tile_placements(plan):
        x1b, y1b, x2b, y2b = tile.crop
        crop = images[k][y1b:y2b, x1b:x2b]
        if A[0, 0] == 1 and A[1, 1] == 1 and float(A[0, 2]).is_integer() and float(A[1, 2]).is_integer():
            ox, oy = int(A[0, 2]), int(A[1, 2])  # pure shift: copy
            out[Y0:Y1, X0:X1] = crop[-oy:Y1 - Y0 - oy, -ox:X1 - X0 - ox]
        else:
            # constant 114 border: a pixel half outside the tile blends with the fill, as it does on
            # Ultralytics' canvas (between two tiles it blends with grey instead of the neighbour: one
            # pixel line, under 0.1 grey level on average). BORDER_REPLICATE is 4x slower here.
            _warp_into(crop, A, out[Y0:Y1, X0:X1], cv2.BORDER_CONSTANT)
        covered.append((Y0, Y1, X0, X1))
    _fill_uncovered(out, covered, fill)
    return covered


def _fill_uncovered(out: np.ndarray, rects: list[tuple[int, int, int, int]], fill=(FILL, FILL, FILL)) -> None:
    """Fill every pixel outside the painted rectangles (row bands, no full-frame pass)."""
    H, W = out.shape[:2]
    FILL = np.asarray(fill, np.uint8)  # noqa: N806 - the fill colour, as the module constant reads
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


def _paint_general(plan: Plan, images: list[np.ndarray], out: np.ndarray) -> None:
    window = visible_window(plan)
    if window is None:
        out[...] = FILL
        return
    cx0, cy0, cx1, cy1 = window
    ch, cw = plan.canvas_hw
    if len(plan.tiles) == 1 and plan.tiles[0].at == (0, 0) and plan.tiles[0].crop == (0, 0, cw, ch):
        sub = images[0][cy0:cy1, cx0:cx1]  # the canvas is the image itself: no copy
    else:
        sub = np.full((cy1 - cy0, cx1 - cx0, 3), FILL, np.uint8)
        for k, (iy, ix), (h, w), (oy, ox) in window_pastes(plan, window):
            sub[oy:oy + h, ox:ox + w] = images[k][iy:iy + h, ix:ix + w]
    _warp_into(sub, plan.M @ translate(cx0, cy0), out, cv2.BORDER_CONSTANT, plan.perspective)


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


def paint_geometry(plan: Plan, load, out: np.ndarray) -> None:
    """The plan's tiles composed and warped into ``out`` (BGR), before mixup and colour."""
    images = [load(t.index) for t in plan.tiles]
    if plan.axis_aligned:
        _paint_axis_aligned(plan, images, out)
    else:
        _paint_general(plan, images, out)


def _final_fill(plan: Plan, lut) -> tuple[int, int, int]:
    """The colour a 114 fill pixel has after the plan's HSV and channel order."""
    px = np.full((1, 1, 3), FILL, np.uint8)
    apply_hsv(px, plan.hsv, not plan.keep_bgr, lut)
    return tuple(int(v) for v in px[0, 0])


def paint(plan: Plan, load, out: np.ndarray) -> None:
    """Paint ``plan`` into ``out`` (H, W, 3 uint8, RGB unless the plan keeps BGR).

    ``load(index)`` returns the BGR image at Ultralytics' load size (``ImageSource.get``).
    On the axis-aligned route the colour step runs only on the painted rectangles, and the fill
    (about a quarter of a mosaic) is written directly in its final colour: the same pixels as
    converting the whole frame, for about a quarter less work.
    """
    if out.shape != (*plan.out_hw, 3) or out.dtype != np.uint8:
        raise ValueError(f"output buffer {out.shape} {out.dtype} does not match plan {plan.out_hw}")
    if plan.letterbox is not None:
        _letterbox(plan, load(plan.tiles[0].index), out)
        return
    if plan.mix is None and plan.axis_aligned:
        lut = None if plan.hsv is None else hsv_luts_batch(plan.hsv)
        rects = _paint_axis_aligned(plan, [load(t.index) for t in plan.tiles], out, _final_fill(plan, lut))
        for y0, y1, x0, x1 in rects:
            apply_hsv(out[y0:y1, x0:x1], plan.hsv, not plan.keep_bgr, lut)
        return
    paint_geometry(plan, load, out)
    other = None
    if plan.mix is not None:
        other = np.empty_like(out)
        paint_geometry(plan.mix, load, other)
    finish(plan, out, other)


def _letterbox(plan: Plan, im: np.ndarray, out: np.ndarray) -> None:
    """Validation: Ultralytics' ``LetterBox`` step for step (INTER_LINEAR resize when the size changes, 114 pad),
    so validation pixels are bitwise the stock validator's; then the channel order."""
    nh, nw, top, left = plan.letterbox
    if im.shape[:2] != (nh, nw):
        im = cv2.resize(im, (nw, nh), interpolation=cv2.INTER_LINEAR)
    out[top:top + nh, left:left + nw] = im
    _fill_uncovered(out, [(top, top + nh, left, left + nw)])
    finish(plan, out)


def finish(plan: Plan, out: np.ndarray, other: np.ndarray | None = None) -> None:
    """After the geometry (BGR in ``out``, the mixup partner's in ``other``): Ultralytics' mixup blend, HSV and
    the channel order, in place."""
    if plan.mix is not None:
        r = plan.mix_r
        out[...] = (out * r + other * (1 - r)).astype(np.uint8)
    apply_hsv(out, plan.hsv, to_rgb=not plan.keep_bgr)
