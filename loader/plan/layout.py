"""Canvas geometry of a plan, shared by every painter (OpenCV, torch, the DALI graph): which part of the mosaic
canvas the output sees, where each tile's crop lands in that window, and the matrices between them. Numbers
only."""

from __future__ import annotations

import math

import numpy as np

from .plan import Plan

__all__ = ["FILL", "translate", "visible_window", "visible_windows", "window_pastes", "paste_regions"]

FILL = 114  # Ultralytics' grey: mosaic canvas, warp border and letterbox padding


def translate(x: float, y: float) -> np.ndarray:
    return np.array([[1, 0, x], [0, 1, y], [0, 0, 1]], np.float64)


def visible_windows(M: np.ndarray, canvas_hw: np.ndarray, out_hw: tuple[int, int], perspective: bool,
                    has_tiles: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """For C canvases: ((C, 4) windows (cx0, cy0, cx1, cy1), (C,) visible). A window is the part of the mosaic
    canvas the output sees (plus the interpolation margin); not visible when the output sees none of it, the
    canvas has no tiles, or the matrix is singular."""
    H, W = out_hw
    C = len(M)
    ch, cw = canvas_hw[:, 0], canvas_hw[:, 1]
    ok = np.ones(C, bool) if has_tiles is None else has_tiles.copy()
    with np.errstate(all="ignore"):
        ok &= np.isfinite(M).all((1, 2)) & (np.linalg.det(M) != 0)
        Minv = np.zeros_like(M)
        if ok.any():
            Minv[ok] = np.linalg.inv(M[ok])
        corners = np.array([[-1, -1, 1], [W, -1, 1], [-1, H, 1], [W, H, 1]], np.float64) @ Minv.transpose(0, 2, 1)
        horizon = perspective & (corners[:, :, 2] <= 0).any(1)  # the view reaches the horizon: the whole canvas
        pts = corners[:, :, :2] / corners[:, :, 2:3]
        lo, hi = np.where(horizon[:, None], 0, pts.min(1)), np.where(horizon[:, None], 0, pts.max(1))
        cx0 = np.where(horizon, 0, np.maximum(np.floor(lo[:, 0]) - 1, 0))
        cy0 = np.where(horizon, 0, np.maximum(np.floor(lo[:, 1]) - 1, 0))
        cx1 = np.where(horizon, cw, np.minimum(np.ceil(hi[:, 0]) + 2, cw))
        cy1 = np.where(horizon, ch, np.minimum(np.ceil(hi[:, 1]) + 2, ch))
    win = np.stack([cx0, cy0, cx1, cy1], 1)
    ok &= np.isfinite(win).all(1)
    win = np.where(ok[:, None], win, 0).astype(np.int64)
    return win, ok & (win[:, 2] > win[:, 0]) & (win[:, 3] > win[:, 1])


def visible_window(plan: Plan) -> tuple[int, int, int, int] | None:
    """(cx0, cy0, cx1, cy1): the part of the plan's canvas its output sees, or None (see ``visible_windows``)."""
    win, vis = visible_windows(plan.M[None], np.array([plan.canvas_hw]), plan.out_hw, plan.perspective)
    return tuple(int(v) for v in win[0]) if vis[0] else None


def paste_regions(crop: np.ndarray, at: np.ndarray, window: np.ndarray):
    """Tiles (T rows: ``crop`` (x1, y1, x2, y2) in the tile image, ``at`` (x, y) on the canvas) cut to their
    canvas ``window`` (T, 4): ((y, x) in the tile image, (h, w), (y, x) in the window, visible), each (T, 2)
    but the last (T,)."""
    ax, ay = at[:, 0], at[:, 1]
    bx0, by0 = np.maximum(ax, window[:, 0]), np.maximum(ay, window[:, 1])
    bx1 = np.minimum(ax + crop[:, 2] - crop[:, 0], window[:, 2])
    by1 = np.minimum(ay + crop[:, 3] - crop[:, 1], window[:, 3])
    src = np.stack([crop[:, 1] + by0 - ay, crop[:, 0] + bx0 - ax], 1)
    return src, np.stack([by1 - by0, bx1 - bx0], 1), np.stack([by0 - window[:, 1], bx0 - window[:, 0]], 1), \
        (bx1 > bx0) & (by1 > by0)


def window_pastes(plan: Plan, window: tuple[int, int, int, int]):
    """Per tile visible in ``window``: (k, (y, x) in the tile image, (h, w), (y, x) in the window)."""
    if not plan.tiles:
        return
    crop = np.array([t.crop for t in plan.tiles], np.int64)
    at = np.array([t.at for t in plan.tiles], np.int64)
    src, hw, dst, ok = paste_regions(crop, at, np.tile(np.asarray(window, np.int64), (len(crop), 1)))
    for k in np.nonzero(ok)[0]:
        yield int(k), (int(src[k, 0]), int(src[k, 1])), (int(hw[k, 0]), int(hw[k, 1])), (int(dst[k, 0]), int(dst[k, 1]))
