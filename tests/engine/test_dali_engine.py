"""The DALI stage: batched decode + resize in DALI (CPU-only mode here; GPU tests skip without CUDA)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from loader import DetectionLoader

import nvidia.dali  # noqa: F401,E402  (a dependency: missing fails, never skips)
S = 320


def _cuda() -> bool:
    return torch.cuda.is_available()


def _batches(data, backend, **kw):
    with DetectionLoader(data, imgsz=S, batch_size=6, workers=2, seed=4, backend=backend, index_cache=False,
                         **kw) as dl:
        out = [{k: (v.clone() if torch.is_tensor(v) else v) for k, v in b.items()} for b in dl]
        st = dl.stats()
        stats = {"decodes": st["decodes"], "fallbacks": st.get("dali_fallbacks"), "device": st["device"]}
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


def _bound(cpu_only: float, gpu: float) -> float:
    """A MAD bound: from measurements in DALI's CPU-only mode (about 3x the figure each test cites), or the
    looser GPU one where nvJPEG decodes (not yet measured on a GPU: benchmarks/gpu_check.sh prints them)."""
    return gpu if _cuda() else cpu_only


HYPS = [None, {"mixup": 0.3, "degrees": 10.0, "shear": 2.0, "flipud": 0.5}]


@pytest.mark.parametrize("hyp", HYPS, ids=["default", "mixup-rotation-shear-flipud"])
def test_dali_cpu_only_matches_the_cpu_engine(demo_set, hyp):
    cpu, _ = _batches(demo_set, "cpu", hyp=hyp)
    dali, st = _batches(demo_set, "dali", hyp=hyp)
    assert st["device"] == ("cuda" if _cuda() else "cpu") and st["fallbacks"] == 0
    assert st["decodes"] <= 1.1 * 24, "mosaic partners come from the decoded-tile buffer"
    mads = _mads(cpu, dali)
    print("per-image MAD, DALI vs CPU engine: max", round(max(mads), 3), "median", round(float(np.median(mads)), 3))
    assert max(mads) <= _bound(0.6, 3.0)  # measured CPU-only: max 0.205 (default), 0.216 (mixup-rotation-shear)
    # with the same (full) JPEG decode on both sides only the painting differs: much closer
    mads = _mads(_batches(demo_set, "cpu", hyp=hyp, reduced_decode=False)[0],
                 _batches(demo_set, "dali", hyp=hyp, reduced_decode=False)[0])
    print("same decode: max", round(max(mads), 3))
    assert max(mads) <= _bound(0.6, 1.0)  # measured CPU-only: the same 0.205 / 0.216 (both decode in full here)


@pytest.mark.parametrize("augment", [False, True], ids=["val", "train"])
def test_dali_on_awkward_files_matches_the_cpu_engine(nasty_set, augment):
    """PNG, grayscale, CMYK and EXIF-rotated JPEGs (on a GPU: nvJPEG's share of them too)."""
    kw = dict(augment=augment, reduced_decode=False, max_bad_fraction=0.5)
    cpu, _ = _batches(nasty_set, "cpu", **kw)
    dali, st = _batches(nasty_set, "dali", **kw)
    assert st["fallbacks"] == 0
    mads = _mads(cpu, dali)
    print("awkward files, DALI vs CPU engine: max MAD", round(max(mads), 3))
    assert max(mads) <= _bound(0.6, 1.0)  # measured CPU-only: 0.073 (val), 0.204 (train)


def test_val_rect_through_dali_matches_the_cpu_engine(demo_set):
    # full decodes on both sides: at 6x downscale the CPU engine's DCT-reduced decode alone moves val
    # images by up to ~4 grey levels (DALI decodes in full, as Ultralytics)
    kw = dict(augment=False, rect=True, split="val", reduced_decode=False)
    cpu, _ = _batches(demo_set, "cpu", **kw)
    dali, _ = _batches(demo_set, "dali", **kw)
    assert cpu[0]["img"].shape[2:] != (S, S), "rect batches are not square"
    mads = _mads(cpu, dali)
    print("val rect, DALI vs CPU engine: max MAD", round(max(mads), 3))
    assert max(mads) <= _bound(0.3, 1.0)  # measured CPU-only: 0.095


def test_pipeline_rebuilt_on_close_mosaic_and_batch_size_change(demo_set):
    with DetectionLoader(demo_set, imgsz=S, batch_size=5, workers=1, backend="dali", index_cache=False) as dl:
        it = iter(dl)
        next(it)
        first = dl.engine.painter
        assert dl.engine.builds == 1 and first.cfg.slots == 4 and first.cfg.max_batch == 5
        for _ in it:  # the last, partial batch (24 = 4 * 5 + 4) runs on the same graph
            pass
        assert dl.engine.builds == 1
        dl.close_mosaic()
        b = next(iter(dl))
        assert dl.engine.builds == 2 and dl.engine.painter.cfg.slots == 1 and first.closed, "old graph released"
        assert b["img"].shape[0] == 5
        with pytest.raises(ValueError, match="multiple"):
            dl.set_batch_size(3)  # 5 samples into the epoch
        dl.set_epoch(dl.epoch + 1)
        dl.set_batch_size(3)
        b = next(iter(dl))
        assert dl.engine.builds == 3 and dl.engine.painter.cfg.max_batch == 3 and b["img"].shape[0] == 3
        with pytest.raises(ValueError, match="multiple"):
            dl.set_batch_size(2)  # 3 samples into the epoch
        with pytest.raises(ValueError):
            dl.set_batch_size(0)


def test_perspective_plans_go_to_the_opencv_painter(demo_set, caplog):
    with caplog.at_level(logging.INFO, logger="loader"):
        dali, _ = _batches(demo_set, "dali", hyp={"perspective": 0.0005})
    cpu, _ = _batches(demo_set, "cpu", hyp={"perspective": 0.0005})
    mads = _mads(cpu, dali)
    print("perspective, DALI engine (OpenCV painter) vs CPU engine: max MAD", round(max(mads), 3))
    assert max(mads) <= _bound(0.6, 3.0)  # measured CPU-only: 0.199 (DALI's decodes, the same OpenCV painter)
    assert any("no perspective warp" in r.getMessage() for r in caplog.records)


def test_a_buffer_too_small_for_a_batch_changes_no_pixel(demo_set):
    """Tiles DALI decoded for a batch are held by the batch: when later decodes evict them from a small buffer,
    they are not decoded again by OpenCV (other pixels, and a slower path) before the batch is painted."""
    roomy, st = _batches(demo_set, "dali")
    tight, st_tight = _batches(demo_set, "dali", cache_bytes=4 * 180 * S * 3)  # ~4 tiles; a batch needs ~24
    assert st_tight["fallbacks"] == 0
    for a, b in zip(roomy, tight, strict=True):
        assert a["im_file"] == b["im_file"] and torch.equal(a["img"], b["img"])


def test_reduced_decode_true_is_said_not_to_apply_to_dali_decodes(demo_set, caplog):
    """The DALI engine decodes JPEGs in full: asked for reduced_decode=True it says so, and its batches are the
    full decode's (as with the default)."""
    with caplog.at_level(logging.WARNING, logger="loader"):
        asked, _ = _batches(demo_set, "dali", reduced_decode=True)
    assert sum("does not apply to the JPEGs the DALI engine decodes" in r.getMessage() for r in caplog.records) == 1
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="loader"):
        full, _ = _batches(demo_set, "dali", reduced_decode=False)
    assert not any("does not apply" in r.getMessage() for r in caplog.records)
    assert all(torch.equal(a["img"], b["img"]) for a, b in zip(asked, full, strict=True))


