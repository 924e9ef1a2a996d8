"""Box and matrix math of Ultralytics 8.4's detection augmentation, as plain numpy functions.

Each function mirrors one step of ``ultralytics/data/augment.py`` in the same dtype
(float32 labels and matrices), so that boxes equal the stock loader's for the same
random parameters (``tests/unit/plan/test_geometry.py`` compares them). Pixel painters use
the same matrices; nothing here touches pixels.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

__all__ = ["xywh2xyxy", "xyxy2xywh", "affine_matrix", "transform_boxes", "clip_boxes", "box_candidates",
           "mosaic_layout", "letterbox_params", "letterbox_batch", "flip_matrix", "rect_batch_shapes"]


def xywh2xyxy(b: np.ndarray) -> np.ndarray:
    b = np.asarray(b, np.float32)
    y = np.empty_like(b)
    wh = b[..., 2:] / 2
    y[..., :2] = b[..., :2] - wh
    y[..., 2:] = b[..., :2] + wh
    return y


def xyxy2xywh(b: np.ndarray) -> np.ndarray:
    y = np.empty_like(b)
    y[..., 0] = (b[..., 0] + b[..., 2]) / 2
    y[..., 1] = (b[..., 1] + b[..., 3]) / 2
    y[..., 2] = b[..., 2] - b[..., 0]
    y[..., 3] = b[..., 3] - b[..., 1]
    return y


def affine_matrix(in_wh: tuple[float, float], out_wh: tuple[int, int], perspective: tuple[float, float],
                  degrees: float, scale: float, shear: tuple[float, float], translate: tuple[float, float]):
    """``RandomPerspective`` matrix ``M = T @ S @ R @ P @ C`` (float32, 3x3) from drawn parameters.

    ``translate`` are the drawn fractions (0.5 +/- t) of the output size; ``shear`` in degrees.
    """
    C = np.eye(3, dtype=np.float32)
    C[0, 2] = -in_wh[0] / 2
    C[1, 2] = -in_wh[1] / 2
    P = np.eye(3, dtype=np.float32)
    P[2, 0], P[2, 1] = perspective
    R = np.eye(3, dtype=np.float32)
    R[:2] = cv2.getRotationMatrix2D(angle=degrees, center=(0, 0), scale=scale)
    S = np.eye(3, dtype=np.float32)
    S[0, 1] = math.tan(shear[0] * math.pi / 180)
    S[1, 0] = math.tan(shear[1] * math.pi / 180)
    T = np.eye(3, dtype=np.float32)
    T[0, 2] = translate[0] * out_wh[0]
    T[1, 2] = translate[1] * out_wh[1]
    return T @ S @ R @ P @ C


def flip_matrix(lr: bool, ud: bool, out_wh: tuple[int, int]) -> np.ndarray:
    """Pixel-grid flip of an output of size ``out_wh`` (pixel centers at integers: x -> W - 1 - x)."""
    F = np.eye(3, dtype=np.float64)
    if lr:
        F[0, 0], F[0, 2] = -1, out_wh[0] - 1
    if ud:
        F[1, 1], F[1, 2] = -1, out_wh[1] - 1
    return F


def transform_boxes(boxes_xyxy: np.ndarray, M: np.ndarray, perspective: bool) -> np.ndarray:
    """``RandomPerspective.apply_bboxes``: 4 corners through M, then their min/max."""
    n = len(boxes_xyxy)
    if n == 0:
        return boxes_xyxy
    xy = np.ones((n * 4, 3), dtype=boxes_xyxy.dtype)
    xy[:, :2] = boxes_xyxy[:, [0, 1, 2, 3, 0, 3, 2, 1]].reshape(n * 4, 2)
    xy = xy @ M.T
    xy = (xy[:, :2] / xy[:, 2:3] if perspective else xy[:, :2]).reshape(n, 8)
    x = xy[:, [0, 2, 4, 6]]
    y = xy[:, [1, 3, 5, 7]]
    return np.concatenate((x.min(1), y.min(1), x.max(1), y.max(1)), dtype=boxes_xyxy.dtype).reshape(4, n).T


def clip_boxes(b: np.ndarray, w: float, h: float) -> np.ndarray:
    b = b.copy()
    b[:, [0, 2]] = b[:, [0, 2]].clip(0, w)
    b[:, [1, 3]] = b[:, [1, 3]].clip(0, h)
    return b


def box_candidates(box1: np.ndarray, box2: np.ndarray, wh_thr: float = 2, ar_thr: float = 100,
                   area_thr: float = 0.1, eps: float = 1e-16) -> np.ndarray:
    """Keep boxes (xyxy, (4, n) transposed like Ultralytics) still large enough after augmentation."""
    w1, h1 = box1[2] - box1[0], box1[3] - box1[1]
    w2, h2 = box2[2] - box2[0], box2[3] - box2[1]
    ar = np.maximum(w2 / (h2 + eps), h2 / (w2 + eps))
    return (w2 > wh_thr) & (h2 > wh_thr) & (w2 * h2 / (w1 * h1 + eps) > area_thr) & (ar < ar_thr)


def mosaic_layout(s: int, xc: int, yc: int, shapes: list[tuple[int, int]]) -> list[tuple]:
    """``Mosaic`` 2x2 placement: per tile ((x1a, y1a, x2a, y2a) on the 2s canvas, (x1b, y1b, x2b, y2b) in the tile)."""
    out = []
    for i, (h, w) in enumerate(shapes):
        if i == 0:
            a = max(xc - w, 0), max(yc - h, 0), xc, yc
            b = w - (a[2] - a[0]), h - (a[3] - a[1]), w, h
        elif i == 1:
            a = xc, max(yc - h, 0), min(xc + w, s * 2), yc
            b = 0, h - (a[3] - a[1]), min(w, a[2] - a[0]), h
        elif i == 2:
            a = max(xc - w, 0), yc, xc, min(s * 2, yc + h)
            b = w - (a[2] - a[0]), 0, w, min(a[3] - a[1], h)
        else:
            a = xc, yc, min(xc + w, s * 2), min(s * 2, yc + h)
            b = 0, 0, min(w, a[2] - a[0]), min(a[3] - a[1], h)
        out.append((a, b))
    return out


def letterbox_params(shape_hw: tuple[int, int], new_hw: tuple[int, int], scaleup: bool = False):
    """``LetterBox`` (center, no auto): (ratio r, new unpadded (w, h), top, bottom, left, right)."""
    r = min(new_hw[0] / shape_hw[0], new_hw[1] / shape_hw[1])
    if not scaleup:
        r = min(r, 1.0)
    new_unpad = max(round(shape_hw[1] * r), 1), max(round(shape_hw[0] * r), 1)
    dw, dh = (new_hw[1] - new_unpad[0]) / 2, (new_hw[0] - new_unpad[1]) / 2
    top, bottom = round(dh - 0.1), round(dh + 0.1)
    left, right = round(dw - 0.1), round(dw + 0.1)
    return r, new_unpad, top, bottom, left, right


def letterbox_batch(shapes_hw: np.ndarray, new_hw: tuple[int, int], scaleup: bool = False):
    """``letterbox_params`` for (B, 2) shapes: (r, new w, new h, top, left) arrays (rounding half to even, as
    Python's ``round``)."""
    h, w = shapes_hw[:, 0].astype(np.float64), shapes_hw[:, 1].astype(np.float64)
    r = np.minimum(new_hw[0] / h, new_hw[1] / w)
    if not scaleup:
        r = np.minimum(r, 1.0)
    nw, nh = np.maximum(np.round(w * r), 1).astype(np.int64), np.maximum(np.round(h * r), 1).astype(np.int64)
    dw, dh = (new_hw[1] - nw) / 2, (new_hw[0] - nh) / 2
    return r, nw, nh, np.round(dh - 0.1).astype(np.int64), np.round(dw - 0.1).astype(np.int64)


def rect_batch_shapes(shapes_hw: np.ndarray, batch_size: int, imgsz: int, stride: int = 32, pad: float = 0.5):
    """``BaseDataset.set_rectangle``: (order by aspect ratio, batch index per sorted image, (nb, 2) h, w shapes)."""
    n = len(shapes_hw)
    bi = np.floor(np.arange(n) / batch_size).astype(int)
    nb = bi[-1] + 1
    s = np.asarray(shapes_hw)
    ar = s[:, 0] / s[:, 1]
    irect = ar.argsort()
    ar = ar[irect]
    shapes = [[1, 1]] * nb
    for i in range(nb):
        ari = ar[bi == i]
        mini, maxi = ari.min(), ari.max()
        if maxi < 1:
            shapes[i] = [maxi, 1]
        elif mini > 1:
            shapes[i] = [1, 1 / mini]
    batch_shapes = np.ceil(np.array(shapes) * imgsz / stride + pad).astype(int) * stride
    return irect, bi, batch_shapes
