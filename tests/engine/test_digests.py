"""Same seed, same batches: SHA-256 digests of a few batches per engine (train and val), recorded in
``tests/data/batch_digests.json`` and checked on every run.

A refactor that claims "behaviour-preserving" must leave them unchanged. A change that alters batches on
purpose (a new random stream, a painter fix) regenerates them and says so in its commit:
``YOLO_LOADER_WRITE_DIGESTS=1 .venv/bin/pytest tests/test_digests.py``.

Pixels depend on the OpenCV, numpy and DALI builds, so the file records their versions; with other
versions installed the comparison cannot mean anything and the test says so (skip with the reason).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from loader import DetectionLoader

FILE = Path(__file__).parent / "data" / "batch_digests.json"
CASES = {  # name: (backend, augment, hyp)
    "cpu-train": ("cpu", True, None),
    "cpu-train-general": ("cpu", True, {"mixup": 0.5, "degrees": 10.0, "shear": 2.0, "flipud": 0.5, "bgr": 0.2}),
    "cpu-val": ("cpu", False, None),
    "dali-train": ("dali", True, None),
    "dali-train-general": ("dali", True, {"mixup": 0.5, "degrees": 10.0, "shear": 2.0, "flipud": 0.5}),
    "dali-val": ("dali", False, None),
}


def _versions() -> dict:
    import cv2

    out = {"opencv": cv2.__version__, "numpy": np.__version__}
    try:
        import nvidia.dali as dali

        out["dali"] = dali.__version__
    except ImportError:
        out["dali"] = None
    return out


def _digest(batch: dict) -> str:
    h = hashlib.sha256()
    for key in ("img", "cls", "bboxes", "batch_idx"):
        v = batch[key].cpu().contiguous()
        h.update(key.encode())
        h.update(str(tuple(v.shape)).encode())
        h.update(v.numpy().tobytes())
    for key in ("im_file", "ori_shape", "resized_shape", "ratio_pad"):
        value = batch[key]
        if key == "im_file":
            value = tuple(Path(f).name for f in value)
        h.update(repr(value).encode())
    return h.hexdigest()


def _digests(data, backend: str, augment: bool, hyp) -> list[str]:
    kw = dict(split="val", rect=True) if not augment else {}
    with DetectionLoader(data, imgsz=320, batch_size=6, workers=2, seed=3, backend=backend, augment=augment,
                         hyp=hyp, index_cache=False, **kw) as dl:
        out = []
        for k, b in enumerate(dl):
            out.append(_digest(b))
            if k == 1:
                break
    return out


@pytest.mark.parametrize("case", list(CASES))
def test_batches_match_the_recorded_digests(demo_set, case):
    backend, augment, hyp = CASES[case]
    if backend == "dali":
        pytest.importorskip("nvidia.dali")
        if torch.cuda.is_available():  # recorded in DALI's CPU-only mode: GPU decodes differ by design
            pytest.skip("digests are recorded in DALI's CPU-only mode; this machine runs DALI on its GPU")
    got = _digests(demo_set, backend, augment, hyp)
    if os.environ.get("YOLO_LOADER_WRITE_DIGESTS") == "1":
        store = json.loads(FILE.read_text()) if FILE.exists() else {}
        store.setdefault("versions", {}).update({k: v for k, v in _versions().items() if v is not None})
        store.setdefault("cases", {})[case] = got
        FILE.parent.mkdir(exist_ok=True)
        FILE.write_text(json.dumps(store, indent=1, sort_keys=True) + "\n")
    store = json.loads(FILE.read_text())
    recorded = store["versions"]
    now = _versions()
    other = {k: (recorded.get(k), v) for k, v in now.items() if v is not None and recorded.get(k) != v}
    if other:  # pixels of another OpenCV / numpy / DALI build: nothing to compare against (regenerate to use)
        pytest.skip(f"digests were recorded with other library versions {other}")
    assert got == store["cases"][case], f"{case}: batches changed for the same seed"