def test_dali_batch_with_a_corrupt_file_falls_back_and_reports_it(demo_set, copy_of):
    from loader.dataset import build_index

    data = copy_of(demo_set)
    index = build_index(data, cache=False)
    Path(index.im_files[3]).write_bytes(b"\xff\xd8 not a jpeg")
    with DetectionLoader(index, imgsz=S, batch_size=6, workers=2, backend="dali", max_bad_fraction=0.5) as dl:
        files = [f for b in dl for f in b["im_file"]]
        assert dl.engine.fallbacks == 1 and set(dl.unreadable) == {3}, "one file, one fallback: never retried"
    assert len(files) == 24 and index.im_files[3] not in files


def test_close_releases_the_pipelines(demo_set):
    dl = DetectionLoader(demo_set, imgsz=S, batch_size=4, workers=1, backend="dali")
    next(iter(dl))
    engine = dl.engine
    painter = engine.painter
    assert engine.decoder is not None and painter is not None
    dl.close()
    assert dl.closed and engine.painter is None and engine.decoder is None and painter.closed
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
    assert st["device"] == "cuda" and st["tile_buffer"]["device"] == "cuda"
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


def test_good_bad_good_batches_the_third_decoded_by_dali(demo_set, copy_of, caplog):
    """A batch with a corrupt JPEG: DALI decodes the others of that batch (file by file), names the bad one at
    WARNING once, and decodes the next batch in one run again (its pipeline is not broken)."""
    from loader.dataset import build_index

    index = build_index(copy_of(demo_set), cache=False)
    Path(index.im_files[3]).write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    with caplog.at_level(logging.DEBUG, logger="loader"), \
            DetectionLoader(index, imgsz=S, batch_size=4, workers=1, backend="dali", max_bad_fraction=0.5) as dl:
        eng = dl.engine
        for ids, decoded in (([0, 1, 2], 3), ([4, 3, 5], 2), ([6, 7, 8], 3)):  # good, bad, good
            before = eng.decoded
            eng.prepare(dl.planner.val_batch(ids, (S, S)))
            assert eng.decoded - before == decoded, ids
        assert eng.fallbacks == 1 and dl.stats()["dali_fallbacks"] == 1
        assert all(i in dl.images for i in (0, 1, 2, 4, 5, 6, 7, 8)) and 3 not in dl.images
    warned = [r for r in caplog.records if r.levelno == logging.WARNING and "DALI cannot decode" in r.getMessage()]
    assert len(warned) == 1 and Path(index.im_files[3]).name in warned[0].getMessage()
