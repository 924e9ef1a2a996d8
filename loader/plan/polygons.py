"""Boxes from polygon labels, as Ultralytics 8.4 takes them in detection training (plain functions on flat arrays).

Stock keeps a polygon label's outline through the augmentations: resampled to 1,000 points (or one more than
the image's longest polygon) when the image is loaded, placed on the mosaic canvas, every point clipped to
that canvas, warped with the sample's matrix, and the box is the warped outline's extent inside the image
(``segment2box``: the points inside, the outline's crossings of the image border, and the image corners the
outline encloses). ``box_candidates`` then keeps boxes down to 1 % of their area (not 10 %), and CutMix pastes
partner boxes that keep 1 % of themselves inside its area.

Resampling adds points on the outline's own edges, so it changes nothing a warp or ``segment2box`` sees,
except where the mosaic canvas clips points: there the dense points are what the clip bends. So only the
edges that leave the mosaic canvas get the points ``resample_segments`` would put on them (``densify``, the
same float math); every other edge is warped at its own vertices, giving the same box to float32 rounding
(measured: 3e-4 px at most, ``tests/parity/test_polygons.py``) at a tenth of the cost.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..flat import ranges

__all__ = ["RESAMPLE", "resample_count", "resample", "densify", "segment_boxes", "canvas_polygon_boxes"]

RESAMPLE = 1000  # update_labels_info's segment_resamples for detection


def resample_count(longest: np.ndarray) -> np.ndarray:
    """Points per polygon after ``update_labels_info``, from the image's longest polygon (0: no polygon)."""
    longest = np.asarray(longest, np.int64)
    return np.where(longest > RESAMPLE, longest + 1, RESAMPLE)


