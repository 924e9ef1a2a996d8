"""The dataset index: every kept image and its boxes in flat numpy arrays.

``build_index`` resolves a source, checks each image/label pair (``probe``), and
keeps the result in a cache file keyed by each image's and label's size and mtime:
a start with nothing changed re-reads no image header; a changed, added or removed
file is re-checked alone; a corrupt cache file is rebuilt. The index never holds a
Python object per sample (see ``strings``); ``labels`` is a lazy, Ultralytics-shaped
view for code that wants dicts. Polygon label rows keep their points (flat, ``seg_off`` per label row
into ``seg_xy``): the planner warps them to take each box from the warped outline, as stock does.

Bad input never raises mid-way: each skipped image is logged with its file name and
reason and counted in ``summary()``. Building raises :class:`DatasetError` only when
nothing usable remains.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..flat import ranges
from ..paths import cache_root
from ..procpool import map_in_processes
from ..progress import Progress
from .probe import FORMATS, REASONS, probe_pair
from .source import DatasetError, Source, img2label_path, resolve_source
from .strings import StringTable

__all__ = ["DatasetIndex", "build_index", "default_cache_dir", "fraction_count", "select_labels", "INDEX_VERSION"]

LOG = logging.getLogger("loader.dataset")
INDEX_VERSION = 2  # 2: polygon points kept
LABEL_STATUS = ("ok", "missing", "empty")  # per kept image: its label file had rows / was absent / was empty
_PARALLEL_MIN = 4000  # below this child processes cost more than they save (~0.3 s to start one)
_MAX_LOGGED = 50  # skipped files named one by one in the log; all of them stay in index.rejected


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str
    detail: str


def default_cache_dir() -> Path:
    return cache_root() / "index"


class LabelsView(Sequence):
    """``index.labels[i]`` as the dict Ultralytics' ``YOLODataset.labels`` holds, built on demand."""

    def __init__(self, index: DatasetIndex):
        self._index = index

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        ix = self._index
        cls, boxes = ix.labels_of(i)
        return {"im_file": ix.im_files[i], "shape": tuple(int(v) for v in ix.shapes[i]),
                "cls": cls.reshape(-1, 1).copy(), "bboxes": boxes.copy(), "segments": ix.polygons_of(i),
                "keypoints": None, "normalized": True, "bbox_format": "xywh"}


