"""Paint a batch of plans with one DALI graph, on the GPU or with DALI's CPU operators (``device_id=None``).

Same plans, same pixels as the OpenCV painter (``kernels/opencv.py``), done the way
Ultralytics does it, batched:

* **Canvas.** ``fn.multi_paste`` builds, per output, the part of the mosaic canvas the output
  sees: a 114 grey fill, then each tile's visible crop. The graph's input batch holds every distinct
  tile image of the batch once (mixup partners' too) and one grey image; pastes pick from it by index,
  so a tile never moves before it is pasted. multi_paste gives as many outputs as it has inputs: the
  canvases are the first rows, the rest are 1x1 and cost nothing.
* **Warp.** ``fn.warp_affine`` with the plan's matrix (flips, scale, translation, rotation,
  shear), bilinear, 114 border, uint8 -> uint8. Perspective is not affine: such plans stay on
  the OpenCV / torch painter (the DALI engine routes them).
* **Colour.** Mixup's truncating blend, Ultralytics' HSV tables with OpenCV's 8-bit conversions,
  and the RGB order run on the graph's output where it lies: torch ops over large chunks of the
  batch on the GPU (``torch_paint.colour``, the batch's tables uploaded once), OpenCV in host
  memory (``opencv.finish``). Written as DALI arithmetic they took ~100 graph nodes and 325 MiB per
  896 px image (DALI keeps every node's output for the whole batch); torch on the CPU took 145 ms per
  image, OpenCV 3.5 (ad-hoc runs on 2 cores, psutil RSS and wall time; no script in benchmarks/).

Every argument input is one array for the whole batch (``canvas_feeds``: no per-sample Python between
"plans ready" and the run; ``benchmarks/host_path.py`` times it). The pipelines use DALI's dynamic
executor: a failed run leaves the pipeline usable, and outputs stay valid after the next run.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace

import numpy as np

from .._closing import Closing
from ..device import device_id_of
from ..plan import FILL, PlanBatch, paste_regions, translate, visible_windows

__all__ = ["DaliPainter", "PainterConfig", "dali_matrix", "dali_matrices", "canvas_feeds", "ARGS"]

LOG = logging.getLogger("loader.dali")

_HALF = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]], np.float64)
_UNHALF = np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1]], np.float64)
COLOUR_CHUNK = 32  # images per torch colour step on a GPU: bounds its temporaries (~1.5 GiB at 896 px)
ARGS = ("ids", "in_anchors", "shapes", "out_anchors", "canvas", "matrix", "size")


def dali_matrices(A: np.ndarray) -> np.ndarray:
    """OpenCV pixel-centre affines (centres at integers) -> DALI's (centres at +0.5), forward maps:
    (C, 3, 3) -> (C, 2, 3) float32."""
    return (_HALF @ np.asarray(A, np.float64) @ _UNHALF)[:, :2].astype(np.float32)


def dali_matrix(A: np.ndarray) -> np.ndarray:
    A3 = np.vstack([np.asarray(A, np.float64)[:2], [0, 0, 1]])
    return dali_matrices(A3[None])[0]


def canvas_feeds(canvases: PlanBatch, n: int, tile_slots: np.ndarray, grey: int) -> dict[str, np.ndarray]:
    """multi_paste + warp_affine arguments for ``n`` graph samples, each one array (n, ...) for the whole run.

    Sample ``c < len(canvases)`` paints canvas ``c``; later samples are 1x1 and paste nothing. ``tile_slots``:
    the graph input of each of ``canvases``' tiles (its flat tile order); ``grey``: the grey image's input.
    Pastes per sample: the grey, then one per tile position (size 0 where the tile is not visible), so every
    sample has the same number; a canvas that sees nothing is a 1x1 grey canvas (all grey after the warp).
    """
    if canvases.perspective:
        raise ValueError("perspective plans are not affine: paint them with the OpenCV or torch painter")
    C = len(canvases)
    per = np.diff(canvases.tile_off)
    P = 1 + (int(per.max()) if C and len(per) else 0)
    win, vis = visible_windows(canvases.M, canvases.canvas_hw, canvases.out_hw, False, per > 0)
    f = {"ids": np.full((n, P), grey, np.int32), "in_anchors": np.zeros((n, P, 2), np.int32),
         "shapes": np.zeros((n, P, 2), np.int32), "out_anchors": np.zeros((n, P, 2), np.int32),
         "canvas": np.ones((n, 2), np.int32), "matrix": np.tile(dali_matrix(np.eye(3)), (n, 1, 1)),
         "size": np.ones((n, 2), np.float32)}
    wh = np.stack([win[:, 3] - win[:, 1], win[:, 2] - win[:, 0]], 1)
    f["canvas"][:C] = np.where(vis[:, None], wh, 1)
    f["shapes"][:C, 0] = f["canvas"][:C]  # the grey first: the whole window
    f["size"][:C] = canvases.out_hw
    A = canvases.M @ np.stack([translate(x, y) for x, y in win[:, :2]]) if C else np.zeros((0, 3, 3))
    f["matrix"][:C] = np.where(vis[:, None, None], dali_matrices(A), f["matrix"][:C])
    t_c = np.repeat(np.arange(C), per)
    k = np.arange(len(t_c)) - canvases.tile_off[t_c]
    src, hw, dst, ok = paste_regions(canvases.tile_crop, canvases.tile_at, win[t_c])
    ok &= vis[t_c]
    c, k = t_c[ok], 1 + k[ok]
    f["ids"][c, k] = tile_slots[ok]
    f["in_anchors"][c, k], f["shapes"][c, k], f["out_anchors"][c, k] = src[ok], hw[ok], dst[ok]
    # DALI's GPU multi_paste is not in-order pasting: it cuts the output into cells at every region's start and
    # end and fills each cell from the highest-index region open there; a region of size 0 never closes, so one
    # at (0, 0) would win every cell after it (grey over the tiles). At the output's far corner it opens nowhere
    # (dali/kernels/imgproc/paste/paste_gpu.h; tests/unit/kernels/test_paste_sweep.py models the sweep).
    empty = (f["shapes"] <= 0).any(-1)
    f["shapes"][empty] = 0
    f["out_anchors"] = np.where(empty[..., None], f["canvas"][:, None, :], f["out_anchors"])
    return f


@dataclass(frozen=True)
class PainterConfig:
    """A pipeline is built per config: tile slots per plan, mixup on, max batch, device ("gpu" or "cpu")."""

    slots: int
    mix: bool
    max_batch: int
    device: str

    @property
    def graph_batch(self) -> int:
        """Most samples in one DALI run: every tile of every canvas (mixup partners included) and the grey."""
        return self.slots * self.max_batch * (2 if self.mix else 1) + 1


def _build(cfg: PainterConfig, threads: int, device_id: int | None):
    from nvidia.dali import fn, pipeline_def, types

    gpu = cfg.device == "gpu"

    @pipeline_def(batch_size=cfg.graph_batch, num_threads=max(1, int(threads)), device_id=device_id if gpu else None,
                  prefetch_queue_depth=1, exec_dynamic=True)
    def pipe():
        # no_copy: the fed tiles are the source's own immutable images, alive until the run returns (DALI
        # still gathers them into one batch during the run; fed with a copy, 512 tiles took 130 ms to feed here)
        tiles = fn.external_source(name="tiles", dtype=types.UINT8, layout="HWC", device="gpu" if gpu else "cpu",
                                   no_copy=True)
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


def _concat(a: PlanBatch, b: PlanBatch) -> PlanBatch:
    """The canvases of ``a`` then ``b`` (tiles renumbered), as one batch of canvases."""
    return PlanBatch(out_hw=a.out_hw, index=np.concatenate([a.index, b.index]),
                     canvas_hw=np.concatenate([a.canvas_hw, b.canvas_hw]), M=np.concatenate([a.M, b.M]),
                     tile_off=np.concatenate([a.tile_off, a.tile_off[-1] + b.tile_off[1:]]),
                     tile_index=np.concatenate([a.tile_index, b.tile_index]),
                     tile_hw=np.concatenate([a.tile_hw, b.tile_hw]), tile_crop=np.concatenate([a.tile_crop, b.tile_crop]),
                     tile_at=np.concatenate([a.tile_at, b.tile_at]), perspective=a.perspective or b.perspective)


class DaliPainter(Closing):
    """``paint(batch, load, out)``: (B, H, W, 3) uint8 for a ``PlanBatch`` (or list of plans) of affine plans.

    ``load(index)`` returns the image at load size (BGR; numpy, or a CUDA tensor on ``gpu``).
    One pipeline per :class:`PainterConfig`; runs are serialised (a DALI pipeline runs one
    iteration at a time). ``device_id``: the CUDA device (default: the caller's current one).
    """

    def __init__(self, cfg: PainterConfig, threads: int = 2, device_id: int | None = None, times=None):
        """``times``: a ``loader.stats.StageTimes`` that gets the "feed" (handing inputs over) and "graph" (DALI's
        run) stages of every run."""
        import contextlib

        self.cfg = cfg
        self._times = times or (lambda stage: contextlib.nullcontext())
        self._lock = threading.Lock()
        self.device_id = device_id_of(device_id) if cfg.device == "gpu" else None
        self._pipe = _build(cfg, threads, self.device_id)
        self._grey_img = self._dummy = None
        self._made = threading.Lock()  # painter threads build feeds at the same time: device constants made once
        LOG.info("DALI painter on %s: %d tile slots%s, batch <= %d (<= %d graph samples)", cfg.device, cfg.slots,
                 " + mixup" if cfg.mix else "", cfg.max_batch, cfg.graph_batch)

    def _to_device(self, a):
        if self.cfg.device != "gpu":
            return np.ascontiguousarray(a)
        import torch

        dev = torch.device("cuda", self.device_id)
        if isinstance(a, torch.Tensor):
            return a.to(dev, non_blocking=True).contiguous()
        return torch.from_numpy(np.ascontiguousarray(a)).to(dev, non_blocking=True)

    def _grey(self, hw: tuple[int, int]):
        """A 114 image at least ``hw``: the canvas background every output pastes first (one per batch)."""
        with self._made:
            g = self._grey_img
            if g is None or g.shape[0] < hw[0] or g.shape[1] < hw[1]:
                h = max(hw[0], 0 if g is None else g.shape[0])
                w = max(hw[1], 0 if g is None else g.shape[1])
                self._grey_img = g = self._to_device(np.full((h, w, 3), FILL, np.uint8))
            return g

    def _check(self, batch: PlanBatch) -> PlanBatch:
        cfg, B = self.cfg, len(batch)
        if not B or B > cfg.max_batch:
            raise ValueError(f"{B} plans for a pipeline of batch <= {cfg.max_batch}")
        mixed = batch.has_mix
        if mixed.any() and not cfg.mix:
            raise ValueError("mixup plan for a pipeline without mixup slots")
        canvases = _concat(batch, batch.mix) if cfg.mix and batch.mix is not None else batch
        if len(canvases.tile_off) > 1 and np.diff(canvases.tile_off).max() > cfg.slots:
            raise ValueError(f"a plan has more tiles than the pipeline's {cfg.slots} slots")
        return canvases

    def feeds(self, batch, load) -> dict:
        """The external-source inputs for a batch: one array per argument, plus the list of tile images."""
        batch = batch if isinstance(batch, PlanBatch) else PlanBatch.from_plans(batch)
        canvases = self._check(batch)
        images = np.unique(canvases.tile_index)
        grey = len(images)
        n = max(grey + 1, len(canvases))
        f = canvas_feeds(canvases, n, np.searchsorted(images, canvases.tile_index).astype(np.int32), grey)
        hw = canvases.canvas_hw.max(0)
        tiles = [self._to_device(load(int(i))) for i in images]
        tiles.append(self._grey((int(hw[0]), int(hw[1]))))
        if n > len(tiles):  # fewer distinct images than canvases: inputs nothing pastes from
            with self._made:
                if self._dummy is None:
                    self._dummy = self._to_device(np.full((1, 1, 3), FILL, np.uint8))
            tiles += [self._dummy] * (n - len(tiles))
        f["tiles"] = tiles
        return f

    def feed(self, feeds: dict) -> None:
        """Hand the inputs of one run to the pipeline (call ``run(None)`` next, under the same caller)."""
        if self._pipe is None:
            raise RuntimeError("DALI painter is closed")
        for name in ("tiles", *ARGS):
            self._pipe.feed_input(name, feeds[name])

    def run(self, feeds: dict | None, cuda_stream=None):
        """Feed (unless ``feeds`` is None: fed already) and run the graph once; the warped canvases (a DALI
        TensorList, valid after later runs). ``cuda_stream`` (a ``torch.cuda.Stream``): outputs bound to it
        instead of synchronised with the host."""
        with self._lock:
            if feeds is not None:
                with self._times("feed"):
                    self.feed(feeds)
            if self._pipe is None:
                raise RuntimeError("DALI painter is closed")
            with self._times("graph"):
                (res,) = self._pipe.run(cuda_stream) if cuda_stream is not None else self._pipe.run()
            return res

    def paint(self, batch, load, out, cuda_stream=None) -> None:
        """Paint into ``out``: (B, H, W, 3) uint8, a numpy array (colour by OpenCV) or a tensor (colour by torch
        ops on its device; a CUDA tensor on ``gpu``: no host round trip, work on ``cuda_stream``)."""
        batch = batch if isinstance(batch, PlanBatch) else PlanBatch.from_plans(batch)
        res = self.run(self.feeds(batch, load), cuda_stream)
        self.finish(batch, res, out)

    def finish(self, batch: PlanBatch, res, out) -> None:
        """The graph's output into ``out``, with mixup, HSV and the channel order."""
        import torch

        B = len(batch)
        mixed = np.nonzero(batch.has_mix)[0] if self.cfg.mix else np.zeros(0, np.int64)
        if not torch.is_tensor(out):  # numpy: OpenCV's own kernels (the reference), image by image
            from .opencv import finish

            cpu = res.as_cpu() if self.cfg.device == "gpu" else res
            for j in range(B):
                out[j] = np.asarray(cpu[j])
                plan = batch.plan(j)
                if plan.cut is not None:  # no CutMix step in the graph: the engine paints such samples again
                    plan = replace(plan, cut=None, cut_area=None, cut_boxes=0)
                finish(plan, out[j], np.asarray(cpu[B + j]) if batch.has_mix[j] else None)
            return
        from .torch_paint import colour, colour_tables, mix_blend

        partners = _copy_out(res, out, B, mixed)
        mix_r = np.where(batch.has_mix, batch.mix_r, 1.0) if partners is not None else None
        tables = colour_tables(batch.hsv, batch.keep_bgr, out.device, mix_r)  # one upload, no host sync
        for lo in range(0, B, COLOUR_CHUNK):
            hi = min(lo + COLOUR_CHUNK, B)
            x = out[lo:hi]
            if partners is not None:
                x = mix_blend(x, partners[lo:hi], tables.mix[lo:hi].view(-1, 1, 1, 1))
            out[lo:hi] = colour(x, tables.chunk(lo, hi))

    @property
    def closed(self) -> bool:
        return self._pipe is None

    def close(self) -> None:
        with self._lock:
            pipe, self._pipe = self._pipe, None
            self._grey_img = self._dummy = None
        self._made = threading.Lock()  # painter threads build feeds at the same time: device constants made once
        del pipe


def _sample_to_torch(t):
    """One DALI sample as a torch tensor: a zero-copy DLPack view (GPU, dynamic executor), or a host array."""
    import torch

    if hasattr(t, "__dlpack__") and type(t).__name__ == "TensorGPU":
        return torch.from_dlpack(t)
    return torch.from_numpy(np.asarray(t))


def _copy_out(res, dst, B: int, mixed: np.ndarray):
    """The first B graph outputs into ``dst``; for ``mixed`` samples, their mixup partner's canvas (output B + j)
    into a new tensor (None without mixup; partners of unmixed samples are 1x1: their blend weight is 0)."""
    import torch

    partners = torch.empty_like(dst[:B]) if len(mixed) else None
    for j in range(B):
        dst[j].copy_(_sample_to_torch(res[j]), non_blocking=True)
    for j in mixed:
        partners[j].copy_(_sample_to_torch(res[B + int(j)]), non_blocking=True)
    return partners
