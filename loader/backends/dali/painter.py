"""Paint plans in one DALI graph, on the GPU or with DALI's CPU operators (``device_id=None``).

Same plans, same pixels as the OpenCV painter (``backends/cpu/painter.py``):

* **Geometry.** Each tile's crop is shifted by -114 and warped on its own into the whole output
  (bilinear, zero border); the warps are summed and 114 is added back. Bilinear interpolation is
  linear, so this is exactly Ultralytics' "paste the tiles on a 114 canvas, then warp the canvas"
  for every affine plan: mosaic, single image, letterbox, flips, rotation, shear, in one code
  path and without a 2s x 2s canvas. Perspective is not affine: such plans stay on the OpenCV /
  torch painter (the loader routes them).
* **Mixup.** A second set of slots paints the partner plan; Ultralytics' truncating blend.
* **HSV.** OpenCV's 8-bit BGR->HSV in integer arithmetic with its own division tables
  (bit-exact, checked on all 2^24 colours), Ultralytics' LUTs as arithmetic, HSV->RGB in float32
  with the truncation OpenCV's vector path uses (1e-4 of pixels differ by one grey level).

Tiles are fed as whole decoded images (numpy arrays, or CUDA tensors straight from the DALI
decoder: no host round trip); the crop happens in the graph. Slots a plan does not use get a
1x1 grey tile placed outside the output, which adds nothing.
"""

from __future__ import annotations

import logging
import threading

import numpy as np

from ..._closing import Closing
from ...plan import Plan
from ..cpu.painter import FILL

__all__ = ["DaliPainter", "PainterConfig", "slot_params", "dali_matrix"]

LOG = logging.getLogger("loader.dali")

_SHIFT = 12
_SDIV = [0] + [int(np.round((255 << _SHIFT) / v)) for v in range(1, 256)]
_HDIV = [0] + [int(np.round((180 << _SHIFT) / (6 * v))) for v in range(1, 256)]
_HALF = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]], np.float64)
_UNHALF = np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1]], np.float64)
_AWAY = np.array([[1, 0, -8], [0, 1, -8]], np.float32)  # puts an unused slot's 1x1 tile outside the output


def dali_matrix(A: np.ndarray) -> np.ndarray:
    """OpenCV pixel-centre affine (centres at integers) -> DALI's (centres at +0.5), forward map, 2x3 float32."""
    A3 = np.vstack([np.asarray(A, np.float64)[:2], [0, 0, 1]])
    return (_HALF @ A3 @ _UNHALF)[:2].astype(np.float32)


def _translate(x: float, y: float) -> np.ndarray:
    return np.array([[1, 0, x], [0, 1, y], [0, 0, 1]], np.float64)


def slot_params(plan: Plan | None, n_slots: int) -> list[tuple[int, tuple[int, int], tuple[int, int], np.ndarray]]:
    """Per slot: (image index or -1, crop start (y, x), crop shape (h, w), DALI forward matrix).

    Slot ``k`` holds ``plan.tiles[k]``; the matrix maps the crop's pixels to output pixels
    (``plan.M`` after the tile's canvas offset). Empty crops and unused slots get index -1.
    """
    if plan is not None and plan.perspective:
        raise ValueError("perspective plans are not affine: paint them with the OpenCV or torch painter")
    tiles = [] if plan is None else plan.tiles
    if len(tiles) > n_slots:
        raise ValueError(f"plan has {len(tiles)} tiles, the pipeline {n_slots} slots")
    out = []
    for k in range(n_slots):
        t = tiles[k] if k < len(tiles) else None
        if t is None or t.crop[2] <= t.crop[0] or t.crop[3] <= t.crop[1]:
            out.append((-1, (0, 0), (1, 1), _AWAY))
            continue
        x1, y1, x2, y2 = t.crop
        A = plan.M.astype(np.float64) @ _translate(*t.at)
        out.append((t.index, (y1, x1), (y2 - y1, x2 - x1), dali_matrix(A)))
    return out


class PainterConfig(tuple):
    """(slots per plan, mixup slots on, HSV on, max batch, device): a pipeline is built per config."""

    def __new__(cls, slots: int, mix: bool, hsv: bool, max_batch: int, device: str):
        return super().__new__(cls, (int(slots), bool(mix), bool(hsv), int(max_batch), str(device)))

    slots = property(lambda self: self[0])
    mix = property(lambda self: self[1])
    hsv = property(lambda self: self[2])
    max_batch = property(lambda self: self[3])
    device = property(lambda self: self[4])


