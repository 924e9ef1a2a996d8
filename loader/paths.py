"""Where the loader keeps its files: one root, ``YOLO_LOADER_CACHE_DIR`` or ``~/.cache/yolo-loader``."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_root"]


def cache_root() -> Path:
    """The folder for the index cache (``index/``), the disk image cache (``images/``) and ``tuner.json``."""
    return Path(os.environ.get("YOLO_LOADER_CACHE_DIR") or Path.home() / ".cache" / "yolo-loader")
