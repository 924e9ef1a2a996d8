"""Paint plans with one DALI graph, on the GPU or with DALI's CPU operators (``device_id=None``).

Same plans, same pixels as the OpenCV painter (``kernels/opencv.py``), done the way
Ultralytics does it, batched:

* **Canvas.** ``fn.multi_paste`` builds, per output, the part of the mosaic canvas the output
  sees: a 114 grey fill, then each tile's visible crop (one input batch holds every tile of the
  batch, mixup partners' too, and one grey image; pastes pick from it by index, so a tile never
  moves before it is pasted).
* **Warp.** ``fn.warp_affine`` with the plan's matrix (flips, scale, translation, rotation,
  shear), bilinear, 114 border, uint8 -> uint8. Perspective is not affine: such plans stay on
  the OpenCV / torch painter (the DALI engine routes them).
* **Colour.** Mixup's truncating blend, Ultralytics' HSV tables with OpenCV's 8-bit conversions,
  and the RGB order run on the graph's output where it lies: torch ops on the GPU, a few images
  at a time (``torch_paint.colour``), OpenCV in host memory (``opencv.finish``). Written
  as DALI arithmetic they took ~100 graph nodes and 325 MiB per 896 px image (DALI keeps every
  node's output for the whole batch); torch on the CPU took 145 ms per image, OpenCV 3.5 (ad-hoc
  runs on 2 cores, psutil RSS and wall time; no script in benchmarks/).

Peak memory per 896 px output: the canvas (up to 2x2 outputs, uint8) and the output (24 MiB per
image measured ad hoc, RSS at batch 16 in CPU-only mode). Tiles are
fed as whole decoded images (numpy, or CUDA tensors straight from the DALI decoder: no host
round trip).
"""

from __future__ import annotations

import logging
import threading

import numpy as np

from .._closing import Closing
from ..device import device_id_of
from ..plan import FILL, Plan, translate, visible_window, window_pastes

__all__ = ["DaliPainter", "PainterConfig", "dali_matrix", "canvas_feeds"]

LOG = logging.getLogger("loader.dali")

_HALF = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]], np.float64)
_UNHALF = np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1]], np.float64)
_COLOUR_CHUNK = 8  # images per torch colour step: bounds its temporaries (~0.4 GiB at 896 px)


def dali_matrix(A: np.ndarray) -> np.ndarray:
    """OpenCV pixel-centre affine (centres at integers) -> DALI's (centres at +0.5), forward map, 2x3 float32."""
    A3 = np.vstack([np.asarray(A, np.float64)[:2], [0, 0, 1]])
    return (_HALF @ A3 @ _UNHALF)[:2].astype(np.float32)


def canvas_feeds(canvases: list[Plan | None], n: int, tile_slot, grey: int) -> dict[str, list[np.ndarray]]:
    """multi_paste + warp_affine arguments for ``n`` samples; sample j paints ``canvases[j]`` (None or past the
    end: a 1x1 dummy). ``tile_slot(j, k)``: batch index of tile k of canvas j; ``grey``: index of the grey image."""
    f: dict[str, list] = {k: [] for k in ("ids", "in_anchors", "shapes", "out_anchors", "canvas", "matrix", "size")}
    for j in range(n):
        plan = canvases[j] if j < len(canvases) else None
        if plan is not None and plan.perspective:
            raise ValueError("perspective plans are not affine: paint them with the OpenCV or torch painter")
        window = visible_window(plan) if plan is not None else None
        if window is None:  # nothing of the canvas visible: a 1x1 grey canvas, so all grey (or a 1x1 dummy)
            hw = plan.out_hw if plan is not None else (1, 1)
            f["ids"].append(np.array([grey], np.int32))
            f["in_anchors"].append(np.zeros((1, 2), np.int32))
            f["shapes"].append(np.ones((1, 2), np.int32))
            f["out_anchors"].append(np.zeros((1, 2), np.int32))
            f["canvas"].append(np.array([1, 1], np.int32))
            f["matrix"].append(dali_matrix(np.eye(3)))
            f["size"].append(np.array(hw, np.float32))
            continue
        cx0, cy0, cx1, cy1 = window
        pastes = list(window_pastes(plan, window))
        f["ids"].append(np.array([grey] + [tile_slot(j, k) for k, *_ in pastes], np.int32))
        f["in_anchors"].append(np.array([(0, 0)] + [p[1] for p in pastes], np.int32).reshape(-1, 2))
        f["shapes"].append(np.array([(cy1 - cy0, cx1 - cx0)] + [p[2] for p in pastes], np.int32).reshape(-1, 2))
        f["out_anchors"].append(np.array([(0, 0)] + [p[3] for p in pastes], np.int32).reshape(-1, 2))
        f["canvas"].append(np.array([cy1 - cy0, cx1 - cx0], np.int32))
        f["matrix"].append(dali_matrix(plan.M @ translate(cx0, cy0)))
        f["size"].append(np.array(plan.out_hw, np.float32))
    return f


