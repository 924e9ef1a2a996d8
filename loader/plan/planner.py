"""The batch planner: every random number of the Ultralytics 8.4 detection chain, for a whole batch at once.

A plan is numbers only: which images, where each tile lands, the warp matrix, HSV gains, flips, mixup, and
the final boxes (computed here with ``geometry``'s math, never by a painter). Kernels (``loader/kernels``)
execute plans on pixels, so the CPU and DALI engines run identical plans and pixel/box consistency is this
module's property. Everything is vectorised over the batch (flat arrays with offsets for tiles and boxes):
about 2 ms for a batch of 128 mosaics at 896 px on the 2-core development machine
(``benchmarks/host_path.py``), where the per-sample planner took 96 ms.

Randomness: one generator per (seed, epoch, rank, chunk of ``CHUNK`` positions); sample ``position`` draws
row ``position % CHUNK`` of its chunk's uniform array (``N_DRAWS`` columns, a fixed layout, drawn whether used
or not) and of its Beta(32, 32) array. So a sample's plan depends only on (seed, epoch, rank, position):
not on the batch size, the worker count or timing, and a resumed run redraws it exactly. Columns: mosaic
coin, 3 mosaic partners, centre (yc, xc), affine (perspective x/y, degrees, scale, shear x/y, translate
x/y); mixup coin, mixup partner, then the partner's own mosaic coin, partners, centre and affine; HSV gains
(3); flip up-down, flip left-right, BGR coin. Each uniform is mapped as Ultralytics' ``random.uniform(a, b)``
maps its draw (``a + (b - a) * u``), a choice among ``n`` as ``floor(u * n)``: the same distributions.

Mosaic partners come from a buffer of the most recently planned primary images of this rank's order (the
current one included; early in an epoch, the last ones of the previous epoch, which the stock buffer still
holds too) with Ultralytics' ``max_buffer_length`` ``L = min(n, 8 * batch, 1000)``, which holds L - 1
images (Ultralytics pops at ``len >= L``): the same semantics as the stock per-worker buffer, but one buffer
per process, so partners are nearly always already decoded. (Without the previous epoch's tail, the first
samples of every epoch drew partners among very few images: on a 96-image set the buffer averaged half its
stock size, and mAP50-95 came out 0.015 lower over 4 seeds: ``benchmarks/train_outcome.py``.)
"""

from __future__ import annotations

import math

import numpy as np

from ..flat import ranges
from .batch import PlanBatch
from .geometry import box_candidates, letterbox_batch, xywh2xyxy, xyxy2xywh
from .hyp import Hyp
from .plan import Plan, Tile
from .polygons import canvas_polygon_boxes, resample_count

__all__ = ["Tile", "Plan", "PlanBatch", "Planner", "load_size", "CHUNK", "N_DRAWS", "N_CUT_DRAWS", "CUT_AREAS",
           "CUT_AREA_DRAWS", "CUT_CHOICE_DRAW"]

CHUNK = 512  # positions per generator
# column layout of a sample's uniform draws
_MOSAIC, _PARTNERS, _CENTRE, _AFFINE = 0, slice(1, 4), slice(4, 6), slice(6, 14)
_MIX, _MIX_PARTNER, _MIX_MOSAIC, _MIX_PARTNERS, _MIX_CENTRE, _MIX_AFFINE = 14, 15, 16, slice(17, 20), slice(20, 22), \
    slice(22, 30)
_HSV, _FLIPUD, _FLIPLR, _BGR = slice(30, 33), 33, 34, 35
N_DRAWS = 36
# CutMix's draws come from a stream of their own (so plans without CutMix stay what they were): its coin, its
# partner, the partner's mosaic coin, partners, centre and affine, then 3 candidate areas x (Beta(1, 1) ratio,
# centre x, centre y) and the choice among the areas that touch no box.
_CUT, _CUT_PARTNER, _CUT_MOSAIC, _CUT_PARTNERS, _CUT_CENTRE, _CUT_AFFINE = 0, 1, 2, slice(3, 6), slice(6, 8), \
    slice(8, 16)
CUT_AREA_DRAWS, CUT_CHOICE_DRAW = slice(16, 25), 25  # public: tests feed them to Ultralytics
N_CUT_DRAWS, CUT_AREAS = 26, 3