def resample(xy: np.ndarray, lens: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Ultralytics' ``resample_segments`` for flat polygons (``lens`` points each) to ``n`` points each, bitwise:
    closed with the first point, ``np.linspace`` parameters with the original vertices inserted before equal
    values (``np.insert`` at ``searchsorted``), ``np.interp`` in float64, stored as float32. A polygon already
    of ``n`` points is returned as it is. Returns the (sum(n), 2) float32 points."""
    xy = np.asarray(xy, np.float32)
    lens, n = np.asarray(lens, np.int64), np.broadcast_to(np.asarray(n, np.int64), lens.shape)
    K = len(lens)
    if K == 0:
        return np.zeros((0, 2), np.float32)
    off = np.zeros(K + 1, np.int64)
    np.cumsum(lens, out=off[1:])
    same = lens == n
    m = lens + 1  # closed
    c = np.where(m < n, n - m, n)  # linspace points
    # linspace(0, m - 1, c): i * ((m - 1) / (c - 1)), last = m - 1 exactly
    step = np.where(c > 1, (m - 1) / np.maximum(c - 1, 1), 0.0)
    lin_poly = np.repeat(np.arange(K), c)
    i = np.arange(int(c.sum())) - np.repeat(np.cumsum(c) - c, c)
    v = i * step[lin_poly]
    last = (i == c[lin_poly] - 1) & (c[lin_poly] > 1)
    v[last] = (m - 1)[lin_poly[last]]
    # merged parameter array of n points per polygon (m >= n: the linspace alone)
    out_off = np.zeros(K + 1, np.int64)
    np.cumsum(n, out=out_off[1:])
    x = np.empty(int(n.sum()))
    insert = (m < n)[lin_poly]
    pos = out_off[lin_poly] + i + np.where(insert, np.floor(v).astype(np.int64) + 1, 0)
    x[pos] = v
    free = np.ones(len(x), bool)
    free[pos] = False
    ins_poly = np.nonzero(m < n)[0]
    x[free] = (np.arange(int(m[ins_poly].sum())) - np.repeat(np.cumsum(m[ins_poly]) - m[ins_poly], m[ins_poly]))
    x_poly = np.repeat(np.arange(K), n)
    # np.interp on xp = 0..m-1, fp = the closed polygon (float64)
    j = np.minimum(np.floor(x).astype(np.int64), m[x_poly] - 1)
    at_end = j >= m[x_poly] - 1
    j1 = np.where(at_end, j, j + 1)
    src = lambda k: np.where(k == lens[x_poly], off[x_poly], off[x_poly] + k)  # noqa: E731  (closing point: first)
    fp0, fp1 = xy[src(j)].astype(np.float64), xy[src(j1)].astype(np.float64)
    frac = (x - j)[:, None]
    val = np.where(at_end[:, None] | (frac == 0), fp0, (fp1 - fp0) * frac + fp0).astype(np.float32)
    if same.any():  # already n points: unchanged
        keep = np.repeat(same, n)
        val[keep] = xy[ranges(off[:-1][same], lens[same])]
    return val


def densify(xy: np.ndarray, lens: np.ndarray, n: np.ndarray, edges: np.ndarray,
            near: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Each polygon's vertices with, on the edges flagged in ``edges`` (one flag per vertex: the edge from it to
    the next, the last closing the polygon), the points ``resample(xy, lens, n)`` puts there, bitwise; points
    ``resample`` puts on unflagged edges lie on those straight edges and are left out. ``near`` ((vertices, k)
    edge parameters in (0, 1), NaN for none): keep only the 2 points on either side of each (where a clip bends
    the edge; the points between bends stay collinear). Returns (points, lens)."""
    xy = np.asarray(xy, np.float32)
    lens, n = np.asarray(lens, np.int64), np.asarray(n, np.int64)
    K = len(lens)
    off = np.zeros(K + 1, np.int64)
    np.cumsum(lens, out=off[1:])
    m = lens + 1
    c = np.where(m < n, n - m, 0)  # linspace points between the vertices (none: vertices only)
    step = np.where(c > 1, (m - 1) / np.maximum(c - 1, 1), 0.0)
    e = np.nonzero(edges & np.repeat(c > 1, lens))[0]  # flagged edges that get points
    poly = np.searchsorted(off, e, "right") - 1
    j = e - off[poly]
    st = step[poly]
    if near is None:
        lo = np.maximum(np.floor(j / st).astype(np.int64) - 1, 0)
        hi = np.minimum(np.floor((j + 1) / st).astype(np.int64) + 1, c[poly] - 1)
        cnt = np.maximum(hi - lo + 1, 0)
        owner = np.repeat(np.arange(len(e)), cnt)
        i = ranges(lo, cnt)
    else:
        at = (j[:, None] + near[e]) / st[:, None]  # (E, k) sample positions of the bends
        cand = np.floor(at)[..., None] + np.array([-1.0, 0.0, 1.0, 2.0])
        owner = np.broadcast_to(np.arange(len(e))[:, None, None], cand.shape).reshape(-1)
        cand = cand.reshape(-1)
        ok = np.isfinite(cand)
        owner, i = owner[ok], np.clip(cand[ok], 0, None).astype(np.int64)
        i = np.minimum(i, c[poly][owner] - 1)
        key = np.unique(owner * (int(c.max()) + 1) + i)
        owner, i = key // (int(c.max()) + 1), key % (int(c.max()) + 1)
    v = i * st[owner]
    v[i == c[poly][owner] - 1] = (m - 1)[poly][owner][i == c[poly][owner] - 1]  # linspace's exact end point
    jj = j[owner]
    inside = (v > jj) & (v < jj + 1)
    owner, v, jj = owner[inside], v[inside], jj[inside]
    start = off[poly][owner]
    nxt = np.where(jj + 1 == lens[poly][owner], start, start + jj + 1)
    fp0, fp1 = xy[start + jj].astype(np.float64), xy[nxt].astype(np.float64)
    val = ((fp1 - fp0) * (v - jj)[:, None] + fp0).astype(np.float32)
    # merge: each vertex, then its edge's points (ordered by v)
    extra = np.bincount(e[owner], minlength=len(xy))  # points after each vertex
    new_off = np.arange(len(xy) + 1) + np.concatenate([[0], np.cumsum(extra)])
    out = np.empty((int(new_off[-1]), 2), np.float32)
    out[new_off[:-1]] = xy
    rank = np.arange(len(owner)) - np.repeat(np.cumsum(np.bincount(owner, minlength=len(e))) -
                                             np.bincount(owner, minlength=len(e)), np.bincount(owner, minlength=len(e)))
    out[new_off[e[owner]] + 1 + rank] = val
    new_lens = lens + np.bincount(poly[owner], minlength=K)
    return out, new_lens


def segment_boxes(xy: np.ndarray, lens: np.ndarray, width: float, height: float) -> np.ndarray:
    """Ultralytics' ``segment2box`` for each flat polygon (float32 pixels), bitwise: the extent when inside the
    image, zeros when its extent misses the image, else the extent of its points inside the image, its edges'
    crossings of the image border and the image corners inside it (``cv2.pointPolygonTest`` >= 0)."""
    xy = np.asarray(xy, np.float32)
    lens = np.asarray(lens, np.int64)
    K = len(lens)
    out = np.zeros((K, 4), np.float32)
    if K == 0:
        return out
    off = np.zeros(K + 1, np.int64)
    np.cumsum(lens, out=off[1:])
    starts = off[:-1]
    lo = np.stack([np.minimum.reduceat(xy[:, 0], starts), np.minimum.reduceat(xy[:, 1], starts)], 1)
    hi = np.stack([np.maximum.reduceat(xy[:, 0], starts), np.maximum.reduceat(xy[:, 1], starts)], 1)
    wf, hf = np.float32(width), np.float32(height)
    inside = (lo[:, 0] >= 0) & (lo[:, 1] >= 0) & (hi[:, 0] <= wf) & (hi[:, 1] <= hf)
    outside = (hi[:, 0] < 0) | (hi[:, 1] < 0) | (lo[:, 0] > wf) | (lo[:, 1] > hf)
    out[inside] = np.concatenate([lo, hi], 1)[inside]
    cross = np.nonzero(~inside & ~outside)[0]
    if not len(cross):
        return out
    sel = ranges(starts[cross], lens[cross])
    p = xy[sel]
    poly = np.repeat(np.arange(len(cross)), lens[cross])
    nxt = np.arange(len(p)) + 1
    ends = np.cumsum(lens[cross])
    nxt[ends - 1] = ends - lens[cross]  # np.roll(segment, -1) within each polygon
    delta = p[nxt] - p
    axes = np.array((0, 0, 1, 1))
    bounds = np.array((0, width, 0, height), np.float32)
    lims = np.array((height, height, width, width), np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (bounds - p[:, axes]) / delta[:, axes]
        inter = p[:, None, :] + t[:, :, None] * delta[:, None, :]
    other = inter[:, np.arange(4), 1 - axes]
    valid = (t >= 0) & (t <= 1) & (other >= 0) & (other <= lims)
    pin = (p[:, 0] >= 0) & (p[:, 1] >= 0) & (p[:, 0] <= wf) & (p[:, 1] <= hf)
    cand = np.concatenate([p[pin], inter[valid]])
    owner = np.concatenate([poly[pin], np.repeat(poly, 4)[valid.reshape(-1)]])
    corners = np.array(((0, 0), (width, 0), (0, height), (width, height)), np.float32)
    for k, a, b in zip(range(len(cross)), ends - lens[cross], ends):
        contour = p[a:b]
        got = [c for c in corners if cv2.pointPolygonTest(contour, (float(c[0]), float(c[1])), False) >= 0]
        if got:
            cand = np.concatenate([cand, np.array(got, np.float32)])
            owner = np.concatenate([owner, np.full(len(got), k)])
    box = np.full((len(cross), 4), np.inf, np.float32)
    box[:, 2:] = -np.inf
    np.minimum.at(box[:, 0], owner, cand[:, 0])
    np.minimum.at(box[:, 1], owner, cand[:, 1])
    np.maximum.at(box[:, 2], owner, cand[:, 0])
    np.maximum.at(box[:, 3], owner, cand[:, 1])
    box[~np.isfinite(box[:, 0])] = 0  # no point left: zeros
    out[cross] = box
    return out


def canvas_polygon_boxes(seg_off: np.ndarray, seg_xy: np.ndarray, rows: np.ndarray, wh: np.ndarray, pad: np.ndarray,
                         clip: np.ndarray, n_first: np.ndarray, n_canvas: np.ndarray, canvas: np.ndarray,
                         M: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Output-pixel boxes (xyxy float32) of the label rows ``rows`` from their polygons, and which rows have one.

    Row r's polygon is scaled by ``wh[r]`` (its tile's load size), shifted by ``pad[r]`` onto its canvas; where
    ``clip[r]`` (a mosaic canvas of ``2 * size`` pixels) its points are clipped to that canvas, after resampling
    to ``n_first[r]`` points (the image's count) and then ``n_canvas[r]`` (the mosaic's longest: Instances
    .concatenate) when any leave it. Then ``M[canvas[r]]`` warps it (float32, divided by w as stock does) and
    ``segment_boxes`` gives its box in the ``size`` x ``size`` output."""
    lens = (seg_off[rows + 1] - seg_off[rows]).astype(np.int64)
    has = lens > 0
    boxes = np.zeros((len(rows), 4), np.float32)
    if not has.any():
        return boxes, has
    rows, wh, pad, clip, n_first, n_canvas, canvas, lens = (a[has] for a in (rows, wh, pad, clip, n_first, n_canvas,
                                                                              canvas, lens))
    raw = seg_xy[ranges(seg_off[rows], lens)]
    pt_row = np.repeat(np.arange(len(rows)), lens)
    wh32, pad32 = wh.astype(np.float32), pad.astype(np.float32)
    placed = raw * wh32[pt_row] + pad32[pt_row]  # Instances.denormalize, add_padding (float32)
    limit = np.float32(2 * size)
    outside = ((placed < 0) | (placed > limit)).any(1)
    leaves = np.bincount(pt_row, outside, minlength=len(rows)) > 0
    dense = clip & leaves
    if dense.any():
        # mosaic rows whose points leave the canvas: the points stock's resampling puts on the edges that leave
        # it (every point stock has where tiles were resampled twice: polygons of over 1,000 points), clipped
        full = dense & (n_canvas != n_first)
        part = dense & ~full
        pieces = []
        if part.any():
            d = np.nonzero(part)[0]
            sel = part[pt_row]
            p0, out_pt = placed[sel], outside[sel]
            ends = np.cumsum(lens[d])
            nxt = np.arange(len(p0)) + 1
            nxt[ends - 1] = ends - lens[d]
            delta = p0[nxt] - p0
            with np.errstate(divide="ignore", invalid="ignore"):
                near = np.concatenate([-p0 / delta, (limit - p0) / delta], 1)  # crossings of x, y = 0 and 2s
            near[~((near > 0) & (near < 1))] = np.nan
            pts, dl = densify(raw[sel], lens[d], n_first[d], out_pt | out_pt[nxt], near)
            r = np.repeat(d, dl)
            pieces.append((d, pts * wh32[r] + pad32[r], dl))
        if full.any():
            d = np.nonzero(full)[0]
            pts = resample(raw[full[pt_row]], lens[d], n_first[d])
            r = np.repeat(d, n_first[d])
            # denormalize + add_padding after the image's resample, then Instances.concatenate's to the longest
            pieces.append((d, resample(pts * wh32[r] + pad32[r], n_first[d], n_canvas[d]), n_canvas[d]))
        new_lens = lens.copy()
        for d, _, dl in pieces:
            new_lens[d] = dl
        new_off = np.zeros(len(rows) + 1, np.int64)
        np.cumsum(new_lens, out=new_off[1:])
        out = np.empty((int(new_off[-1]), 2), np.float32)
        out[ranges(new_off[:-1][~dense], lens[~dense])] = placed[~dense[pt_row]]
        for d, pts, dl in pieces:
            out[ranges(new_off[:-1][d], dl)] = np.clip(pts, 0, limit)  # Instances.clip to the mosaic canvas
        placed, lens = out, new_lens
        pt_row = np.repeat(np.arange(len(rows)), lens)
    # warp per canvas, as RandomPerspective.apply_segments: (n, 3) float32 @ M.T, then x / w, y / w
    pt_canvas = canvas[pt_row]
    cuts = np.flatnonzero(np.diff(pt_canvas)) + 1
    warped = np.empty_like(placed)
    for a, b in zip(np.concatenate([[0], cuts]), np.concatenate([cuts, [len(placed)]])):
        xy = np.ones((b - a, 3), np.float32)
        xy[:, :2] = placed[a:b]
        xy = xy @ M[pt_canvas[a]].astype(np.float32).T
        warped[a:b] = xy[:, :2] / xy[:, 2:3]
    boxes[has] = segment_boxes(warped, lens, size, size)
    return boxes, has