def _hsv_planes(fn, types, dmath, b, g, r):
    """int32 planes -> OpenCV's 8-bit (h, s, v), bit-exact (its fixed-point division tables)."""
    v = dmath.max(dmath.max(b, g), r)
    diff = v - dmath.min(dmath.min(b, g), r)
    sdiv = fn.lookup_table(v, keys=list(range(256)), values=_SDIV, dtype=types.INT32)
    hdiv = fn.lookup_table(diff, keys=list(range(256)), values=_HDIV, dtype=types.INT32)
    s = (diff * sdiv + (1 << (_SHIFT - 1))) // (1 << _SHIFT)
    vr = v == r
    vg = (v == g) & (v != r)
    num = vr * (g - b) + (vr == 0) * (vg * (b - r + 2 * diff) + (vg == 0) * (r - g + 4 * diff))
    off = 1024  # keeps the numerator positive so that // is a floor, as OpenCV's arithmetic shift
    h = (num * hdiv + (1 << (_SHIFT - 1)) + (off << _SHIFT)) // (1 << _SHIFT) - off
    return h + 180 * (h < 0), s, v


def _jitter_to_rgb(fn, types, dmath, h, s, v, gains):
    """Ultralytics' HSV tables applied as arithmetic, then OpenCV's HSV->RGB (float32, truncating)."""
    f = types.FLOAT
    hf = fn.cast(h, dtype=f) + gains[0] * 180.0
    hf = dmath.floor(hf - 180.0 * dmath.floor(hf / 180.0))
    sf = dmath.floor(dmath.clamp(fn.cast(s, dtype=f) * (gains[1] + 1.0), 0.0, 255.0))
    vf = dmath.floor(dmath.clamp(fn.cast(v, dtype=f) * (gains[2] + 1.0), 0.0, 255.0))
    hh, ss, vv = hf * (6.0 / 180.0), sf * (1.0 / 255.0), vf * (1.0 / 255.0)
    sector = dmath.floor(hh)
    fr = hh - sector
    p, q, t = vv * (1.0 - ss), vv * (1.0 - ss * fr), vv * (1.0 - ss * (1.0 - fr))
    masks = [sector == k for k in range(6)]

    def pick(per_sector):
        e = masks[0] * per_sector[0]
        for m, x in zip(masks[1:], per_sector[1:]):
            e = e + m * x
        return fn.cast(dmath.clamp(dmath.floor(e * 255.0), 0.0, 255.0), dtype=types.UINT8)

    # OpenCV's sector table, per output channel
    return pick([vv, q, p, p, t, vv]), pick([t, vv, vv, q, p, p]), pick([p, p, t, vv, vv, q])


def _build(cfg: PainterConfig, threads: int):
    from nvidia.dali import fn, pipeline_def, types
    import nvidia.dali.math as dmath

    gpu = cfg.device == "gpu"
    n = cfg.slots * (2 if cfg.mix else 1)

    @pipeline_def(batch_size=cfg.max_batch, num_threads=max(1, int(threads)), device_id=0 if gpu else None,
                  prefetch_queue_depth=1, exec_async=False, exec_pipelined=False)
    def pipe():
        size = fn.external_source(name="size", dtype=types.FLOAT)
        acc = []
        for k in range(n):
            tile = fn.external_source(name=f"t{k}", dtype=types.UINT8, layout="HWC",
                                      device="gpu" if gpu else "cpu", no_copy=gpu)
            start = fn.external_source(name=f"s{k}", dtype=types.INT32)
            shape = fn.external_source(name=f"h{k}", dtype=types.INT32)
            mat = fn.external_source(name=f"m{k}", dtype=types.FLOAT)
            crop = fn.slice(tile, start=start, shape=shape, axes=[0, 1])
            w = fn.warp_affine(fn.cast(crop, dtype=types.FLOAT) - float(FILL), matrix=mat, size=size,
                               fill_value=0.0, interp_type=types.INTERP_LINEAR, inverse_map=False)
            acc.append(w)
        main = acc[0]
        for w in acc[1:cfg.slots]:
            main = main + w
        img = dmath.floor(main + (FILL + 0.5))
        if cfg.mix:  # Ultralytics: (im * r + im2 * (1 - r)).astype(uint8) on the rounded images
            other = acc[cfg.slots]
            for w in acc[cfg.slots + 1:]:
                other = other + w
            r = fn.external_source(name="mix_r", dtype=types.FLOAT)
            img = dmath.floor(img * r + dmath.floor(other + (FILL + 0.5)) * (1.0 - r))
        img = dmath.clamp(img, 0.0, 255.0)
        if not cfg.hsv:
            return fn.cast(fn.stack(img[:, :, 2], img[:, :, 1], img[:, :, 0], axis=2), dtype=types.UINT8)
        gains = fn.external_source(name="hsv", dtype=types.FLOAT)
        bgr = fn.cast(img, dtype=types.INT32)
        h, s, v = _hsv_planes(fn, types, dmath, bgr[:, :, 0], bgr[:, :, 1], bgr[:, :, 2])
        return fn.stack(*_jitter_to_rgb(fn, types, dmath, h, s, v, gains), axis=2)

    p = pipe()
    p.build()
    return p


