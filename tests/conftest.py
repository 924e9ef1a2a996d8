"""Shared fixtures: demo data sets are generated once per session by the product's own generator."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def _isolated_caches(tmp_path_factory):
    """Index caches and Ultralytics settings go to a temporary folder, never to ~/.cache."""
    root = tmp_path_factory.mktemp("caches")
    os.environ["YOLO_LOADER_CACHE_DIR"] = str(root / "yolo-loader")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(root / "ultralytics"))
    os.environ.setdefault("YOLO_OFFLINE", "1")
    yield


@pytest.fixture(scope="session")
def demo_set(tmp_path_factory) -> Path:
    """A small clean demo set (data.yaml path): 24 train, 6 val images at 1920x1080."""
    from loader.demo_data import make_demo_dataset

    return make_demo_dataset(tmp_path_factory.mktemp("demo"), count=24, val_count=6, seed=1)


@pytest.fixture(scope="session")
def nasty_set(tmp_path_factory) -> Path:
    """The demo set with every bad input (data.yaml path; train is a .txt list)."""
    from loader.demo_data import make_demo_dataset

    return make_demo_dataset(tmp_path_factory.mktemp("nasty"), count=12, val_count=4, seed=2, nasty=True)


@pytest.fixture
def copy_of(tmp_path):
    """Copy a data set folder so a test may modify (or let Ultralytics modify) it."""

    count = iter(range(1000))

    def _copy(data_yaml: Path) -> Path:
        dst = tmp_path / f"{data_yaml.parent.name}-{next(count)}"
        shutil.copytree(data_yaml.parent, dst)
        return dst / data_yaml.name

    return _copy


@pytest.fixture(scope="session")
def trained_detector(tmp_path_factory):
    """(weights, data.yaml): yolo11n trained from scratch once per test run to a real mAP (about a minute here).

    One class ("object") on 48 photo-background demo images of 320x240, validated on the same images: the boxes
    are learnable in 40 epochs at imgsz 128 (mAP50 ~0.5), so metrics computed from its predictions mean
    something (a from-scratch model after a few epochs scores 0, which proves nothing).
    """
    import yaml
    from ultralytics import YOLO

    from loader.demo_data import make_demo_dataset

    root = tmp_path_factory.mktemp("trained")
    data = make_demo_dataset(root / "set", count=48, val_count=0, size=(320, 240), seed=7)
    for f in (root / "set" / "labels").rglob("*.txt"):
        rows = [r.split() for r in f.read_text().splitlines() if r.strip()]
        f.write_text("".join("0 " + " ".join(r[1:]) + "\n" for r in rows))
    cfg = yaml.safe_load(data.read_text())
    cfg.update(val=cfg["train"], names={0: "object"})
    one = data.with_name("one_class.yaml")
    one.write_text(yaml.safe_dump(cfg))
    model = YOLO("yolo11n.yaml")
    model.train(data=str(one), imgsz=128, epochs=40, batch=8, workers=0, device="cpu", plots=False, val=False,
                amp=False, project=str(root / "runs"), name="t", exist_ok=True, verbose=False, seed=0,
                deterministic=True, close_mosaic=10, warmup_epochs=1)
    return Path(model.trainer.last), one
