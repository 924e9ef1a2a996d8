"""Same seed, same batches: SHA-256 digests of a few batches per engine (train and val), recorded in
``tests/data/batch_digests.json`` and checked on every run.

A refactor that claims "behaviour-preserving" must leave them unchanged. A change that alters batches on
purpose (a new random stream, a painter fix) regenerates them with ``make digests`` and says so in its commit.

Pixels depend on the OpenCV, numpy and DALI builds (OpenCV 5.0.0 -> 5.1.0 moved 34 of 409,600 warpAffine
pixels by one level), so the file records their versions, which requirements.lock pins. Other versions
installed is a failure that names them and the command that regenerates the digests, never a skip: a
skipped digest test is how a version drift once went unseen.
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
    import nvidia.dali as dali

    out["dali"] = dali.__version__
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
        if torch.cuda.is_available():  # recorded in DALI's CPU-only mode: GPU decodes differ by design
            pytest.skip("digests are recorded in DALI's CPU-only mode; this machine runs DALI on its GPU")
    writing = os.environ.get("YOLO_LOADER_WRITE_DIGESTS") == "1"
    if not writing:  # before the batches: a drift is named at once, whatever else differs
        drift = version_drift(json.loads(FILE.read_text())["versions"], _versions())
        if drift:
            pytest.fail(drift, pytrace=False)
    got = _digests(demo_set, backend, augment, hyp)
    if writing:
        store = json.loads(FILE.read_text()) if FILE.exists() else {}
        store.setdefault("versions", {}).update({k: v for k, v in _versions().items() if v is not None})
        store.setdefault("cases", {})[case] = got
        FILE.parent.mkdir(exist_ok=True)
        FILE.write_text(json.dumps(store, indent=1, sort_keys=True) + "\n")
    store = json.loads(FILE.read_text())
    assert case in store["cases"] and len(got) == len(store["cases"][case]) > 0, f"{case}: no digests recorded"
    assert got == store["cases"][case], f"{case}: batches changed for the same seed (same library versions)"


def version_drift(recorded: dict, now: dict) -> str:
    """The message for a run on other library builds than the digests were recorded with ('' if none)."""
    other = {k: (recorded.get(k), v) for k, v in now.items() if v is not None and recorded.get(k) != v}
    if not other:
        return ""
    named = ", ".join(f"{k} {was} recorded, {v} installed" for k, (was, v) in sorted(other.items()))
    return (f"the batch digests were recorded with other library versions than these: {named}. "
            f"If the venv is not at requirements.lock, run `make venv` (it converges on the lock). If the "
            f"new versions are meant (a changed lock), regenerate the digests with `make digests` "
            f"(YOLO_LOADER_WRITE_DIGESTS=1 python -m pytest tests/engine/test_digests.py) and commit "
            f"tests/engine/data/batch_digests.json with the lock.")


def test_version_drift_names_both_versions_and_the_regenerate_command():
    assert version_drift({"opencv": "5.0.0", "numpy": "2.4.6"}, {"opencv": "5.0.0", "numpy": "2.4.6"}) == ""
    msg = version_drift({"opencv": "5.0.0", "numpy": "2.4.6"}, {"opencv": "5.1.0", "numpy": "2.4.6"})
    assert "opencv 5.0.0 recorded, 5.1.0 installed" in msg and "numpy" not in msg.split(".")[0]
    assert "make digests" in msg and "make venv" in msg