class DaliPainter(Closing):
    """``paint(plans, load, out)``: RGB uint8 (B, H, W, 3) for affine plans of one output size.

    ``load(index)`` returns the image at load size (BGR; numpy, or a CUDA tensor on ``gpu``).
    Plans that keep BGR (Ultralytics' ``bgr`` hyp) get their channels swapped back after the graph.
    One pipeline per :class:`PainterConfig`; ``paint`` is serialised (a DALI pipeline runs one
    iteration at a time).
    """

    def __init__(self, cfg: PainterConfig, threads: int = 2):
        self.cfg = cfg
        self._lock = threading.Lock()
        self._pipe = _build(cfg, threads)
        self._grey = self._to_device(np.full((1, 1, 3), FILL, np.uint8))
        self.runs = 0
        LOG.info("DALI painter on %s: %d slots%s%s, batch <= %d", cfg.device, cfg.slots, " + mixup" if cfg.mix else "",
                 ", HSV" if cfg.hsv else "", cfg.max_batch)

    def _to_device(self, a):
        if self.cfg.device != "gpu":
            return np.ascontiguousarray(a)
        import torch

        if isinstance(a, torch.Tensor):
            return a.cuda().contiguous()
        return torch.from_numpy(np.ascontiguousarray(a)).cuda()

    def feeds(self, plans: list[Plan], load) -> dict[str, list]:
        """The external-source inputs for ``plans`` (exposed for tests)."""
        cfg = self.cfg
        if not plans or len(plans) > cfg.max_batch:
            raise ValueError(f"{len(plans)} plans for a pipeline of batch <= {cfg.max_batch}")
        H, W = plans[0].out_hw
        if any(p.out_hw != (H, W) for p in plans):
            raise ValueError("plans of one batch must share the output size")
        feeds: dict[str, list] = {"size": [np.array([H, W], np.float32)] * len(plans)}
        groups = [[p for p in plans]]
        if cfg.mix:
            groups.append([p.mix for p in plans])
            feeds["mix_r"] = [np.array(p.mix_r if p.mix is not None else 1.0, np.float32) for p in plans]
        elif any(p.mix is not None for p in plans):
            raise ValueError("mixup plan for a pipeline without mixup slots")
        if cfg.hsv:
            feeds["hsv"] = [np.asarray(p.hsv if p.hsv is not None else np.zeros(3), np.float32) for p in plans]
        for g, group in enumerate(groups):
            per_plan = [slot_params(p, cfg.slots) for p in group]
            for k in range(cfg.slots):
                s = g * cfg.slots + k
                feeds[f"t{s}"] = [self._grey if pp[k][0] < 0 else self._to_device(load(pp[k][0])) for pp in per_plan]
                feeds[f"s{s}"] = [np.array(pp[k][1], np.int32) for pp in per_plan]
                feeds[f"h{s}"] = [np.array(pp[k][2], np.int32) for pp in per_plan]
                feeds[f"m{s}"] = [pp[k][3] for pp in per_plan]
        return feeds

    def paint(self, plans: list[Plan], load, out) -> None:
        """Paint into ``out``: a (B, H, W, 3) uint8 numpy array, or a CUDA tensor (gpu: no host round trip)."""
        feeds = self.feeds(plans, load)
        with self._lock:
            if self._pipe is None:
                raise RuntimeError("DALI painter is closed")
            for name, data in feeds.items():
                self._pipe.feed_input(name, data)
            (res,) = self._pipe.run()
            self.runs += 1
            on_cuda = getattr(out, "is_cuda", False)
            if on_cuda:
                import torch
                from nvidia.dali.plugin.pytorch import feed_ndarray

                stream = torch.cuda.current_stream()
                feed_ndarray(res.as_tensor(), out[:len(plans)], cuda_stream=stream)
                stream.synchronize()  # this thread only: the fed tiles may be dropped (and their memory reused)
            else:
                out[:len(plans)] = (res.as_cpu() if self.cfg.device == "gpu" else res).as_array()
        for j, p in enumerate(plans):
            if p.keep_bgr:
                out[j] = out[j].flip(-1) if on_cuda else out[j][..., ::-1].copy()

    def close(self) -> None:
        with self._lock:
            pipe, self._pipe = self._pipe, None
        del pipe