def load_size(h0: int, w0: int, imgsz: int) -> tuple[int, int]:
    """(h, w) of Ultralytics' ``load_image``: long side to imgsz, ``ceil``, capped at imgsz."""
    r = imgsz / max(h0, w0)
    if r == 1:
        return int(h0), int(w0)
    return min(math.ceil(h0 * r), imgsz), min(math.ceil(w0 * r), imgsz)


class Planner:
    """Draws plans for one data set (``DatasetIndex``-like: ``shapes``, ``label_offsets``, ``cls``, ``boxes``)."""

    def __init__(self, index, imgsz: int = 640, hyp: Hyp | dict | None = None, augment: bool = True,
                 batch_size: int = 16, seed: int = 0, rank: int = 0, buffer_len: int | None = None):
        if imgsz < 32 or imgsz % 2:
            raise ValueError(f"imgsz must be an even number >= 32, got {imgsz}")
        self.index, self.imgsz, self.augment = index, int(imgsz), bool(augment)
        self.hyp = hyp if isinstance(hyp, Hyp) else Hyp.from_any(hyp)
        self.seed, self.rank = int(seed), int(rank)
        n = len(index)
        self.buffer_len = int(buffer_len) if buffer_len is not None else min(n, batch_size * 8, 1000)
        self._load_hw = np.array([load_size(h, w, self.imgsz) for h, w in index.shapes], np.int64).reshape(-1, 2)
        self._n_points = None  # polygon labels: the points each image's polygons are resampled to (stock's rule)
        if len(getattr(index, "seg_xy", ())):
            lens = np.diff(index.seg_off)
            longest = np.zeros(n, np.int64)
            np.maximum.at(longest, np.repeat(np.arange(n), np.diff(index.label_offsets)), lens)
            self._n_points = resample_count(longest)

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

    def close_mosaic(self) -> None:
        self.hyp = self.hyp.closed_mosaic()

    def draws(self, epoch: int, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(uniforms (B, N_DRAWS), beta (B,)) of these epoch positions."""
        positions = np.asarray(positions, np.int64)
        u = np.empty((len(positions), N_DRAWS))
        beta = np.empty(len(positions))
        chunks = positions // CHUNK
        for c in np.unique(chunks):
            rng = np.random.Generator(np.random.PCG64([self.seed & 0xFFFFFFFF, int(epoch), self.rank, int(c), 0xBA7C]))
            cu, cb = rng.random((CHUNK, N_DRAWS)), rng.beta(32.0, 32.0, CHUNK)
            rows = chunks == c
            u[rows], beta[rows] = cu[positions[rows] % CHUNK], cb[positions[rows] % CHUNK]
        return u, beta

    def cut_draws(self, epoch: int, positions: np.ndarray) -> np.ndarray:
        """(B, N_CUT_DRAWS) uniforms of CutMix for these epoch positions (same keying as ``draws``)."""
        positions = np.asarray(positions, np.int64)
        u = np.empty((len(positions), N_CUT_DRAWS))
        chunks = positions // CHUNK
        for c in np.unique(chunks):
            rng = np.random.Generator(np.random.PCG64([self.seed & 0xFFFFFFFF, int(epoch), self.rank, int(c), 0xC07]))
            rows = chunks == c
            u[rows] = rng.random((CHUNK, N_CUT_DRAWS))[positions[rows] % CHUNK]
        return u

    def _labels(self, images: np.ndarray):
        """(rows into the index's flat label arrays, owner of each row) for these images, in order."""
        off = self.index.label_offsets
        starts, counts = off[images], off[images + 1] - off[images]
        return ranges(starts, counts), np.repeat(np.arange(len(images)), counts)

    # ------------------------------------------------------------------ train
    def _canvases(self, primary: np.ndarray, partners: np.ndarray, use_mosaic: np.ndarray, u: np.ndarray) -> dict:
        """Mosaic (or the single image) and the affine warp of B canvases: tiles, matrices, transformed boxes.

        ``u``: (B, 10) draws (centre yc, xc, then the 8 affine parameters)."""
        s, hyp, B = self.imgsz, self.hyp, len(primary)
        border = -(-s // 2)  # Ultralytics: -imgsz // 2 as the (negative) border
        yc = (border + (2 * s - 2 * border) * u[:, 0]).astype(np.int64)
        xc = (border + (2 * s - 2 * border) * u[:, 1]).astype(np.int64)
        ids = np.where(use_mosaic[:, None], np.concatenate([primary[:, None], partners], 1), primary[:, None])
        h, w = self._load_hw[ids, 0], self._load_hw[ids, 1]  # (B, 4)
        # Ultralytics' Mosaic: top-left, top-right, bottom-left, bottom-right around (xc, yc) on a 2s canvas
        x1a = np.stack([np.maximum(xc - w[:, 0], 0), xc, np.maximum(xc - w[:, 2], 0), xc], 1)
        y1a = np.stack([np.maximum(yc - h[:, 0], 0), np.maximum(yc - h[:, 1], 0), yc, yc], 1)
        x2a = np.stack([xc, np.minimum(xc + w[:, 1], 2 * s), xc, np.minimum(xc + w[:, 3], 2 * s)], 1)
        y2a = np.stack([yc, yc, np.minimum(2 * s, yc + h[:, 2]), np.minimum(2 * s, yc + h[:, 3])], 1)
        left, top = np.array([True, False, True, False]), np.array([True, True, False, False])
        x1b = np.where(left, w - (x2a - x1a), 0)
        y1b = np.where(top, h - (y2a - y1a), 0)
        x2b = np.where(left, w, np.minimum(w, x2a - x1a))
        y2b = np.where(top, h, np.minimum(y2a - y1a, h))
        single = ~use_mosaic  # one tile: the whole image at the canvas origin
        x1a[single, 0] = y1a[single, 0] = x1b[single, 0] = y1b[single, 0] = 0
        x2b[single, 0], y2b[single, 0] = w[single, 0], h[single, 0]
        valid = np.zeros((B, 4), bool)
        valid[:, 0] = True
        valid[use_mosaic, 1:] = True
        t_index, t_sample = ids[valid], np.nonzero(valid)[0]
        t_hw = np.stack([h[valid], w[valid]], 1)
        t_crop = np.stack([x1b[valid], y1b[valid], x2b[valid], y2b[valid]], 1)
        t_at = np.stack([x1a[valid], y1a[valid]], 1)
        canvas = np.where(use_mosaic[:, None], 2 * s, np.stack([h[:, 0], w[:, 0]], 1))

        # boxes of every tile's image, in pixels of the canvas (Instances.denormalize, add_padding)
        rows, t_of = self._labels(t_index)
        cls = self.index.cls[rows].astype(np.float32)
        b = xywh2xyxy(self.index.boxes[rows])
        th, tw = t_hw[t_of, 0].astype(np.float32), t_hw[t_of, 1].astype(np.float32)
        b *= np.stack([tw, th, tw, th], 1)
        pad = (t_at - t_crop[:, :2]).astype(np.float32)[t_of]  # (padw, padh); 0 for a single image
        b += np.concatenate([pad, pad], 1)
        sample = t_sample[t_of]
        mos = use_mosaic[sample]
        # mosaic: clip to the 2s canvas, drop boxes left without area
        b[mos] = np.clip(b[mos], 0, 2 * s)
        keep = ~mos | ((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) > 0)

        # RandomPerspective's M = T @ S @ R @ P @ C, float32, per canvas
        a = u[:, 2:10]
        lo, hi = hyp.scale_range
        persp = np.stack([-hyp.perspective + 2 * hyp.perspective * a[:, 0],
                          -hyp.perspective + 2 * hyp.perspective * a[:, 1]], 1)
        deg = -hyp.degrees + 2 * hyp.degrees * a[:, 2]
        sc = lo + (hi - lo) * a[:, 3]
        shear = np.stack([-hyp.shear + 2 * hyp.shear * a[:, 4], -hyp.shear + 2 * hyp.shear * a[:, 5]], 1)
        tr = (0.5 - hyp.translate) + 2 * hyp.translate * a[:, 6:8]
        M = _affine(canvas[:, ::-1], s, persp, deg, sc, shear, tr)
        perspective = bool(hyp.perspective)
        new = _transform(b, M[sample], perspective)
        area_thr = 0.1
        if self._n_points is not None:  # boxes from the warped polygons, kept down to 1 % of their area (stock)
            n_first = self._n_points[t_index]
            n_canvas = np.zeros(B, np.int64)
            np.maximum.at(n_canvas, t_sample, n_first)
            poly, has = canvas_polygon_boxes(self.index.seg_off, self.index.seg_xy, rows, np.stack([tw, th], 1),
                                             pad, mos, n_first[t_of], n_canvas[sample], sample, M, s)
            new[has] = poly[has]
            area_thr = np.where(has, 0.01, 0.1)
        new = np.clip(new, 0, s)
        keep &= box_candidates(box1=(b * sc.astype(np.float32)[sample][:, None]).T, box2=new.T, area_thr=area_thr)
        return {"index": primary, "canvas_hw": canvas, "M": M, "scale": sc, "mosaic": use_mosaic,
                "tile_off": np.concatenate([[0], np.cumsum(valid.sum(1))]), "tile_index": t_index, "tile_hw": t_hw,
                "tile_crop": t_crop, "tile_at": t_at, "perspective": perspective,
                "cls": cls[keep], "xyxy": new[keep], "box_sample": sample[keep]}

    def _choose(self, positions: np.ndarray, order: np.ndarray, u: np.ndarray, exclude: frozenset,
                prev: np.ndarray | None, uc: np.ndarray | None = None):
        """(primary (B,), mosaic partners (B, 3), mixup partner (B,), its mosaic partners (B, 3), CutMix partner (B,)
        and its mosaic partners (B, 3); the last two None without CutMix draws ``uc``).

        The mosaic buffer of position p holds the L - 1 most recent primaries: this epoch's up to p, and, early
        in an epoch, the end of the previous epoch's order (``prev``), as the stock buffer keeps them. Mixup and
        CutMix partners are any image of the data set (``random.randint`` in Ultralytics)."""
        L1 = max(1, self.buffer_len - 1)  # Ultralytics pops once the buffer reaches its max length
        start = np.maximum(0, positions - L1 + 1)
        own = positions + 1 - start
        tail = np.minimum(L1 - own, len(prev)) if prev is not None else np.zeros_like(own)
        n_buf = own + tail
        n = len(self.index)
        if not exclude:
            def pick(vals):
                k = (vals * n_buf[:, None]).astype(np.int64)  # position in [previous tail, this epoch's]
                mine = order[np.minimum(start[:, None] + k - tail[:, None], len(order) - 1)]
                if prev is None:
                    return mine
                return np.where(k < tail[:, None], prev[np.maximum(len(prev) - tail[:, None] + k, 0) % len(prev)],
                                mine)

            cut = (None, None) if uc is None else ((uc[:, _CUT_PARTNER] * n).astype(np.int64),
                                                   pick(uc[:, _CUT_PARTNERS]))
            return (order[positions], pick(u[:, _PARTNERS]), (u[:, _MIX_PARTNER] * n).astype(np.int64),
                    pick(u[:, _MIX_PARTNERS]), *cut)
        # a re-plan without unreadable images (one sample): the same draws choose among what is left
        (p,) = positions
        k = 0
        while int(order[(p + k) % len(order)]) in exclude:
            k += 1
            if k >= len(order):
                raise ValueError("every image of the epoch is excluded")
        buffer = order[start[0]:p + 1]
        if prev is not None and tail[0]:
            buffer = np.concatenate([prev[len(prev) - tail[0]:], buffer])
        buffer = buffer[~np.isin(buffer, list(exclude))]
        if not len(buffer):
            buffer = np.array([order[(p + k) % len(order)]])

        def any_image(v: float) -> int:
            first = int(v * n)
            for j in range(n):
                if (first + j) % n not in exclude:
                    return (first + j) % n
            raise ValueError("every image of the data set is excluded")

        pick = lambda vals: buffer[(vals * len(buffer)).astype(np.int64)]  # noqa: E731
        cut = (None, None) if uc is None else (np.array([any_image(uc[0, _CUT_PARTNER])]), pick(uc[:, _CUT_PARTNERS]))
        return (np.array([order[(p + k) % len(order)]]), pick(u[:, _PARTNERS]),
                np.array([any_image(u[0, _MIX_PARTNER])]), pick(u[:, _MIX_PARTNERS]), *cut)

    def plan_batch(self, epoch: int, positions, order: np.ndarray, exclude: frozenset = frozenset(),
                   prev_order: np.ndarray | None = None) -> PlanBatch:
        """Plans of ``order[positions]`` (``order``: this rank's sample order for ``epoch``; ``prev_order``: its
        order of the previous epoch, whose last images are still in the mosaic buffer early in this one).

        ``exclude`` (one position only): images found unreadable while painting this sample. The same random
        draws then pick replacements deterministically (the primary moves on through the epoch order, partners
        come from the buffer without them), so the result depends only on which files are bad.
        """
        s, hyp = self.imgsz, self.hyp
        positions = np.atleast_1d(np.asarray(positions, np.int64))
        if exclude and len(positions) != 1:
            raise ValueError("exclude is for re-planning one sample")
        B = len(positions)
        u, beta = self.draws(epoch, positions)
        uc = self.cut_draws(epoch, positions) if hyp.cutmix > 0 else None
        primary, partners, mix_primary, mix_partners, cut_primary, cut_partners = self._choose(
            positions, order, u, exclude, prev_order, uc)
        main = self._canvases(primary, partners, (hyp.mosaic > 0) & (u[:, _MOSAIC] <= hyp.mosaic),
                              np.concatenate([u[:, _CENTRE], u[:, _AFFINE]], 1))
        on = (hyp.mixup > 0) & (u[:, _MIX] <= hyp.mixup)
        mix = None
        box_parts = [(main["box_sample"], main["cls"], main["xyxy"])]
        if on.any():
            rows = np.nonzero(on)[0]
            m = self._canvases(mix_primary[rows], mix_partners[rows],
                               (hyp.mosaic > 0) & (u[rows, _MIX_MOSAIC] <= hyp.mosaic),
                               np.concatenate([u[rows, _MIX_CENTRE], u[rows, _MIX_AFFINE]], 1))
            box_parts.append((rows[m["box_sample"]], m["cls"], m["xyxy"]))
            mix = _expand(m, rows, B)
        else:
            box_parts.append((np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros((0, 4), np.float32)))
        cut, cut_area = None, np.zeros((B, 4), np.int64)
        if uc is not None and (on_c := uc[:, _CUT] <= hyp.cutmix).any():
            cut, cut_area, part_c = self._cutmix(np.nonzero(on_c)[0], cut_primary, cut_partners, uc, box_parts, B)
            box_parts.append(part_c)
        sample = np.concatenate([p[0] for p in box_parts])
        part = np.concatenate([np.full(len(p[0]), k) for k, p in enumerate(box_parts)])
        o = np.lexsort((part, sample))  # per sample: its own boxes, its mixup partner's, its CutMix partner's
        sample, part, cls = sample[o], part[o], np.concatenate([p[1] for p in box_parts])[o]
        xywh = xyxy2xywh(np.concatenate([p[2] for p in box_parts])[o])
        hsv = None
        if hyp.hsv_h or hyp.hsv_s or hyp.hsv_v:
            hsv = (-1 + 2 * u[:, _HSV]) * [hyp.hsv_h, hyp.hsv_s, hyp.hsv_v]
        ud, lr = u[:, _FLIPUD] < hyp.flipud, u[:, _FLIPLR] < hyp.fliplr
        xywh[ud[sample], 1] = s - xywh[ud[sample], 1]
        xywh[lr[sample], 0] = s - xywh[lr[sample], 0]
        xywh[:, [0, 2]] /= s
        xywh[:, [1, 3]] /= s
        F = np.tile(np.eye(3), (B, 1, 1))  # flips folded into every matrix (pixel grid: x -> s - 1 - x)
        F[lr, 0, 0], F[lr, 0, 2] = -1, s - 1
        F[ud, 1, 1], F[ud, 1, 2] = -1, s - 1
        M = F @ main["M"].astype(np.float64)
        if mix is not None:
            mix = _with_matrix(mix, F @ mix.M)
        if cut is not None:  # the area in output pixels, flipped as the image is: x in [x1, x2) -> [s - x2, s - x1)
            cut = _with_matrix(cut, F @ cut.M)
            cut_area[lr] = np.stack([s - cut_area[lr, 2], cut_area[lr, 1], s - cut_area[lr, 0], cut_area[lr, 3]], 1)
            cut_area[ud] = np.stack([cut_area[ud, 0], s - cut_area[ud, 3], cut_area[ud, 2], s - cut_area[ud, 1]], 1)
        counts = np.bincount(sample, minlength=B)
        mix_counts = np.bincount(sample[part == 1], minlength=B)
        cut_counts = np.bincount(sample[part == 2], minlength=B)
        shapes = self.index.shapes[primary].astype(np.int64)
        return PlanBatch(
            out_hw=(s, s), index=primary, canvas_hw=main["canvas_hw"], M=M, tile_off=main["tile_off"],
            tile_index=main["tile_index"], tile_hw=main["tile_hw"], tile_crop=main["tile_crop"],
            tile_at=main["tile_at"], perspective=main["perspective"], hsv=hsv, keep_bgr=u[:, _BGR] < hyp.bgr,
            mosaic=main["mosaic"], flips=np.stack([ud, lr], 1), scale=main["scale"], mix=mix,
            mix_r=np.where(on, beta, 0.0), mix_boxes=mix_counts, cut=cut, cut_area=cut_area, cut_boxes=cut_counts,
            box_off=np.concatenate([[0], np.cumsum(counts)]), cls=cls, boxes=xywh.astype(np.float32),
            ori_shape=shapes, ratio=self._load_hw[primary] / shapes)

    def _cutmix(self, rows: np.ndarray, primary: np.ndarray, partners: np.ndarray, uc: np.ndarray, box_parts: list,
                B: int):
        """Ultralytics 8.4's ``CutMix`` for the samples ``rows`` whose coin came up: the partner's canvas (mosaic +
        affine of its own), 3 candidate areas (``_rand_bbox``: Beta(1, 1) ratio, a centre), one of those that
        touch none of the sample's boxes (its own and its mixup partner's; ``bbox_ioa`` sum 0), the partner's
        boxes covering >= 0.1 of themselves inside it, clipped to it. A sample with no free area or no such box
        is left as it is. Returns (the partners' canvases as a B-row batch or None, (B, 4) areas before flips,
        (sample, cls, xyxy) of the boxes added)."""
        s, hyp, R = self.imgsz, self.hyp, len(rows)
        cm = self._canvases(primary[rows], partners[rows], (hyp.mosaic > 0) & (uc[rows, _CUT_MOSAIC] <= hyp.mosaic),
                            np.concatenate([uc[rows, _CUT_CENTRE], uc[rows, _CUT_AFFINE]], 1))
        a = uc[rows, CUT_AREA_DRAWS].reshape(R, CUT_AREAS, 3)  # (lam, cx, cy) per candidate
        cut = (s * np.sqrt(1.0 - a[..., 0])).astype(np.int64) // 2  # int(width * sqrt(1 - lam)) // 2
        cx, cy = (a[..., 1] * s).astype(np.int64), (a[..., 2] * s).astype(np.int64)  # np.random.randint(width)
        areas = np.clip(np.stack([cx - cut, cy - cut, cx + cut, cy + cut], -1), 0, s).astype(np.float32)
        pos = np.full(B, -1)
        pos[rows] = np.arange(R)
        b_sample = np.concatenate([p[0] for p in box_parts])
        b_xyxy = np.concatenate([p[2] for p in box_parts]).astype(np.float32)
        sel = pos[b_sample] >= 0
        touched = np.zeros((R, CUT_AREAS), np.float32)
        np.add.at(touched, pos[b_sample[sel]], _ioa(areas[pos[b_sample[sel]]], b_xyxy[sel][:, None, :]))
        free = touched <= 0
        n_free = free.sum(1)
        k = (uc[rows, CUT_CHOICE_DRAW] * n_free).astype(np.int64)  # np.random.choice among the free areas, in order
        which = np.argmax(np.cumsum(free, 1) > k[:, None], 1)
        area = areas[np.arange(R), which]  # (R, 4); meaningless where n_free == 0
        r2, pb = cm["box_sample"], cm["xyxy"].astype(np.float32)
        # partner boxes kept down to 1 % inside the area where the sample has polygon labels (stock: 10 %)
        thr = np.float32(0.1)
        if self._n_points is not None:
            thr = np.where(np.bincount(b_sample, minlength=B)[rows] > 0, np.float32(0.01), np.float32(0.1))[r2]
        keep = (n_free[r2] > 0) & (_ioa(area[r2][:, None, :], pb[:, None, :])[:, 0] >= thr)
        applied = (n_free > 0) & (np.bincount(r2[keep], minlength=R) > 0)
        keep &= applied[r2]
        lo, hi = area[r2[keep]][:, :2], area[r2[keep]][:, 2:]
        clipped = np.concatenate([np.clip(pb[keep][:, :2], lo, hi), np.clip(pb[keep][:, 2:], lo, hi)], 1)
        added = (rows[r2[keep]], cm["cls"][keep], clipped)
        done = rows[applied]
        if not len(done):
            return None, np.zeros((B, 4), np.int64), added
        cut_area = np.zeros((B, 4), np.int64)
        cut_area[done] = area[applied].astype(np.int32)
        return _expand(_take_canvases(cm, applied), done, B), cut_area, added

    def train_plan(self, epoch: int, position: int, order: np.ndarray, exclude: frozenset = frozenset(),
                   prev_order: np.ndarray | None = None) -> Plan:
        """The plan of one sample: row 0 of a batch of one (see ``plan_batch``)."""
        return self.plan_batch(epoch, [position], order, exclude, prev_order).plan(0)

    # ------------------------------------------------------------------ val
    def val_batch(self, images, out_hw: tuple[int, int]) -> PlanBatch:
        """Letterboxed ``images`` centred in ``out_hw`` with 114 fill, never upscaled (Ultralytics' val)."""
        images = np.atleast_1d(np.asarray(images, np.int64))
        H, W = int(out_hw[0]), int(out_hw[1])
        hw = self._load_hw[images]
        h, w = hw[:, 0], hw[:, 1]
        r, nw, nh, top, left = letterbox_batch(hw, (H, W), scaleup=False)
        sx, sy = nw / w, nh / h
        B = len(images)
        M = np.zeros((B, 3, 3))
        # resize maps pixel centres (x + 0.5) * s - 0.5: that half-pixel shift is folded into M
        M[:, 0, 0], M[:, 0, 2] = sx, left + (0.5 * sx - 0.5)
        M[:, 1, 1], M[:, 1, 2] = sy, top + (0.5 * sy - 0.5)
        M[:, 2, 2] = 1
        rows, owner = self._labels(images)
        b = xywh2xyxy(self.index.boxes[rows])
        whwh = np.stack([w, h, w, h], 1).astype(np.float32)[owner]
        b *= whwh
        b *= r.astype(np.float32)[owner][:, None]
        b += np.stack([left, top, left, top], 1).astype(np.float32)[owner]
        xywh = xyxy2xywh(b)
        xywh[:, [0, 2]] /= W
        xywh[:, [1, 3]] /= H
        shapes = self.index.shapes[images].astype(np.int64)
        zeros = np.zeros(B, np.int64)
        return PlanBatch(
            out_hw=(H, W), index=images, canvas_hw=hw, M=M, tile_off=np.arange(B + 1), tile_index=images,
            tile_hw=hw, tile_crop=np.stack([zeros, zeros, w, h], 1), tile_at=np.stack([zeros, zeros], 1),
            box_off=np.concatenate([[0], np.cumsum(np.bincount(owner, minlength=B))]),
            cls=self.index.cls[rows].astype(np.float32), boxes=xywh.astype(np.float32), ori_shape=shapes,
            ratio=np.stack([h / shapes[:, 0] * r, w / shapes[:, 1] * r], 1), pad=np.stack([left, top], 1),
            letterbox=np.stack([nh, nw, top, left], 1))

    def val_plan(self, i: int, out_hw: tuple[int, int]) -> Plan:
        return self.val_batch([i], out_hw).plan(0)


def _affine(in_wh: np.ndarray, s: int, persp, deg, sc, shear, tr) -> np.ndarray:
    """``geometry.affine_matrix`` for a batch: (B, 3, 3) float32 ``T @ S @ R @ P @ C``."""
    B = len(sc)
    eye = np.tile(np.eye(3, dtype=np.float32), (B, 1, 1))
    C, P, R, S, T = eye.copy(), eye.copy(), eye.copy(), eye.copy(), eye.copy()
    C[:, 0, 2], C[:, 1, 2] = -in_wh[:, 0] / 2, -in_wh[:, 1] / 2
    P[:, 2, 0], P[:, 2, 1] = persp[:, 0], persp[:, 1]
    rad = deg * (math.pi / 180)  # cv2.getRotationMatrix2D(angle, (0, 0), scale), in float64 like OpenCV
    alpha, beta = np.cos(rad) * sc, np.sin(rad) * sc
    R[:, 0, 0], R[:, 0, 1], R[:, 1, 0], R[:, 1, 1] = alpha, beta, -beta, alpha
    S[:, 0, 1], S[:, 1, 0] = np.tan(shear[:, 0] * math.pi / 180), np.tan(shear[:, 1] * math.pi / 180)
    T[:, 0, 2], T[:, 1, 2] = tr[:, 0] * s, tr[:, 1] * s
    return T @ S @ R @ P @ C


def _transform(boxes: np.ndarray, M: np.ndarray, perspective: bool) -> np.ndarray:
    """``geometry.transform_boxes`` with one matrix per box: 4 corners through M, then their min/max."""
    n = len(boxes)
    if n == 0:
        return boxes
    xy = np.ones((n, 4, 3), boxes.dtype)
    xy[:, :, :2] = boxes[:, [0, 1, 2, 3, 0, 3, 2, 1]].reshape(n, 4, 2)
    xy = xy @ M.transpose(0, 2, 1)
    xy = xy[:, :, :2] / xy[:, :, 2:3] if perspective else xy[:, :, :2]
    return np.concatenate([xy.min(1), xy.max(1)], 1).astype(boxes.dtype)


def _ioa(box1: np.ndarray, box2: np.ndarray) -> np.ndarray:
    """Ultralytics' ``bbox_ioa``, broadcast: the share of each ``box2`` (xyxy) inside ``box1``."""
    iw = (np.minimum(box1[..., 2], box2[..., 2]) - np.maximum(box1[..., 0], box2[..., 0])).clip(0)
    ih = (np.minimum(box1[..., 3], box2[..., 3]) - np.maximum(box1[..., 1], box2[..., 1])).clip(0)
    return iw * ih / ((box2[..., 2] - box2[..., 0]) * (box2[..., 3] - box2[..., 1]) + np.float32(1e-7))


def _take_canvases(m: dict, keep: np.ndarray) -> dict:
    """The canvases of ``_canvases``' rows where ``keep`` is True (their tiles with them), for ``_expand``."""
    off = m["tile_off"]
    tiles = ranges(off[:-1][keep], np.diff(off)[keep])
    out = {k: m[k][keep] for k in ("index", "canvas_hw", "M", "scale", "mosaic")}
    out.update({k: m[k][tiles] for k in ("tile_index", "tile_hw", "tile_crop", "tile_at")})
    out["tile_off"] = np.concatenate([[0], np.cumsum(np.diff(off)[keep])])
    out["perspective"] = m["perspective"]
    return out


def _expand(m: dict, rows: np.ndarray, B: int) -> PlanBatch:
    """The mixup partners' canvases of ``rows`` as a B-row batch (rows without a partner: no tiles)."""
    counts = np.zeros(B, np.int64)
    counts[rows] = np.diff(m["tile_off"])
    full = lambda a, fill: np.broadcast_to(np.asarray(fill, a.dtype), (B, *a.shape[1:])).copy()  # noqa: E731
    index, canvas, M, scale, mosaic = (full(m["index"], -1), full(m["canvas_hw"], 1), full(m["M"], np.eye(3)),
                                       full(m["scale"], 1.0), full(m["mosaic"], False))
    for a, v in ((index, m["index"]), (canvas, m["canvas_hw"]), (M, m["M"]), (scale, m["scale"]),
                 (mosaic, m["mosaic"])):
        a[rows] = v
    return PlanBatch(out_hw=(0, 0), index=index, canvas_hw=canvas, M=M, tile_off=np.concatenate([[0], np.cumsum(counts)]),
                     tile_index=m["tile_index"], tile_hw=m["tile_hw"], tile_crop=m["tile_crop"], tile_at=m["tile_at"],
                     perspective=m["perspective"], mosaic=mosaic, scale=scale)


def _with_matrix(batch: PlanBatch, M: np.ndarray) -> PlanBatch:
    from dataclasses import replace

    return replace(batch, M=M)
