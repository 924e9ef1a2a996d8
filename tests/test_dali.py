"""The DALI stage: batched decode + resize in DALI (CPU-only mode here; GPU tests skip without CUDA)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from loader import DetectionLoader

pytest.importorskip("nvidia.dali")
S = 320


def _cuda() -> bool:
    return torch.cuda.is_available()


def _batches(data, backend, **kw):
    with DetectionLoader(data, imgsz=S, batch_size=6, workers=2, seed=4, backend=backend, index_cache=False,
                         **kw) as dl:
        out = [{k: (v.clone() if torch.is_tensor(v) else v) for k, v in b.items()} for b in dl]
        stats = {"decodes": dl.images.misses, "fallbacks": dl.dali.fallbacks if dl.dali else None,
                 "device": dl.dali_device}
    return out, stats


def _mads(cpu, dali) -> list[float]:
    mads = []
    for a, b in zip(cpu, dali, strict=True):
        assert a["im_file"] == b["im_file"]
        assert torch.equal(a["bboxes"], b["bboxes"]) and torch.equal(a["cls"], b["cls"]), "boxes come from the plan"
        assert a["ratio_pad"] == b["ratio_pad"] and a["img"].shape == b["img"].shape
        for k in range(len(a["im_file"])):
            mads.append((a["img"][k].int() - b["img"][k].cpu().int()).abs().float().mean().item())
    return mads


HYPS = [None, {"mixup": 0.3, "degrees": 10.0, "shear": 2.0, "flipud": 0.5}]


@pytest.mark.parametrize("hyp", HYPS, ids=["default", "mixup-rotation-shear-flipud"])
def test_dali_cpu_only_matches_the_cpu_engine(demo_set, hyp):
    cpu, _ = _batches(demo_set, "cpu", hyp=hyp)
    dali, st = _batches(demo_set, "dali", hyp=hyp)
    assert st["device"] == ("gpu" if _cuda() else "cpu") and st["fallbacks"] == 0
    assert st["decodes"] <= 1.1 * 24, "mosaic partners come from the decoded-tile buffer"
    mads = _mads(cpu, dali)
    print("per-image MAD, DALI vs CPU engine: max", round(max(mads), 3), "median", round(float(np.median(mads)), 3))
    assert max(mads) <= 3.0
    # with the same (full) JPEG decode on both sides only the painting differs: much closer
    mads = _mads(_batches(demo_set, "cpu", hyp=hyp, reduced_decode=False)[0],
                 _batches(demo_set, "dali", hyp=hyp, reduced_decode=False)[0])
    print("same decode: max", round(max(mads), 3))
    assert max(mads) <= 1.0


@pytest.mark.parametrize("augment", [False, True], ids=["val", "train"])
def test_dali_on_awkward_files_matches_the_cpu_engine(nasty_set, augment):
    """PNG, grayscale, CMYK and EXIF-rotated JPEGs (on a GPU: nvJPEG's share of them too)."""
    kw = dict(augment=augment, reduced_decode=False, max_bad_fraction=0.5)
    cpu, _ = _batches(nasty_set, "cpu", **kw)
    dali, st = _batches(nasty_set, "dali", **kw)
    assert st["fallbacks"] == 0
    assert max(_mads(cpu, dali)) <= 1.0


def test_val_rect_through_dali_matches_the_cpu_engine(demo_set):
    # full decodes on both sides: at 6x downscale the CPU engine's DCT-reduced decode alone moves val
    # images by up to ~4 grey levels (DALI decodes in full, as Ultralytics)
    kw = dict(augment=False, rect=True, split="val", reduced_decode=False)
    cpu, _ = _batches(demo_set, "cpu", **kw)
    dali, _ = _batches(demo_set, "dali", **kw)
    assert cpu[0]["img"].shape[2:] != (S, S), "rect batches are not square"
    assert max(_mads(cpu, dali)) <= 1.0


DEVICES = ["cpu", pytest.param("gpu", marks=[pytest.mark.gpu, pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU")])]


def _single_tile_plan(img, M=None, hsv=None):
    from loader.plan import Plan, Tile

    h, w = img.shape[:2]
    return Plan(index=0, out_hw=(h, w), canvas_hw=(h, w), tiles=[Tile(0, (h, w), (0, 0, w, h), (0, 0))],
                M=np.eye(3) if M is None else M, hsv=hsv)


@pytest.mark.parametrize("device,out_kind", [("cpu", "numpy"), ("cpu", "tensor"),
                                             pytest.param("gpu", "tensor", marks=DEVICES[1].marks)])
def test_dali_painter_colour_matches_opencv_on_every_kind_of_colour(device, out_kind):
    """HSV jitter, channel order and mixup after the graph: OpenCV on numpy output; torch ops (the GPU path,
    here also run on the CPU) on tensor output, matching OpenCV but for rare float edge cases."""
    from loader.backends.cpu.painter import apply_hsv
    from loader.backends.dali.painter import DaliPainter, PainterConfig

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (256, 512, 3), np.uint8)
    img[0, :256] = np.arange(256)[:, None]  # greys
    img[1, :256, 1] = np.arange(256)
    gains = [np.zeros(3), *(rng.uniform(-1, 1, 3) * [0.015, 0.7, 0.4] for _ in range(3)), np.array([0.5, 1, -1]),
             None]
    plans = [_single_tile_plan(img, hsv=g) for g in gains]
    plans[-1].keep_bgr = True
    mixed = _single_tile_plan(img, hsv=gains[1])
    mixed.mix, mixed.mix_r = _single_tile_plan(img[::-1].copy()), 0.37
    plans.append(mixed)
    images = {0: img, 1: img[::-1].copy()}
    mixed.mix.tiles[0].index = 1
    out = np.zeros((len(plans), *img.shape), np.uint8)
    if out_kind == "tensor":
        out = torch.zeros(out.shape, dtype=torch.uint8, device="cuda" if device == "gpu" else "cpu")
    with DaliPainter(PainterConfig(1, True, len(plans), device)) as painter:
        painter.paint(plans, images.__getitem__, out)
    out = out.cpu().numpy() if torch.is_tensor(out) else out
    for p, got in zip(plans, out):
        ref = img.copy()
        if p.mix is not None:
            ref = (ref * p.mix_r + images[1] * (1 - p.mix_r)).astype(np.uint8)
        apply_hsv(ref, p.hsv, to_rgb=not p.keep_bgr)
        d = np.abs(got.astype(int) - ref)
        # float32 HSV->RGB: a pixel at a sector edge may land one hue step away (1e-4 of pixels, 2 levels)
        assert d.max() <= 2 and (d > 0).mean() < 1e-2, (p.hsv, d.max(), (d > 0).mean())


@pytest.mark.parametrize("device", DEVICES)
def test_dali_warp_is_opencvs_affine(device):
    """Pixel-centre convention: a tile warped in the graph equals cv2.warpAffine with a 114 border."""
    import cv2

    from loader.backends.dali.painter import DaliPainter, PainterConfig

    rng = np.random.default_rng(1)
    img = cv2.GaussianBlur(rng.integers(0, 256, (120, 160, 3), np.uint8), (7, 7), 2)
    th = np.deg2rad(17)
    M = np.array([[1.3 * np.cos(th), -1.3 * np.sin(th), 20.4], [1.3 * np.sin(th), 1.3 * np.cos(th), -15.7], [0, 0, 1]])
    plan = _single_tile_plan(img, M)
    with DaliPainter(PainterConfig(1, False, 1, device)) as painter:
        out = np.zeros((1, 120, 160, 3), np.uint8)
        painter.paint([plan], lambda i: img, out)
    ref = cv2.warpAffine(img.astype(np.float32), M[:2], (160, 120), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=(114, 114, 114))
    ref = np.rint(ref).astype(np.uint8)[..., ::-1]
    assert np.abs(out[0].astype(int) - ref).max() <= 1


def test_canvas_feeds_paste_grey_first_then_the_visible_crops():
    from loader.backends.dali.painter import canvas_feeds
    from loader.plan import Tile

    img = np.zeros((8, 8, 3), np.uint8)
    plan = _single_tile_plan(img)
    plan.tiles.append(Tile(1, (4, 4), (0, 0, 4, 4), (6, 6)))  # partly outside the 8x8 canvas
    f = canvas_feeds([plan, None], 3, lambda j, k: 10 + k, grey=99)
    assert f["ids"][0].tolist() == [99, 10, 11]
    assert f["shapes"][0].tolist() == [[8, 8], [8, 8], [2, 2]]  # the second tile: its visible 2x2 corner
    assert f["out_anchors"][0].tolist() == [[0, 0], [0, 0], [6, 6]]
    assert f["ids"][1].tolist() == [99] and f["size"][2].tolist() == [1, 1]  # unused samples: 1x1 grey
    plan.perspective = True
    with pytest.raises(ValueError, match="perspective"):
        canvas_feeds([plan], 1, lambda j, k: k, grey=0)


def test_a_plan_that_sees_nothing_of_its_canvas_is_grey():
    from loader.backends.dali.painter import DaliPainter, PainterConfig

    img = np.full((16, 16, 3), 7, np.uint8)
    far = np.array([[1, 0, 5000], [0, 1, 5000], [0, 0, 1]], np.float64)
    out = np.zeros((2, 16, 16, 3), np.uint8)
    with DaliPainter(PainterConfig(1, False, 2, "cpu")) as painter:
        painter.paint([_single_tile_plan(img, far), _single_tile_plan(img)], lambda i: img, out)
    assert (out[0] == 114).all() and (out[1] == 7).all()


def test_painter_refuses_batches_it_was_not_built_for():
    from loader.backends.dali.painter import DaliPainter, PainterConfig

    img = np.zeros((8, 8, 3), np.uint8)
    with DaliPainter(PainterConfig(1, False, 2, "cpu")) as painter:
        with pytest.raises(ValueError, match="batch"):
            painter.feeds([_single_tile_plan(img)] * 3, lambda i: img)
        mixed = _single_tile_plan(img)
        mixed.mix = _single_tile_plan(img)
        with pytest.raises(ValueError, match="mixup"):
            painter.feeds([mixed], lambda i: img)
        with pytest.raises(ValueError, match="output size"):
            painter.feeds([_single_tile_plan(img), _single_tile_plan(np.zeros((4, 8, 3), np.uint8))], lambda i: img)


def test_pipeline_rebuilt_on_close_mosaic_and_batch_size_change(demo_set):
    with DetectionLoader(demo_set, imgsz=S, batch_size=5, workers=1, backend="dali", index_cache=False) as dl:
        it = iter(dl)
        next(it)
        first = dl.dali.painter
        assert dl.dali.builds == 1 and first.cfg.slots == 4 and first.cfg.max_batch == 5
        for _ in it:  # the last, partial batch (24 = 4 * 5 + 4) runs on the same graph
            pass
        assert dl.dali.builds == 1
        dl.close_mosaic()
        b = next(iter(dl))
        assert dl.dali.builds == 2 and dl.dali.painter.cfg.slots == 1 and first._pipe is None, "old graph released"
        assert b["img"].shape[0] == 5
        with pytest.raises(ValueError, match="multiple"):
            dl.set_batch_size(3)  # 5 samples into the epoch
        dl.set_epoch(dl.epoch + 1)
        dl.set_batch_size(3)
        b = next(iter(dl))
        assert dl.dali.builds == 3 and dl.dali.painter.cfg.max_batch == 3 and b["img"].shape[0] == 3
        with pytest.raises(ValueError, match="multiple"):
            dl.set_batch_size(2)  # 3 samples into the epoch
        with pytest.raises(ValueError):
            dl.set_batch_size(0)


def test_perspective_plans_go_to_the_opencv_painter(demo_set, caplog):
    with caplog.at_level(logging.INFO, logger="loader"):
        dali, _ = _batches(demo_set, "dali", hyp={"perspective": 0.0005})
    cpu, _ = _batches(demo_set, "cpu", hyp={"perspective": 0.0005})
    assert max(_mads(cpu, dali)) <= 3.0
    assert any("no perspective warp" in r.getMessage() for r in caplog.records)


def test_dali_batch_with_a_corrupt_file_falls_back_and_reports_it(demo_set, copy_of):
    from loader.dataset import build_index

    data = copy_of(demo_set)
    index = build_index(data, cache=False)
    Path(index.im_files[3]).write_bytes(b"\xff\xd8 not a jpeg")
    with DetectionLoader(index, imgsz=S, batch_size=6, workers=2, backend="dali", max_bad_fraction=0.5) as dl:
        files = [f for b in dl for f in b["im_file"]]
        assert dl.dali.fallbacks >= 1 and set(dl.unreadable) == {3}
    assert len(files) == 24 and index.im_files[3] not in files


def test_close_releases_the_pipelines(demo_set):
    dl = DetectionLoader(demo_set, imgsz=S, batch_size=4, workers=1, backend="dali")
    next(iter(dl))
    engine = dl.dali
    painter = engine.painter
    assert engine.decoder is not None and painter is not None
    dl.close()
    assert dl.dali is None and engine.painter is None and engine.decoder is None and painter._pipe is None
    assert not [t for t in threading.enumerate() if t.name.startswith(("loader-read", "loader-paint"))]
    with pytest.raises(RuntimeError, match="closed"):
        next(iter(dl))


def test_auto_picks_dali_only_on_a_usable_gpu(demo_set, caplog):
    with caplog.at_level(logging.INFO, logger="loader"):
        with DetectionLoader(demo_set, imgsz=S, batch_size=4, workers=1, backend="auto") as dl:
            assert dl.backend == ("dali" if _cuda() else "cpu")
    assert any("backend auto ->" in r.getMessage() for r in caplog.records)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("hyp", HYPS, ids=["default", "mixup-rotation-shear-flipud"])
def test_dali_on_gpu_matches_the_cpu_engine(demo_set, hyp):
    cpu, _ = _batches(demo_set, "cpu", hyp=hyp, reduced_decode=False)
    with DetectionLoader(demo_set, imgsz=S, batch_size=6, workers=2, seed=4, backend="dali", index_cache=False,
                         hyp=hyp, reduced_decode=False) as dl:
        gpu = []
        for b in dl:
            assert b["img"].is_cuda, "batches stay on the GPU"
            gpu.append({k: (v.clone() if torch.is_tensor(v) else v) for k, v in b.items()})
        st = dl.stats()
    assert st["dali_device"] == "gpu" and st["tile_buffer"]["device"] == "cuda"
    assert st["decodes_per_sample"] <= 1.1
    print("tile buffer on the GPU:", st["tile_buffer"]["bytes"] / 2**20, "MiB")
    assert max(_mads(cpu, gpu)) <= 1.0


def test_backend_choice_refuses_clearly_without_dali(demo_set):
    """backend="dali" where nvidia-dali cannot be imported: a clear error naming the cause; "auto" falls back to
    the CPU engine (with or without a GPU); unknown backends are refused."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['nvidia.dali'] = None\n"
        "from loader import DetectionLoader\n"
        f"dl = DetectionLoader({str(demo_set)!r}, imgsz=64, batch_size=2, backend='auto', index_cache=False)\n"
        "assert dl.backend == 'cpu', dl.backend\n"
        "dl.close()\n"
        "try:\n"
        f"    DetectionLoader({str(demo_set)!r}, imgsz=64, batch_size=2, backend='dali', index_cache=False)\n"
        "except RuntimeError as e:\n"
        "    print('ERR', e)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "ERR backend='dali' requested but nvidia-dali is not importable" in r.stdout
    with pytest.raises(ValueError, match="backend must be"):
        DetectionLoader(demo_set, imgsz=64, batch_size=2, backend="gpu", index_cache=False)