class PainterConfig(tuple):
    """(tile slots per plan, mixup on, max batch, device): a pipeline is built per config."""

    def __new__(cls, slots: int, mix: bool, max_batch: int, device: str):
        return super().__new__(cls, (int(slots), bool(mix), int(max_batch), str(device)))

    slots = property(lambda self: self[0])
    mix = property(lambda self: self[1])
    max_batch = property(lambda self: self[2])
    device = property(lambda self: self[3])

    @property
    def graph_batch(self) -> int:
        """Samples per DALI run: every tile of every canvas (mixup partners included) and the grey image."""
        return self.slots * self.max_batch * (2 if self.mix else 1) + 1


def _build(cfg: PainterConfig, threads: int, device_id: int | None):
    from nvidia.dali import fn, pipeline_def, types

    gpu = cfg.device == "gpu"

    @pipeline_def(batch_size=cfg.graph_batch, num_threads=max(1, int(threads)), device_id=device_id if gpu else None,
                  prefetch_queue_depth=1, exec_async=False, exec_pipelined=False)
    def pipe():
        tiles = fn.external_source(name="tiles", dtype=types.UINT8, layout="HWC", device="gpu" if gpu else "cpu",
                                   no_copy=gpu)
        arg = {k: fn.external_source(name=k, dtype=types.INT32) for k in
               ("ids", "in_anchors", "shapes", "out_anchors", "canvas")}
        canvas = fn.multi_paste(tiles, in_ids=arg["ids"], in_anchors=arg["in_anchors"], shapes=arg["shapes"],
                                out_anchors=arg["out_anchors"], output_size=arg["canvas"])
        matrix = fn.external_source(name="matrix", dtype=types.FLOAT)
        size = fn.external_source(name="size", dtype=types.FLOAT)
        return fn.warp_affine(canvas, matrix=matrix, size=size, fill_value=float(FILL),
                              interp_type=types.INTERP_LINEAR, inverse_map=False)

    p = pipe()
    p.build()
    return p


