"""Check one image/label pair without decoding pixels.

The rules mirror Ultralytics 8.4 ``verify_image_label`` so that both keep and reject
the same files and produce the same boxes (``tests/test_index_parity.py`` pins this),
with three deliberate differences:

* every rejection has a category (``REASONS``) so the summary can count them;
* a JPEG without its end-of-image marker is *never rewritten* (Ultralytics re-encodes
  and replaces the user's file): it is kept when it fully decodes, and skipped as
  ``truncated`` when it does not (the only case where pixels are decoded here);
* orientations 5/7 (transpose) swap width and height for every format cv2 honours.

This module imports neither torch nor cv2 at import time, so pool workers start fast.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from .source import IMG_FORMATS

__all__ = ["REASONS", "FORMATS", "BadSample", "probe_image", "parse_labels", "probe_pair"]

# Why an image was skipped; order fixes the summary's order.
REASONS = ("missing", "zero-byte", "truncated", "corrupt", "unsupported format", "too small",
           "bad label rows", "out-of-bounds coordinates", "unknown class")
# Stored per image as a small integer.
FORMATS = ("other", "jpeg", "png", "webp", "bmp", "tiff", "mpo", "jpeg2000", "avif", "heif", "dng")
_FORMAT_CODE = {f: i for i, f in enumerate(FORMATS)}
_FORMAT_CODE.update({"jpg": 1, "tif": 5, "jp2": 7, "heic": 9})


class BadSample(Exception):
    def __init__(self, reason: str, detail: str):
        assert reason in REASONS, reason
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def _pil_open():
    """PIL's own ``Image.open``, also when a library replaced it.

    Ultralytics patches ``Image.open`` so that an unidentified file triggers a pip install
    of a HEIF plugin; a data check must not install packages, nor try once per bad file.
    """
    op = Image.open
    for _ in range(4):
        if getattr(op, "__module__", "PIL.Image") == "PIL.Image":
            return op
        inner = [v for v in getattr(op, "__globals__", {}).values()
                 if callable(v) and getattr(v, "__module__", None) == "PIL.Image" and getattr(v, "__name__", "") == "open"]
        if not inner:
            break
        op = inner[0]
    return op


def _decodes_fully(path: str) -> bool:
    try:
        with _pil_open()(path) as im:
            im.load()
        return True
    except Exception:
        return False


def probe_image(path: str) -> tuple[int, int, int, int, str]:
    """(height, width, EXIF orientation (0 = none), format code, note) of the upright image.

    ``note`` is a warning worth reporting for a kept image ("" when none); bad images raise
    :class:`BadSample`.
    """
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        raise BadSample("missing", "image file not found") from None
    except OSError as e:
        raise BadSample("corrupt", f"cannot stat image: {e}") from None
    if size == 0:
        raise BadSample("zero-byte", "image file is empty (0 bytes)")
    try:
        with _pil_open()(path) as im:
            im.verify()
            fmt = (im.format or "").lower()
            w, h = im.size
            try:
                exif = im.tag_v2 if im.format == "TIFF" else im.getexif()
                orientation = int(exif.get(274) or 0)
            except Exception:
                orientation = 0
    except Image.UnidentifiedImageError:
        raise BadSample("corrupt", "not a recognised image (unknown file signature)") from None
    except Exception as e:  # PIL raises many types for garbage, truncation, bad CRCs
        raise BadSample("corrupt", f"cannot read image header: {type(e).__name__}: {e}") from None
    if fmt not in IMG_FORMATS | {"jpeg2000"}:
        raise BadSample("unsupported format", f"image data is {fmt.upper() or 'unknown'}, not a supported image format")
    if orientation not in range(9):
        orientation = 0
    if orientation in (5, 6, 7, 8):
        if fmt in ("jpeg", "mpo", "png", "avif"):
            w, h = h, w
        else:  # WebP/TIFF orientation handling differs between decoders: ask the one we decode with
            import cv2
            arr = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR)
            if arr is None:
                raise BadSample("corrupt", "image does not decode")
            h, w = arr.shape[:2]
    if h <= 9 or w <= 9:
        raise BadSample("too small", f"image size {h}x{w} is under 10 pixels")
    if fmt in ("jpeg", "mpo"):
        with open(path, "rb") as f:
            f.seek(-2, 2)
            intact = f.read() == b"\xff\xd9"
        if not intact:
            if not _decodes_fully(path):
                raise BadSample("truncated", "JPEG is truncated (no end-of-image marker, does not decode)")
            return h, w, orientation, _FORMAT_CODE.get(fmt, 0), "JPEG has no end-of-image marker but decodes; kept"
    return h, w, orientation, _FORMAT_CODE.get(fmt, 0), ""


def _segments2boxes(segments: list[np.ndarray]) -> np.ndarray:
    """Polygon rows -> xywh boxes of their extent (Ultralytics ``segments2boxes``)."""
    b = np.array([[s[:, 0].min(), s[:, 1].min(), s[:, 0].max(), s[:, 1].max()] for s in segments],
                 dtype=np.float64).reshape(-1, 4)
    return np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], 1)


_NO_POLYGONS = np.zeros(0, np.int32), np.zeros((0, 2), np.float32)


def parse_labels(path: str, num_cls: int | None, single_cls: bool = False):
    """Rows of a YOLO label file as an (n, 5) float32 [cls, x, y, w, h] array, and their polygons.

    Returns ``(labels, status, n_duplicates, (points per row (n,) int32, points (P, 2) float32))`` with
    status ``"missing"``, ``"empty"`` or ``"ok"``; a box-only file has 0 points per row. A bad file raises
    :class:`BadSample` (the whole image is skipped, as Ultralytics does, so a half-read label file never trains
    as a partial truth). ``num_cls=None``: any class id >= 0.
    """
    if not os.path.isfile(path):
        return np.zeros((0, 5), np.float32), "missing", 0, _NO_POLYGONS
    try:
        with open(path, encoding="utf-8-sig") as f:
            rows = [x.split() for x in f.read().strip().splitlines() if x.strip()]
    except (UnicodeDecodeError, OSError) as e:
        raise BadSample("bad label rows", f"label file unreadable: {e}") from None
    if not rows:
        return np.zeros((0, 5), np.float32), "empty", 0, _NO_POLYGONS
    try:
        if any(len(x) > 6 for x in rows):  # polygon rows: boxes are their extent
            if any(len(x) == 5 for x in rows):
                raise BadSample("bad label rows", "labels mix segment and detection rows")
            classes = np.array([x[0] for x in rows], dtype=np.float32)
            segments = [np.array(x[1:], dtype=np.float32).reshape(-1, 2) for x in rows]
            lb = np.concatenate((classes.reshape(-1, 1), _segments2boxes(segments)), 1).astype(np.float32)
        else:
            segments = []
            lens = {len(x) for x in rows}
            if lens != {5}:
                bad = next(i for i, x in enumerate(rows) if len(x) != 5)
                raise BadSample("bad label rows",
                                f"labels require 5 columns, row {bad + 1} has {len(rows[bad])}")
            lb = np.array(rows, dtype=np.float32)
    except ValueError as e:
        raise BadSample("bad label rows", f"non-numeric or malformed label values ({e})") from None
    points = lb[:, 1:]
    if not points.max() <= 1.01:
        raise BadSample("out-of-bounds coordinates",
                        f"coordinates outside [0, 1] beyond the 1% tolerance: {points[~(points <= 1.01)][:4]}")
    if not (lb[:, 0].min() >= 0) or not (lb[:, 0] % 1 == 0).all():
        raise BadSample("unknown class", f"class ids must be non-negative integers, got {lb[:, 0][:8]}")
    lb_min = lb.min()
    if not (lb_min >= 0 or (lb_min >= -0.01 and lb[:, 3:5].min() >= 0)):
        raise BadSample("out-of-bounds coordinates", f"negative label values {lb[lb < 0][:4]}")
    max_cls = 0 if single_cls else lb[:, 0].max()
    if num_cls is not None and max_cls >= num_cls:
        raise BadSample("unknown class", f"class {int(max_cls)} not in names (0-{num_cls - 1})")
    nl = len(lb)
    if len({r.tobytes() for r in lb}) == nl:  # no duplicates: skip np.unique (80 us)
        return lb, "ok", 0, _polygons(segments, nl)
    _, i = np.unique(lb, axis=0, return_index=True)
    if len(i) < nl and segments:  # distinct polygons may share a class and box
        keys = np.array([c.tobytes() + s.tobytes() for c, s in zip(lb[:, 0], segments)], dtype=object)
        _, i = np.unique(keys, return_index=True)
    dupes = nl - len(i)
    if dupes:
        lb = lb[i]  # Ultralytics keeps np.unique's (sorted) order, polygons with their rows
        segments = [segments[k] for k in i] if segments else segments
    return lb, "ok", dupes, _polygons(segments, len(lb))


def _polygons(segments: list[np.ndarray], n: int) -> tuple[np.ndarray, np.ndarray]:
    if not segments:
        return np.zeros(n, np.int32), _NO_POLYGONS[1]
    return np.array([len(s) for s in segments], np.int32), np.concatenate(segments).astype(np.float32)


def probe_pair(args: tuple):
    """Pool entry point: ``(im_file, lb_file, num_cls, single_cls)`` -> ``(result, reason, note)``.

    ``result`` is ``(h, w, orientation, fmt, labels, label_status, n_duplicates, polygons)`` for a
    kept image and None for a skipped one (``reason`` then names why, ``note`` says the detail).
    """
    im_file, lb_file, num_cls, single_cls = args
    try:
        h, w, orientation, fmt, note = probe_image(im_file)
        lb, status, dupes, polygons = parse_labels(lb_file, num_cls, single_cls)
    except BadSample as e:
        return None, e.reason, e.detail
    if dupes:
        note = "; ".join(x for x in (note, f"{dupes} duplicate label rows removed") if x)
    return (h, w, orientation, fmt, lb, status, dupes, polygons), None, note
