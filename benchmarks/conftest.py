"""pytest-benchmark suites: `pytest benchmarks --benchmark-only` (see README: regression gates)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

IMGSZ = int(os.environ.get("BENCH_IMGSZ", "640"))
BATCH = int(os.environ.get("BENCH_BATCH", "16"))


@pytest.fixture(scope="session")
def bench_data(tmp_path_factory) -> Path:
    """BENCH_DATA=path/to/data.yaml, or a generated demo set of 96 1920x1080 images."""
    if os.environ.get("BENCH_DATA"):
        return Path(os.environ["BENCH_DATA"])
    from loader.demo_data import make_demo_dataset

    return make_demo_dataset(tmp_path_factory.mktemp("bench"), count=96, val_count=8)


def pss_bytes() -> int:
    from loader.memory import tree_pss

    return tree_pss()
