"""Paint plans with torch ops on any device: the DALI engine's colour step on a GPU (``colour``) and its painter
for perspective plans there (``paint_torch``).

Same plans, same semantics as ``kernels/opencv.py`` (the visible part of the mosaic canvas warped once
with a 114 border, mixup's truncating blend, Ultralytics' HSV LUTs, RGB out), written with
tensor ops so that tiles decoded on the GPU (DALI / nvJPEG) never come back to the host. On a
CPU it runs too, which is how the tests pin it to the OpenCV painter.

Colour conversion reproduces OpenCV's 8-bit BGR->HSV exactly (its fixed-point division
tables) and HSV->RGB in float32 with OpenCV's truncation (0.3 % of pixels one grey level off on
random colours); warps are bilinear with pixel centres at integer coordinates, like
``cv2.warpAffine`` (which quantizes coordinates to 1/32 px: small differences at edges).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
import threading

import numpy as np
import torch
import torch.nn.functional as F

from ..plan import FILL, Plan, translate, visible_window, window_pastes
from .opencv import hsv_luts_batch

__all__ = ["paint_torch", "colour", "colour_tables", "ColourTables", "mix_blend", "bgr_to_hsv8", "hsv8_to_rgb"]

_SHIFT = 12


_TABLES_LOCK = threading.Lock()


def _tables(device: torch.device):
    """OpenCV's fixed-point division tables and the HSV->BGR sector table, resident on ``device`` (made once, under a
    lock: painter threads ask at the same time)."""
    with _TABLES_LOCK:
        return _make_tables(device)


@functools.lru_cache(maxsize=8)
def _make_tables(device: torch.device):
    i = torch.arange(256, dtype=torch.float64)
    sdiv = torch.where(i > 0, torch.round((255 << _SHIFT) / i.clamp(min=1)), torch.zeros_like(i))
    hdiv = torch.where(i > 0, torch.round((180 << _SHIFT) / (6 * i.clamp(min=1))), torch.zeros_like(i))
    # OpenCV's sector table: (b, g, r) indices into (v, p, q, t)
    order = torch.tensor([[1, 3, 0], [1, 0, 2], [3, 0, 1], [0, 2, 1], [0, 1, 3], [2, 1, 0]])
    return sdiv.to(torch.int32).to(device), hdiv.to(torch.int32).to(device), order.to(device)


def bgr_to_hsv8(img: torch.Tensor) -> torch.Tensor:
    """(..., 3) uint8 BGR -> uint8 HSV (H in 0..179), bit-exact with ``cv2.COLOR_BGR2HSV``."""
    sdiv, hdiv, _ = _tables(img.device)
    b, g, r = (img[..., k].to(torch.int32) for k in range(3))
    v = torch.maximum(torch.maximum(b, g), r)
    vmin = torch.minimum(torch.minimum(b, g), r)
    diff = v - vmin
    vr, vg = v == r, (v == g) & (v != r)
    s = (diff * sdiv[v] + (1 << (_SHIFT - 1))) >> _SHIFT
    h = torch.where(vr, g - b, torch.where(vg, b - r + 2 * diff, r - g + 4 * diff))
    h = (h * hdiv[diff] + (1 << (_SHIFT - 1))) >> _SHIFT
    h = torch.where(h < 0, h + 180, h)
    return torch.stack([h, s, v], -1).to(torch.uint8)


def hsv8_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """uint8 HSV (H 0..179) -> uint8 RGB, float32 math and truncation as OpenCV's ``COLOR_HSV2RGB`` on rows
    wide enough for its vector path (its scalar path rounds instead)."""
    h = hsv[..., 0].to(torch.float32) * torch.tensor(6.0 / 180, dtype=torch.float32)
    s = hsv[..., 1].to(torch.float32) * torch.tensor(1.0 / 255, dtype=torch.float32)
    v = hsv[..., 2].to(torch.float32) * torch.tensor(1.0 / 255, dtype=torch.float32)
    h = torch.where(h < 0, h + 6, h)
    h = torch.where(h >= 6, h - 6, h)
    sector = torch.floor(h)
    h = h - sector
    sector = sector.to(torch.int64) % 6
    tab0, tab1, tab2, tab3 = v, v * (1 - s), v * (1 - s * h), v * (1 - s * (1 - h))
    order = _tables(hsv.device)[2]
    tabs = torch.stack([tab0, tab1, tab2, tab3], -1)
    idx = order[sector]
    bgr = torch.gather(tabs, -1, idx)
    gray = s == 0
    bgr = torch.where(gray[..., None], v[..., None].expand_as(bgr), bgr)
    rgb = bgr.flip(-1) * 255
    return torch.floor(rgb).clamp(0, 255).to(torch.uint8)  # OpenCV's vector path truncates


def _warp(src: torch.Tensor, A: np.ndarray, out_hw: tuple[int, int], perspective: bool) -> torch.Tensor:
    """Bilinear warp of ``src`` (h, w, 3) by ``A`` (src px -> dst px) to ``out_hw``, 114 outside; float32."""
    H, W = out_hw
    h, w = src.shape[:2]
    dev = src.device
    Ainv = torch.tensor(np.linalg.inv(A), dtype=torch.float64, device=dev)
    ys, xs = torch.meshgrid(torch.arange(H, dtype=torch.float64, device=dev),
                            torch.arange(W, dtype=torch.float64, device=dev), indexing="ij")
    pts = torch.stack([xs, ys, torch.ones_like(xs)], -1) @ Ainv.T
    sx, sy = (pts[..., 0] / pts[..., 2], pts[..., 1] / pts[..., 2]) if perspective else (pts[..., 0], pts[..., 1])
    grid = torch.stack([sx * 2 / max(w - 1, 1) - 1, sy * 2 / max(h - 1, 1) - 1], -1).to(torch.float32)
    inp = (src.to(torch.float32) - FILL).permute(2, 0, 1)[None]
    out = F.grid_sample(inp, grid[None], mode="bilinear", padding_mode="zeros", align_corners=True)[0]
    return out.permute(1, 2, 0) + FILL


def _slice(load, index: int, rows: slice, cols: slice, device) -> torch.Tensor:
    """Part of a loaded image as a tensor on ``device`` (``load`` may return numpy or a tensor, e.g. CUDA tiles)."""
    im = load(index)[rows, cols]
    if not torch.is_tensor(im):
        im = torch.from_numpy(np.array(im))  # a copy: cached tiles are read-only
    return im.to(device)


def _geometry(plan: Plan, load, device) -> torch.Tensor:
    """The plan's tiles composed into an (H, W, 3) float32 BGR image, before colour."""
    H, W = plan.out_hw
    M = plan.M
    out = torch.full((H, W, 3), float(FILL), dtype=torch.float32, device=device)
    window = visible_window(plan)  # the part of the canvas the output sees, as the OpenCV painter builds it
    if window is None:
        return out
    cx0, cy0, cx1, cy1 = window
    canvas = torch.full((cy1 - cy0, cx1 - cx0, 3), FILL, dtype=torch.uint8, device=device)
    for k, (iy, ix), (h, w), (oy, ox) in window_pastes(plan, window):
        canvas[oy:oy + h, ox:ox + w] = _slice(load, plan.tiles[k].index, slice(iy, iy + h), slice(ix, ix + w), device)
    return _warp(canvas, M @ translate(cx0, cy0), (H, W), plan.perspective)