class DatasetIndex:
    """Kept images of one split, their upright shapes and boxes, and what was skipped."""

    def __init__(self, *, im_files: StringTable, shapes, orientation, formats, label_status, label_offsets, cls,
                 boxes, names: dict, data: dict, split: str, skipped: list[Skipped], notes: list[tuple[str, str]],
                 ignored: int, n_duplicates: int, cache_file: str | None = None, build_info: dict | None = None,
                 stamps=None, seg_off=None, seg_xy=None):
        self.im_files = im_files
        self.shapes = np.asarray(shapes, np.int32).reshape(-1, 2)  # (h, w), EXIF orientation applied
        self.orientation = np.asarray(orientation, np.uint8)
        self.formats = np.asarray(formats, np.uint8)
        self.label_status = np.asarray(label_status, np.uint8)
        self.label_offsets = np.asarray(label_offsets, np.int64)
        self.cls = np.asarray(cls, np.float32).reshape(-1)
        self.boxes = np.asarray(boxes, np.float32).reshape(-1, 4)  # normalized xywh, as in the label files
        # polygons: label row r's points are seg_xy[seg_off[r]:seg_off[r + 1]] (normalized xy; none for a box row)
        self.seg_off = np.zeros(len(self.cls) + 1, np.int64) if seg_off is None else np.asarray(seg_off, np.int64)
        self.seg_xy = np.zeros((0, 2), np.float32) if seg_xy is None else np.asarray(seg_xy, np.float32).reshape(-1, 2)
        self.names, self.data, self.split = names, data, split
        self.skipped, self.notes, self.ignored, self.n_duplicates = skipped, notes, ignored, n_duplicates
        self.cache_file, self.build_info = cache_file, build_info or {}
        self._stamps = None if stamps is None else np.asarray(stamps, np.int64).reshape(-1, 2)

    def __len__(self) -> int:
        return len(self.im_files)

    def labels_of(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(cls (k,), boxes (k, 4)) of image ``i``: read-only views, no copy."""
        a, b = self.label_offsets[i], self.label_offsets[i + 1]
        return self.cls[a:b], self.boxes[a:b]

    def polygons_of(self, i: int) -> list[np.ndarray]:
        """Image ``i``'s polygons as Ultralytics' ``segments`` list ((k, 2) normalized xy each; [] for boxes)."""
        a, b = self.label_offsets[i], self.label_offsets[i + 1]
        if self.seg_off[b] == self.seg_off[a]:
            return []
        return [self.seg_xy[self.seg_off[r]:self.seg_off[r + 1]].copy() for r in range(a, b)]

    @property
    def has_polygons(self) -> bool:
        """Every label row is a polygon (stock keeps polygons only then, see ``build_index``)."""
        return len(self.seg_xy) > 0

    @property
    def stamps(self) -> np.ndarray:
        """(n, 2) int64: each image file's size and mtime_ns when it was indexed (from the index's own stat pass;
        read from the files for an index built another way): what tells a cache that a source changed."""
        if self._stamps is None:
            self._stamps = np.array([_stat(self.im_files[i]) for i in range(len(self))], np.int64).reshape(-1, 2)
        return self._stamps

    @property
    def labels(self) -> LabelsView:
        return LabelsView(self)

    @property
    def n_backgrounds(self) -> int:
        return int((np.diff(self.label_offsets) == 0).sum())

    @property
    def n_boxes(self) -> int:
        return len(self.cls)

    def skip_counts(self) -> dict[str, int]:
        c = Counter(s.reason for s in self.skipped)
        return {r: c[r] for r in REASONS if c[r]}

    def summary(self) -> str:
        """One line: kept images, backgrounds, skipped files by reason, repairs."""
        line = f"{self.split}: {len(self)} images, {self.n_backgrounds} backgrounds, {self.n_boxes} boxes"
        counts = self.skip_counts()
        line += f", {len(self.skipped)} skipped"
        if counts:
            line += ": " + ", ".join(f"{n} {r}" for r, n in counts.items())
        if self.has_polygons:
            line += f"; polygons ({len(self.seg_xy)} points)"
        if self.n_duplicates:
            line += f"; {self.n_duplicates} duplicate label rows removed"
        if self.ignored:
            line += f"; {self.ignored} non-image files ignored"
        return line

    def nbytes(self) -> int:
        arrays = (self.im_files.blob, self.im_files.offsets, self.shapes, self.orientation, self.formats,
                  self.label_status, self.label_offsets, self.cls, self.boxes, self.seg_off, self.seg_xy)
        return int(sum(a.nbytes for a in arrays))

    def format_name(self, i: int) -> str:
        return FORMATS[int(self.formats[i])]


# ----------------------------------------------------------------------------- building

def _stat(path: str) -> tuple[int, int]:
    try:
        st = os.stat(path)
        return st.st_size, st.st_mtime_ns
    except OSError:
        return -1, -1


def _stats(im_files: list[str], lb_files: list[str]) -> np.ndarray:
    out = np.empty((len(im_files), 4), np.int64)
    for k, (a, b) in enumerate(zip(im_files, lb_files)):
        out[k, :2] = _stat(a)
        out[k, 2:] = _stat(b)
    return out


class _Table:
    """Probe results for every candidate (kept or not): what the cache file stores."""

    FIELDS = ("stats", "reason", "shapes", "orientation", "formats", "label_status", "label_offsets", "cls", "boxes",
              "dupes", "seg_counts", "seg_xy")

    def __init__(self, paths: StringTable, details: dict[int, str], **arrays):
        self.paths, self.details = paths, details
        for k in self.FIELDS:
            setattr(self, k, arrays[k])

    @classmethod
    def from_results(cls, paths: list[str], stats: np.ndarray, results: list) -> _Table:
        n = len(results)
        reason = np.full(n, -1, np.int8)
        shapes = np.zeros((n, 2), np.int32)
        orientation, formats, label_status = (np.zeros(n, np.uint8) for _ in range(3))
        dupes = np.zeros(n, np.int32)
        counts = np.zeros(n + 1, np.int64)
        rows, details, seg_counts, seg_xy = [], {}, [], []
        for k, (res, why, note) in enumerate(results):
            if note:
                details[k] = note
            if res is None:
                reason[k] = REASONS.index(why)
                continue
            h, w, o, f, lb, st, d, (pc, pxy) = res
            shapes[k] = h, w
            orientation[k], formats[k], label_status[k], dupes[k] = o, f, LABEL_STATUS.index(st), d
            counts[k + 1] = len(lb)
            rows.append(lb)
            seg_counts.append(pc)
            seg_xy.append(pxy)
        lb = np.concatenate(rows).astype(np.float32) if rows else np.zeros((0, 5), np.float32)
        seg_counts = np.concatenate(seg_counts).astype(np.int32) if seg_counts else np.zeros(0, np.int32)
        seg_xy = np.concatenate(seg_xy).astype(np.float32) if seg_xy else np.zeros((0, 2), np.float32)
        return cls(StringTable.from_list(paths), details, stats=stats, reason=reason, shapes=shapes,
                   orientation=orientation, formats=formats, label_status=label_status,
                   label_offsets=np.cumsum(counts), cls=lb[:, 0].copy(), boxes=lb[:, 1:5].copy(), dupes=dupes,
                   seg_counts=seg_counts, seg_xy=seg_xy.reshape(-1, 2))

    @property
    def seg_off(self) -> np.ndarray:
        out = np.zeros(len(self.seg_counts) + 1, np.int64)
        np.cumsum(self.seg_counts, out=out[1:])
        return out

    def result(self, k: int):
        """Candidate ``k`` back in ``probe_pair``'s result form (for incremental rebuilds)."""
        note = self.details.get(k, "")
        if self.reason[k] >= 0:
            return None, REASONS[self.reason[k]], note
        a, b = self.label_offsets[k], self.label_offsets[k + 1]
        lb = np.concatenate([self.cls[a:b, None], self.boxes[a:b]], 1)
        h, w = self.shapes[k]
        off = self.seg_off
        polygons = self.seg_counts[a:b].copy(), self.seg_xy[off[a]:off[b]]
        return ((int(h), int(w), int(self.orientation[k]), int(self.formats[k]), lb,
                 LABEL_STATUS[self.label_status[k]], int(self.dupes[k]), polygons), None, note)

    def save(self, path: Path, key: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            np.savez(f, version=np.int64(INDEX_VERSION), key=np.str_(key), paths_blob=self.paths.blob,
                     paths_offsets=self.paths.offsets,
                     details=np.str_(json.dumps({str(k): v for k, v in self.details.items()})),
                     **{k: getattr(self, k) for k in self.FIELDS})
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path, key: str) -> _Table:
        with np.load(path, allow_pickle=False) as z:
            if int(z["version"]) != INDEX_VERSION or str(z["key"]) != key:
                raise ValueError("written by another version or for another source")
            arrays = {k: z[k] for k in cls.FIELDS}
            details = {int(k): v for k, v in json.loads(str(z["details"])).items()}
            paths = StringTable(z["paths_blob"], z["paths_offsets"])
        n = len(paths)
        if arrays["stats"].shape != (n, 4) or len(arrays["label_offsets"]) != n + 1 or \
                arrays["label_offsets"][-1] != len(arrays["cls"]) or len(arrays["boxes"]) != len(arrays["cls"]) or \
                len(arrays["seg_counts"]) != len(arrays["cls"]) or arrays["seg_counts"].sum() != len(arrays["seg_xy"]):
            raise ValueError("inconsistent array sizes")
        return cls(paths, details, **arrays)