class DaliPainter(Closing):
    """``paint(plans, load, out)``: (B, H, W, 3) uint8 for affine plans of one output size.

    ``load(index)`` returns the image at load size (BGR; numpy, or a CUDA tensor on ``gpu``).
    One pipeline per :class:`PainterConfig`; ``paint`` is serialised (a DALI pipeline runs one
    iteration at a time). ``device_id``: the CUDA device (default: the caller's current one).
    """

    def __init__(self, cfg: PainterConfig, threads: int = 2, device_id: int | None = None):
        self.cfg = cfg
        self._lock = threading.Lock()
        self.device_id = None
        if cfg.device == "gpu":
            self.device_id = device_id_of(device_id)
        self._pipe = _build(cfg, threads, self.device_id)
        self._grey_img = None
        LOG.info("DALI painter on %s: %d tile slots%s, batch <= %d (%d graph samples)", cfg.device, cfg.slots,
                 " + mixup" if cfg.mix else "", cfg.max_batch, cfg.graph_batch)

    def _to_device(self, a):
        if self.cfg.device != "gpu":
            return np.ascontiguousarray(a)
        import torch

        dev = torch.device("cuda", self.device_id)
        if isinstance(a, torch.Tensor):
            return a.to(dev).contiguous()
        return torch.from_numpy(np.ascontiguousarray(a)).to(dev)

    def _grey(self, hw: tuple[int, int]):
        """A 114 image at least ``hw``: the canvas background every output pastes first (one per batch)."""
        g = self._grey_img
        if g is None or g.shape[0] < hw[0] or g.shape[1] < hw[1]:
            h = max(hw[0], 0 if g is None else g.shape[0])
            w = max(hw[1], 0 if g is None else g.shape[1])
            self._grey_img = g = self._to_device(np.full((h, w, 3), FILL, np.uint8))
        return g

    def feeds(self, plans: list[Plan], load) -> dict[str, list]:
        """The external-source inputs for ``plans`` (exposed for tests)."""
        cfg = self.cfg
        B = len(plans)
        if not plans or B > cfg.max_batch:
            raise ValueError(f"{B} plans for a pipeline of batch <= {cfg.max_batch}")
        if any(p.out_hw != plans[0].out_hw for p in plans):
            raise ValueError("plans of one batch must share the output size")
        canvases: list[Plan | None] = list(plans)
        if cfg.mix:
            canvases += [p.mix for p in plans]
        elif any(p.mix is not None for p in plans):
            raise ValueError("mixup plan for a pipeline without mixup slots")
        if any(c is not None and len(c.tiles) > cfg.slots for c in canvases):
            raise ValueError(f"a plan has more tiles than the pipeline's {cfg.slots} slots")
        n = cfg.graph_batch
        tiles = [None] * n
        for j, c in enumerate(canvases):
            for k, t in enumerate(c.tiles if c is not None else ()):
                tiles[j * cfg.slots + k] = load(t.index)
        grey = n - 1
        hw = np.max([c.canvas_hw for c in canvases if c is not None], 0)
        tiles[grey] = self._grey((int(hw[0]), int(hw[1])))
        # slots no tile uses hold the grey image too (nothing is pasted from them)
        tiles = [tiles[grey] if t is None else self._to_device(t) for t in tiles]
        f = canvas_feeds(canvases, n, lambda j, k: j * cfg.slots + k, grey)
        f["tiles"] = tiles
        return f

    def paint(self, plans: list[Plan], load, out) -> None:
        """Paint into ``out``: (B, H, W, 3) uint8, a numpy array (colour by OpenCV) or a tensor (colour by torch
        ops on its device; a CUDA tensor on ``gpu``: no host round trip)."""
        import torch

        from .torch_paint import colour, mix_blend

        feeds = self.feeds(plans, load)
        B = len(plans)
        on_cuda = bool(getattr(out, "is_cuda", False))
        dst = out if torch.is_tensor(out) else torch.from_numpy(out)
        with self._lock:
            if self._pipe is None:
                raise RuntimeError("DALI painter is closed")
            for name, data in feeds.items():
                self._pipe.feed_input(name, data)
            (res,) = self._pipe.run()
            mixed = [j for j, p in enumerate(plans) if p.mix is not None] if self.cfg.mix else None
            partners = _copy_out(res, dst, B, mixed, on_cuda, self.cfg.device == "gpu")
        del feeds
        if not torch.is_tensor(out):  # numpy: OpenCV's own kernels (the reference), image by image
            from .opencv import finish

            for j, p in enumerate(plans):
                finish(p, out[j], None if partners is None else partners[j].numpy())
            return
        for lo in range(0, B, _COLOUR_CHUNK):
            hi = min(lo + _COLOUR_CHUNK, B)
            x = dst[lo:hi]
            if partners is not None:
                r = torch.tensor([p.mix_r if p.mix is not None else 1.0 for p in plans[lo:hi]], device=x.device)
                x = mix_blend(x, partners[lo:hi], r.view(-1, 1, 1, 1))
            dst[lo:hi] = colour(x, plans[lo:hi])

    @property
    def closed(self) -> bool:
        return self._pipe is None

    def close(self) -> None:
        with self._lock:
            pipe, self._pipe = self._pipe, None
            self._grey_img = None
        del pipe


def _copy_out(res, dst, B: int, mixed: list[int] | None, on_cuda: bool, gpu: bool):
    """The first B graph outputs into ``dst``; for ``mixed`` samples, their mixup partner's canvas (output B + j)
    into a new tensor (None without mixup slots; the partners of unmixed samples are 1x1 dummies, not copied:
    their blend weight is 0)."""
    import torch

    partners = torch.empty_like(dst[:B]) if mixed is not None else None
    pairs = [(j, dst[j]) for j in range(B)] + [(B + j, partners[j]) for j in mixed or ()]
    if on_cuda:
        from .dali_decode import feed_to_torch

        feed_to_torch([res[k] for k, _ in pairs], [d for _, d in pairs])
        return partners
    cpu = res.as_cpu() if gpu else res
    for k, d in pairs:
        d[...] = torch.from_numpy(np.asarray(cpu[k]))
    return partners