def mix_blend(a: torch.Tensor, b: torch.Tensor, r) -> torch.Tensor:
    """Ultralytics' mixup on uint8 images: ``(a * r + b * (1 - r)).astype(uint8)`` (``r`` broadcasts)."""
    return torch.floor(a.to(torch.float32) * r + b.to(torch.float32) * (1 - r)).clamp(0, 255).to(torch.uint8)


@dataclass(frozen=True)
class ColourTables:
    """A batch's colour work on its device: jittered rows and their HSV tables, rows that keep BGR, mixup ratios.

    ``rows`` / ``keep`` are host arrays (to cut chunks without asking the device); the rest lives on the device.
    ``chunk(lo, hi)`` gives ``colour`` its part of the batch without any host-device synchronisation."""

    rows: np.ndarray
    keep: np.ndarray
    rows_dev: torch.Tensor  # (m,) int64: the jittered rows
    jit_pos: torch.Tensor  # (B,) int64: a row's position among the jittered rows, -1 if it has no jitter
    keep_mask: torch.Tensor  # (B,) bool: rows that keep BGR
    luts: torch.Tensor | None  # (m, 256, 3) int64
    mix: torch.Tensor | None  # (B,) float32: r where a sample has a mixup partner, else 1

    def chunk(self, lo: int, hi: int) -> tuple:
        a, b = (int(v) for v in np.searchsorted(self.rows, [lo, hi]))
        k0, k1 = np.searchsorted(self.keep, [lo, hi])
        jp = self.jit_pos[lo:hi]
        return (self.rows_dev[a:b] - lo, None if self.luts is None else self.luts[a:b],
                torch.where(jp >= 0, jp - a, jp), self.keep_mask[lo:hi], bool(k1 > k0), b - a == hi - lo)