def _probe_all(args: list[tuple], workers: int | None, split: str = "") -> list:
    if workers is None:
        workers = min(os.cpu_count() or 1, 8) if len(args) >= _PARALLEL_MIN else 1
    out = []
    with Progress(f"indexing {split}".strip(), len(args), "files") as bar:
        if workers <= 1:
            for a in args:
                out.append(probe_pair(a))
                bar.update()
            return out
        # child processes that never import the caller's script (a plain script without a __main__ guard works)
        return map_in_processes("loader.dataset.probe:probe_pair", args, workers,
                                chunksize=max(64, min(1024, len(args) // (workers * 8))), progress=bar).results


def _cache_key(src: Source, source, num_cls, single_cls, count) -> str:
    where = src.data.get("yaml_file") or (
        [os.path.abspath(s) for s in source] if isinstance(source, (list, tuple)) else os.path.abspath(source))
    return json.dumps({"v": INDEX_VERSION, "source": where, "split": src.split, "nc": num_cls, "single": single_cls,
                       "count": count}, sort_keys=True)


def fraction_count(fraction: float | int, n: int) -> int:
    """How many of ``n`` candidate files a ``fraction`` keeps, as Ultralytics' ``get_img_files``: an ``int`` is a
    count, a ``float`` a ratio (``max(1, round(n * fraction))``); the first ones of the sorted list are kept."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float, np.integer, np.floating)):
        raise ValueError(f"fraction must be a ratio (float) or an image count (int), got {fraction!r}")
    if isinstance(fraction, (int, np.integer)):
        if fraction < 1:
            raise ValueError(f"fraction as an image count must be >= 1, got {fraction}")
        return min(int(fraction), n)
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction as a ratio must be in (0, 1], got {fraction}")
    return min(n, max(1, round(n * float(fraction))))


def select_labels(index: "DatasetIndex", classes=None, single_cls: bool = False) -> "DatasetIndex":
    """Ultralytics' ``update_labels``: keep the label rows whose class is in ``classes`` (images left without any
    stay, as backgrounds), then every class 0 under ``single_cls``. A new index; the images are the same."""
    if classes is None and not single_cls:
        return index
    cls, boxes, off = index.cls, index.boxes, index.label_offsets
    if classes is not None:
        wanted = np.asarray(list(classes) if not np.isscalar(classes) else [classes], np.float32).reshape(-1)
        keep = np.isin(cls, wanted)
        owner = np.repeat(np.arange(len(index)), np.diff(off))
        counts = np.bincount(owner[keep], minlength=len(index))
        off = np.zeros(len(index) + 1, np.int64)
        np.cumsum(counts, out=off[1:])
        cls, boxes = cls[keep], boxes[keep]
    seg_off, seg_xy = index.seg_off, index.seg_xy
    if classes is not None and len(seg_xy):
        lens = np.diff(seg_off)[keep]
        seg_xy = seg_xy[ranges(seg_off[:-1][keep], lens)]
        seg_off = np.zeros(len(lens) + 1, np.int64)
        np.cumsum(lens, out=seg_off[1:])
    if single_cls:
        cls = np.zeros_like(cls)
    out = copy.copy(index)
    out.cls, out.boxes, out.label_offsets, out.seg_off, out.seg_xy = cls, boxes, off, seg_off, seg_xy
    return out



def build_index(source, split: str = "train", *, names=None, cache: bool | str | os.PathLike = True,
                single_cls: bool = False, classes=None, fraction: float | int = 1.0, workers: int | None = None,
                verbose: bool = True) -> DatasetIndex:
    """Index one split of ``source`` (data.yaml, image folder, .txt list, or list of image paths).

    ``cache``: True (default folder, see ``default_cache_dir``; env ``YOLO_LOADER_CACHE_DIR``),
    a file path, or False. ``workers``: processes for header checks (default: by size).
    ``fraction``, ``classes``, ``single_cls``: Ultralytics' training arguments with its semantics: the first
    ``fraction`` of the sorted candidates (a ratio, or an ``int`` count; before any file is checked, as stock),
    the label rows of ``classes`` only, every class 0.
    """
    t0 = time.perf_counter()
    src = resolve_source(source, split, names)
    num_cls = len(src.names) if src.names else None
    im_files = src.im_files
    if not im_files:
        raise DatasetError(f"no image files found in {source} ({split})"
                           + (f"; {len(src.ignored)} files with non-image extensions" if src.ignored else ""))
    count = fraction_count(fraction, len(im_files))
    if count < len(im_files):
        im_files = im_files[:count]
    lb_files = [img2label_path(p) for p in im_files]
    stats = _stats(im_files, lb_files)
    key = _cache_key(src, source, num_cls, single_cls, count if count < len(src.im_files) else None)
    cache_file = None
    if cache:
        cache_file = Path(cache) if not isinstance(cache, bool) else \
            default_cache_dir() / (hashlib.sha1(key.encode()).hexdigest()[:20] + ".npz")

    old, state = None, "off"
    if cache_file is not None:
        if cache_file.exists():
            try:
                old = _Table.load(cache_file, key)
            except Exception as e:  # truncated, garbage, foreign: rebuild, never trust
                LOG.warning("index cache %s unreadable (%s: %s); rebuilding", cache_file, type(e).__name__, e)
                state = "rebuilt (corrupt cache)"
        else:
            state = "built"
    paths = StringTable.from_list(im_files)
    if old is not None and old.paths.equals(paths) and np.array_equal(old.stats, stats):
        table, state, n_probed = old, "hit", 0
    else:
        reuse = {}
        if old is not None:
            old_rows = {p: k for k, p in enumerate(old.paths.tolist())}
            for k, p in enumerate(im_files):
                j = old_rows.get(p)
                if j is not None and np.array_equal(old.stats[j], stats[k]):
                    reuse[k] = old.result(j)
            state = f"updated ({len(im_files) - len(reuse)} re-checked, {len(old.paths) - len(reuse)} stale)"
        todo = [k for k in range(len(im_files)) if k not in reuse]
        fresh = _probe_all([(im_files[k], lb_files[k], num_cls, single_cls) for k in todo], workers, src.split)
        results = [reuse.get(k) for k in range(len(im_files))]
        for k, r in zip(todo, fresh):
            results[k] = r
        table, n_probed = _Table.from_results(im_files, stats, results), len(todo)
        if cache_file is not None:
            try:
                table.save(cache_file, key)
            except OSError as e:
                LOG.warning("index cache %s not written (%s); the next start re-checks every file", cache_file, e)
    index = _index_from_table(table, src, len(src.ignored))
    dropped = _drop_mixed_polygons(index)
    index = select_labels(index, classes, single_cls)
    index.cache_file = str(cache_file) if cache_file else None
    index.build_info = {"seconds": time.perf_counter() - t0, "cache": state, "probed": n_probed,
                        "candidates": len(im_files), "fraction": fraction, "classes": classes,
                        "single_cls": single_cls, "polygons_dropped": dropped}
    _report(index, verbose)
    if len(index) == 0:
        reasons = ", ".join(f"{n} {r}" for r, n in index.skip_counts().items())
        first = "\n  ".join(f"{s.path}: {s.reason}: {s.detail}" for s in index.skipped[:5])
        raise DatasetError(f"no usable images in {source} ({split}): all {len(im_files)} skipped ({reasons})"
                           f"\n  {first}")
    return index


def _index_from_table(t: _Table, src: Source, ignored: int) -> DatasetIndex:
    keep = np.flatnonzero(t.reason < 0)
    skipped = [Skipped(t.paths[k], REASONS[t.reason[k]], t.details.get(int(k), ""))
               for k in np.flatnonzero(t.reason >= 0)]
    notes = [(t.paths[k], t.details[k]) for k in sorted(t.details) if t.reason[k] < 0]
    counts = np.diff(t.label_offsets)[keep]  # skipped candidates hold no label rows
    offsets = np.zeros(len(keep) + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    all_kept = len(keep) == len(t.paths)
    return DatasetIndex(im_files=t.paths if all_kept else t.paths.take(keep), shapes=t.shapes[keep],
                        orientation=t.orientation[keep], formats=t.formats[keep], label_status=t.label_status[keep],
                        label_offsets=offsets, cls=t.cls, boxes=t.boxes, names=src.names, data=src.data,
                        split=src.split, skipped=skipped, notes=notes, ignored=ignored,
                        n_duplicates=int(t.dupes[keep].sum()), stamps=t.stats[keep, :2], seg_off=t.seg_off,
                        seg_xy=t.seg_xy)


def _drop_mixed_polygons(index: DatasetIndex) -> int:
    """Stock's rule (``YOLODataset.get_labels``): polygons count only when every label row of the split is one;
    a split mixing box files and polygon files trains on boxes alone. Returns the polygon rows dropped."""
    n_poly = int((np.diff(index.seg_off) > 0).sum())
    if n_poly == 0 or n_poly == len(index.cls):
        return 0
    LOG.warning("%s: %d of %d label rows are polygons, the others boxes: as stock, only the boxes are used and "
                "every polygon is dropped (boxes of polygon rows stay their polygons' extent); give each split one "
                "kind of label rows to train from the outlines", index.split, n_poly, len(index.cls))
    index.seg_off, index.seg_xy = np.zeros(len(index.cls) + 1, np.int64), np.zeros((0, 2), np.float32)
    return n_poly


def _report(index: DatasetIndex, verbose: bool) -> None:
    emit = LOG.warning if verbose else LOG.debug
    n = len(index.skipped)
    for k, s in enumerate(index.skipped[:_MAX_LOGGED], 1):
        emit("skipped %d/%d %s: %s (%s)", k, n, s.path, s.reason, s.detail)
    if n > _MAX_LOGGED:
        emit("... and %d more skipped files (index.skipped lists them all)", n - _MAX_LOGGED)
    for k, (p, note) in enumerate(index.notes[:_MAX_LOGGED], 1):
        emit("repaired %d/%d %s: %s", k, len(index.notes), p, note)
    info = index.build_info
    (LOG.info if verbose else LOG.debug)("%s [index %.2fs, cache %s]", index.summary(), info["seconds"], info["cache"])
