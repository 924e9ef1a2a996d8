"""The DALI stage: batched decode + resize in DALI (CPU-only mode here; GPU tests skip without CUDA)."""

from __future__ import annotations

import logging
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
        stats = {"decodes": dl.images.misses, "fallbacks": dl.dali_fallbacks if dl.dali else None,
                 "device": dl.dali.device if dl.dali else None}
    return out, stats


def test_dali_cpu_only_matches_the_cpu_engine(demo_set):
    cpu, _ = _batches(demo_set, "cpu", hyp={"mixup": 0.3, "degrees": 10.0})
    dali, st = _batches(demo_set, "dali", hyp={"mixup": 0.3, "degrees": 10.0})
    assert st["device"] == ("gpu" if _cuda() else "cpu") and st["fallbacks"] == 0
    mads = []
    for a, b in zip(cpu, dali):
        assert a["im_file"] == b["im_file"]
        assert torch.equal(a["bboxes"], b["bboxes"]) and torch.equal(a["cls"], b["cls"]), "boxes come from the plan"
        for k in range(len(a["im_file"])):
            mads.append((a["img"][k].int() - b["img"][k].int()).abs().float().mean().item())
    print("per-image MAD, DALI vs CPU engine: max", round(max(mads), 3), "median", round(float(np.median(mads)), 3))
    assert max(mads) <= 3.0


def test_dali_batch_with_a_corrupt_file_falls_back_and_reports_it(demo_set, copy_of):
    from loader.dataset import build_index

    data = copy_of(demo_set)
    index = build_index(data, cache=False)
    Path(index.im_files[3]).write_bytes(b"\xff\xd8 not a jpeg")
    with DetectionLoader(index, imgsz=S, batch_size=6, workers=2, backend="dali", max_bad_fraction=0.5) as dl:
        files = [f for b in dl for f in b["im_file"]]
        assert dl.dali_fallbacks >= 1 and set(dl.unreadable) == {3}
    assert len(files) == 24 and index.im_files[3] not in files


def test_close_releases_the_pipeline(demo_set):
    dl = DetectionLoader(demo_set, imgsz=S, batch_size=4, workers=1, backend="dali")
    next(iter(dl))
    assert dl.dali is not None
    dl.close()
    assert dl.dali is None


def test_auto_picks_dali_only_on_a_usable_gpu(demo_set, caplog):
    with caplog.at_level(logging.INFO, logger="loader"):
        with DetectionLoader(demo_set, imgsz=S, batch_size=4, workers=1, backend="auto") as dl:
            assert dl.backend == ("dali" if _cuda() else "cpu")
    assert any("backend auto ->" in r.getMessage() for r in caplog.records)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_dali_on_gpu_matches_the_cpu_engine(demo_set):
    cpu, _ = _batches(demo_set, "cpu")
    gpu, st = _batches(demo_set, "dali")
    assert st["device"] == "gpu"
    for a, b in zip(cpu, gpu):
        assert torch.equal(a["bboxes"], b["bboxes"])
        assert (a["img"].int() - b["img"].int()).abs().float().mean() <= 3.0
