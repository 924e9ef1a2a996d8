"""``cache="disk"``: every image stored once at training size, memory-mapped on later reads.

Unlike Ultralytics' ``cache="disk"`` (full-resolution ``.npy`` next to each image, resized
again on every load), entries hold the exact pixels the CPU engine would decode and resize
(Ultralytics' load size for ``imgsz``), as raw uint8 ``.npy`` files read with ``mmap``: a
read is a page-cache hit with no decode and no copy, and pixels are bitwise those of the
uncached path. The manifest keys every entry by its source file's size and mtime: a changed
source is re-encoded alone, a corrupt manifest is rebuilt, and a second run re-encodes
nothing. ``benchmarks/cache_formats.py`` measured the alternatives (see README).

Entries live in ``YOLO_LOADER_CACHE_DIR`` (default ``~/.cache/yolo-loader``)``/images/<data
set key>/<imgsz>/``, never in the data set folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from pathlib import Path

import numpy as np

from ..paths import cache_root
from ..progress import Progress

__all__ = ["DiskCache", "default_root"]

LOG = logging.getLogger("loader.cache")
VERSION = 1


def default_root() -> Path:
    return cache_root() / "images"


class DiskCache:
    """Raw training-size images on disk, keyed by source path, validated by size + mtime."""

    def __init__(self, dataset_key: str, imgsz: int, root: str | os.PathLike | None = None):
        digest = hashlib.sha1(dataset_key.encode()).hexdigest()[:16]
        self.dir = Path(root or default_root()) / digest / str(int(imgsz))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.manifest_path = self.dir / "manifest.json"
        self._lock = threading.Lock()
        self.writes = self.hits = 0
        self._dirty = 0
        self.entries: dict[str, dict] = {}
        if self.manifest_path.exists():
            try:
                m = json.loads(self.manifest_path.read_text())
                if m.get("version") != VERSION or m.get("imgsz") != int(imgsz):
                    raise ValueError("another version or image size")
                self.entries = dict(m["entries"])
            except (OSError, ValueError, KeyError, TypeError) as e:
                LOG.warning("disk cache manifest %s unreadable (%s); rebuilding entries as they are read",
                            self.manifest_path, e)
        self.imgsz = int(imgsz)

    @staticmethod
    def _name(src: str) -> str:
        return hashlib.sha1(src.encode("utf-8", "surrogateescape")).hexdigest()[:24] + ".npy"

    def get(self, src: str, hw: tuple[int, int], decode) -> np.ndarray:
        """The cached (h, w, 3) uint8 image of ``src``, or ``decode()``'s result, stored for next time."""
        st = os.stat(src)
        e = self.entries.get(src)
        if e and e["size"] == st.st_size and e["mtime_ns"] == st.st_mtime_ns and tuple(e["hw"]) == tuple(hw):
            try:
                arr = np.load(self.dir / e["file"], mmap_mode="r", allow_pickle=False)
                if arr.shape == (*hw, 3) and arr.dtype == np.uint8:
                    self.hits += 1
                    return arr
            except (OSError, ValueError):
                pass  # missing or damaged entry: encode again below
        im = decode()
        name = self._name(src)
        tmp = self.dir / f".{name}.{os.getpid()}.{threading.get_ident()}"
        with open(tmp, "wb") as f:
            np.save(f, np.ascontiguousarray(im), allow_pickle=False)
        os.replace(tmp, self.dir / name)
        with self._lock:
            self.entries[src] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "hw": list(hw), "file": name}
            self.writes += 1
            self._dirty += 1
            flush = self._dirty >= 256
        if flush:
            self.flush()
        return im

    def fresh(self, src: str, hw) -> bool:
        """Whether ``src`` has a valid entry (same size, mtime and training size)."""
        e = self.entries.get(src)
        if not e or tuple(e["hw"]) != tuple(hw) or not (self.dir / e["file"]).exists():
            return False
        try:
            st = os.stat(src)
        except OSError:
            return False
        return e["size"] == st.st_size and e["mtime_ns"] == st.st_mtime_ns

    def build(self, items, decode, workers: int = 2) -> int:
        """Encode every (src, hw, index) of ``items`` that lacks a valid entry; returns how many.

        Unreadable sources are skipped here (the loader reports them when a sample needs them).
        """
        from concurrent.futures import ThreadPoolExecutor

        todo = [(src, hw, i) for src, hw, i in items if not self.fresh(src, hw)]

        def one(job) -> int:
            src, hw, i = job
            try:
                self.get(src, hw, lambda: decode(i))
            except OSError:
                pass
            return hw[0] * hw[1] * 3

        with ThreadPoolExecutor(max(1, workers)) as ex, Progress("disk cache", len(todo)) as bar:
            for nbytes in ex.map(one, todo):
                bar.update(1, nbytes)
        self.flush()
        return len(todo)

    def flush(self) -> None:
        """Write the manifest (atomically) if entries changed."""
        with self._lock:
            if not self._dirty:
                return
            text = json.dumps({"version": VERSION, "imgsz": self.imgsz, "entries": self.entries})
            self._dirty = 0
        tmp = self.manifest_path.with_name(f".manifest.{os.getpid()}.{threading.get_ident()}")
        tmp.write_text(text)
        os.replace(tmp, self.manifest_path)

    def nbytes(self) -> int:
        return sum(p.stat().st_size for p in self.dir.glob("*.npy"))