def colour_tables(hsv: np.ndarray | None, keep_bgr: np.ndarray, device, mix_r: np.ndarray | None = None
                  ) -> ColourTables:
    """Everything ``colour`` (and mixup's blend) needs for a batch in **one** upload: on a CUDA device one pinned,
    non-blocking copy (a pageable ``as_tensor(..., device=cuda)`` is a blocking copy plus a stream
    synchronisation, several per batch before this). ``hsv``: (n, 3) gains, NaN rows (or None) for no jitter;
    ``mix_r``: (n,) mixup ratios (1 where there is no partner)."""
    n = len(keep_bgr)
    jitter = np.zeros(n, bool) if hsv is None else ~np.isnan(hsv[:, 0])
    rows = np.nonzero(jitter)[0].astype(np.int64)
    keep_mask = np.asarray(keep_bgr, bool)
    keep = np.nonzero(keep_mask)[0].astype(np.int64)
    jit_pos = np.full(n, -1, np.int64)
    jit_pos[rows] = np.arange(len(rows))
    luts = hsv_luts_batch(hsv[rows]).astype(np.int64) if len(rows) else np.zeros((0, 256, 3), np.int64)
    mix = np.zeros(0) if mix_r is None else np.asarray(mix_r, np.float64)
    parts = [rows, jit_pos, keep_mask.astype(np.int64), luts.ravel(), mix.view(np.int64)]
    t = torch.from_numpy(np.concatenate(parts))
    dev = torch.device(device)
    t = t.pin_memory().to(dev, non_blocking=True) if dev.type == "cuda" else t.to(dev)
    a = np.cumsum([0] + [len(p) for p in parts])
    return ColourTables(rows, keep, t[a[0]:a[1]], t[a[1]:a[2]], t[a[2]:a[3]].to(torch.bool),
                        t[a[3]:a[4]].view(-1, 256, 3) if len(rows) else None,
                        t[a[4]:a[5]].view(torch.float64).to(torch.float32) if mix_r is not None else None)


def colour(bgr: torch.Tensor, chunk: tuple) -> torch.Tensor:
    """(n, H, W, 3) uint8 BGR -> HSV jitter (Ultralytics' LUTs, OpenCV's conversions) and channel order (RGB
    unless a row keeps BGR), for the rows ``ColourTables.chunk`` describes.

    Selections are ``index_select`` and ``where``, never indexed assignment: under
    ``torch.use_deterministic_algorithms`` (Ultralytics' default, ``deterministic=True``) CUDA ``index_put_``
    reads its index bounds back to the host, two synchronisations per call."""
    rows, luts, jit, keep, any_keep, all_jitter = chunk
    out = bgr.flip(-1)
    if len(rows):
        hsv = bgr_to_hsv8(bgr if all_jitter else bgr.index_select(0, rows)).to(torch.int64)
        m, H, W, _ = hsv.shape
        hsv = torch.gather(luts, 1, hsv.reshape(m, H * W, 3)).reshape(m, H, W, 3).to(torch.uint8)
        rgb = hsv8_to_rgb(hsv)
        if all_jitter:
            out = rgb
        else:  # rows without jitter keep their plain RGB: one gather over [plain rows; jittered rows]
            n = bgr.shape[0]
            src = torch.where(jit >= 0, jit + n, torch.arange(n, device=bgr.device))
            out = torch.cat([out, rgb]).index_select(0, src)
    if any_keep:
        out = torch.where(keep[:, None, None, None], out.flip(-1), out)
    return out


def paint_torch(plan: Plan, load, device="cpu") -> torch.Tensor:
    """(H, W, 3) uint8 RGB tensor on ``device`` (BGR when the plan keeps BGR)."""
    img = torch.floor(_geometry(plan, load, device) + 0.5).clamp(0, 255).to(torch.uint8)
    if plan.mix is not None:
        other = torch.floor(_geometry(plan.mix, load, device) + 0.5).clamp(0, 255).to(torch.uint8)
        img = mix_blend(img, other, plan.mix_r)
    if plan.cut is not None:
        x1, y1, x2, y2 = plan.cut_area
        cut = torch.floor(_geometry(plan.cut, load, device) + 0.5).clamp(0, 255).to(torch.uint8)
        img[y1:y2, x1:x2] = cut[y1:y2, x1:x2]
    hsv = None if plan.hsv is None else plan.hsv[None]
    return colour(img[None], colour_tables(hsv, np.array([plan.keep_bgr]), img.device).chunk(0, 1))[0]
