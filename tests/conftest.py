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
