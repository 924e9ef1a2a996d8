"""Canvas geometry of a plan, shared by every painter (OpenCV, torch, the DALI graph): which output pixels each
tile covers, which part of the mosaic canvas the output sees, and the matrices between them. Numbers only."""

from __future__ import annotations

import math

import numpy as np

from .plan import Plan

__all__ = ["FILL", "translate", "tile_placements", "visible_window", "window_pastes"]

FILL = 114  # Ultralytics' grey: mosaic canvas, warp border and letterbox padding


def translate(x: float, y: float) -> np.ndarray:
    return np.array([[1, 0, x], [0, 1, y], [0, 0, 1]], np.float64)


def tile_placements(plan: Plan):
    """Axis-aligned plans: per visible tile, (k, tile, (Y0, Y1, X0, X1) output pixels it covers, A).

    ``k`` is the tile's position in ``plan.tiles``.

    ``A`` maps the tile's crop pixels to pixels of that output rectangle. Canvas pixels
    [ax, ax + cw) cover the continuous [ax - .5, ax + cw - .5); the rectangle holds the output
    pixels whose centres fall inside its image, so the tiles partition the covered output.
    """
    H, W = plan.out_hw
    M = plan.M
    sx, tx, sy, ty = M[0, 0], M[0, 2], M[1, 1], M[1, 2]
    out = []
    for k, tile in enumerate(plan.tiles):
        x1b, y1b, x2b, y2b = tile.crop
        if x2b <= x1b or y2b <= y1b:
            continue
        ax, ay = tile.at
        ex = sorted((sx * (ax - 0.5) + tx, sx * (ax + x2b - x1b - 0.5) + tx))
        ey = sorted((sy * (ay - 0.5) + ty, sy * (ay + y2b - y1b - 0.5) + ty))
        X0, X1 = max(math.ceil(ex[0]), 0), min(math.ceil(ex[1]), W)
        Y0, Y1 = max(math.ceil(ey[0]), 0), min(math.ceil(ey[1]), H)
        if X1 <= X0 or Y1 <= Y0:
            continue
        out.append((k, tile, (Y0, Y1, X0, X1), translate(-X0, -Y0) @ M @ translate(ax, ay)))
    return out


def visible_window(plan: Plan) -> tuple[int, int, int, int] | None:
    """(cx0, cy0, cx1, cy1): the part of the mosaic canvas the output sees (plus the interpolation margin);
    None when it sees none of it (or the matrix is singular)."""
    H, W = plan.out_hw
    ch, cw = plan.canvas_hw
    try:
        Minv = np.linalg.inv(plan.M)
    except np.linalg.LinAlgError:
        return None
    corners = np.array([[-1, -1, 1], [W, -1, 1], [-1, H, 1], [W, H, 1]], np.float64) @ Minv.T
    if plan.perspective and (corners[:, 2] <= 0).any():
        cx0, cy0, cx1, cy1 = 0, 0, cw, ch  # the view reaches the horizon: take the whole canvas
    else:
        pts = corners[:, :2] / corners[:, 2:3]
        cx0, cy0 = (max(int(math.floor(v)) - 1, 0) for v in pts.min(0))
        cx1, cy1 = min(int(math.ceil(pts[:, 0].max())) + 2, cw), min(int(math.ceil(pts[:, 1].max())) + 2, ch)
    return None if cx1 <= cx0 or cy1 <= cy0 else (cx0, cy0, cx1, cy1)


def window_pastes(plan: Plan, window: tuple[int, int, int, int]):
    """Per tile visible in ``window``: (k, (y, x) in the tile image, (h, w), (y, x) in the window)."""
    cx0, cy0, cx1, cy1 = window
    for k, tile in enumerate(plan.tiles):
        x1b, y1b, x2b, y2b = tile.crop
        ax, ay = tile.at
        # canvas rectangle of the tile, intersected with the window
        bx0, by0 = max(ax, cx0), max(ay, cy0)
        bx1, by1 = min(ax + x2b - x1b, cx1), min(ay + y2b - y1b, cy1)
        if bx1 > bx0 and by1 > by0:
            yield k, (y1b + by0 - ay, x1b + bx0 - ax), (by1 - by0, bx1 - bx0), (by0 - cy0, bx0 - cx0)
