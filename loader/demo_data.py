"""Deterministic demo detection data: real photo backgrounds, solid objects, exact labels.

Backgrounds are crops, scales, flips and colour shifts of the two photos that ship
inside the ultralytics package (``assets/bus.jpg``, ``assets/zidane.jpg``; found on
disk, Ultralytics is not imported). Objects are solid-coloured shapes, one colour
and shape per class, placed without overlapping each other, so each label is the
exact bounding box of that object's pixels (some objects are cut by the border;
their box is the visible part). Image ``k`` depends only on (seed, k, size,
quality): growing ``count`` keeps the existing images.

``nasty=True`` adds every bad input the index must handle (see ``NASTY_CASES``).
"""

from __future__ import annotations

import importlib.util
import io
import os
from pathlib import Path

import cv2
import numpy as np

from .procpool import map_in_processes

__all__ = ["CLASSES", "NASTY_CASES", "make_demo_dataset", "asset_paths", "render_sample"]

# name, shape, BGR colour: saturated colours that the background photos hardly contain.
CLASSES = (("red_box", "box", (30, 30, 230)), ("green_ellipse", "ellipse", (40, 220, 40)),
           ("blue_triangle", "triangle", (230, 60, 20)), ("yellow_box", "box", (20, 230, 240)),
           ("magenta_ellipse", "ellipse", (230, 30, 230)), ("cyan_triangle", "triangle", (240, 230, 20)))

# file name -> (what it is, what the index must do with it)
NASTY_CASES = {
    "nasty_png.png": ("PNG image", "kept"),
    "nasty_gray.jpg": ("grayscale JPEG", "kept"),
    "nasty_cmyk.jpg": ("CMYK JPEG", "kept"),
    "nasty_exif6.jpg": ("JPEG stored sideways, EXIF orientation 6", "kept"),
    "nasty_exif3.jpg": ("JPEG stored upside down, EXIF orientation 3", "kept"),
    "nasty_overshoot.jpg": ("label coordinate 1.005 (inside the 1% tolerance)", "kept"),
    "nasty_dupes.jpg": ("duplicate label rows", "kept"),
    "nasty_nolabel.jpg": ("no label file", "background"),
    "nasty_emptylabel.jpg": ("empty label file", "background"),
    "nasty_missing.jpg": ("listed in train.txt, not on disk", "missing"),
    "nasty_zero.jpg": ("zero-byte file", "zero-byte"),
    "nasty_truncated.jpg": ("JPEG cut in half", "truncated"),
    "nasty_garbage.jpg": ("random bytes named .jpg", "corrupt"),
    "nasty_gif.jpg": ("GIF data named .jpg", "unsupported format"),
    "nasty_tiny.jpg": ("8x8 pixels", "too small"),
    "nasty_cols.jpg": ("label row with 4 columns", "bad label rows"),
    "nasty_text.jpg": ("non-numeric label values", "bad label rows"),
    "nasty_oob.jpg": ("label coordinate 1.5", "out-of-bounds coordinates"),
    "nasty_badclass.jpg": ("class id 99, not in names", "unknown class"),
}


def asset_paths() -> list[Path]:
    spec = importlib.util.find_spec("ultralytics")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the ultralytics package is needed for the demo backgrounds (pip install ultralytics)")
    root = Path(list(spec.submodule_search_locations)[0]) / "assets"
    paths = [root / "bus.jpg", root / "zidane.jpg"]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise RuntimeError(f"ultralytics assets not found: {missing}")
    return paths


_ASSETS: list[np.ndarray] | None = None


def _assets() -> list[np.ndarray]:
    global _ASSETS
    if _ASSETS is None:
        _ASSETS = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in asset_paths()]
    return _ASSETS


def _background(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    src = _assets()[int(rng.integers(len(_assets())))]
    sh, sw = src.shape[:2]
    # largest crop with the target aspect, then a random 55-100 % of it
    cw, ch = (sw, sw * h / w) if sw * h / w <= sh else (sh * w / h, sh)
    f = rng.uniform(0.55, 1.0)
    cw, ch = max(16, int(cw * f)), max(16, int(ch * f))
    x0, y0 = int(rng.integers(0, sw - cw + 1)), int(rng.integers(0, sh - ch + 1))
    img = cv2.resize(src[y0:y0 + ch, x0:x0 + cw], (w, h), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.5:
        img = img[:, ::-1]
    gains = rng.uniform(0.75, 1.25, 3) * rng.uniform(0.7, 1.2)
    return np.clip(img.astype(np.float32) * gains, 0, 255).astype(np.uint8)


def _shape_mask(kind: str, bw: int, bh: int, rng: np.random.Generator) -> np.ndarray:
    m = np.zeros((bh, bw), np.uint8)
    if kind == "box":
        m[:] = 1
    elif kind == "ellipse":
        cv2.ellipse(m, (((bw - 1) / 2, (bh - 1) / 2), (bw, bh), 0), 1, -1)
    else:
        apex = int(rng.integers(0, bw))
        cv2.fillPoly(m, [np.array([[apex, 0], [0, bh - 1], [bw - 1, bh - 1]], np.int32)], 1)
    return m


# Flat sets: every object a solid rectangle in its own colour (6 levels per channel, greys left out).
PALETTE = [(b, g, r) for b in range(0, 256, 51) for g in range(0, 256, 51) for r in range(0, 256, 51)
           if max(b, g, r) - min(b, g, r) >= 102]


def render_sample(seed: int, k: int, w: int = 1920, h: int = 1080, max_objects: int = 8, flat: bool = False,
                  polygons: bool = False):
    """Image ``k`` of a demo set: (BGR uint8 image, labels (n, 5) float64 [cls, xc, yc, bw, bh]).

    ``polygons``: also each object's visible outline, a (k, 2) normalized xy polygon (``cv2.findContours`` of
    its visible pixels, simplified to 1 px), returned third; the image is the same as without.

    ``flat``: grey background and solid rectangles only, object ``j`` of image ``k`` in colour
    ``PALETTE[(k * 8 + j) % len(PALETTE)]`` (unique within 20+ images): a set on which every
    object's pixels can be found again after any geometric augmentation.
    """
    rng = np.random.default_rng([seed, k, 0xD3])
    img = np.full((h, w, 3), 60, np.uint8) if flat else np.ascontiguousarray(_background(rng, w, h))
    n = 0 if rng.random() < 0.06 else int(rng.integers(1, max_objects + 1))
    taken = np.zeros((h, w), bool)
    labels, outlines = [], []
    short = min(w, h)
    for _ in range(n):
        c = int(rng.integers(len(CLASSES)))
        _, kind, colour = CLASSES[c]
        if flat:
            kind, colour = "box", PALETTE[(k * max_objects + len(labels)) % len(PALETTE)]
        for _try in range(30):
            bw = int(short * rng.uniform(0.05, 0.35) * rng.uniform(0.6, 1.6))
            bh = int(short * rng.uniform(0.05, 0.35) * rng.uniform(0.6, 1.6))
            bw, bh = max(12, min(bw, w - 2)), max(12, min(bh, h - 2))
            edge = rng.random() < 0.12  # partly outside the frame: the label is the visible part
            lo_x, lo_y = (-bw // 3, -bh // 3) if edge else (0, 0)
            hi_x, hi_y = (w - bw + bw // 3, h - bh + bh // 3) if edge else (w - bw, h - bh)
            x0, y0 = int(rng.integers(lo_x, hi_x + 1)), int(rng.integers(lo_y, hi_y + 1))
            mask = _shape_mask(kind, bw, bh, rng).astype(bool)
            vx0, vy0, vx1, vy1 = max(x0, 0), max(y0, 0), min(x0 + bw, w), min(y0 + bh, h)
            sub = mask[vy0 - y0:vy1 - y0, vx0 - x0:vx1 - x0]
            if sub.sum() < 64:
                continue
            # keep objects apart so JPEG ringing never touches a neighbour's pixels (flat sets: so far
            # apart that they stay separate after downscaling and the strongest augmentation)
            pad = max(24, short // 15) if flat else 6
            if taken[max(vy0 - pad, 0):vy1 + pad, max(vx0 - pad, 0):vx1 + pad].any():
                continue
            taken[vy0:vy1, vx0:vx1] |= sub
            img[vy0:vy1, vx0:vx1][sub] = colour
            ys, xs = np.nonzero(sub)
            px0, px1 = vx0 + xs.min(), vx0 + xs.max() + 1
            py0, py1 = vy0 + ys.min(), vy0 + ys.max() + 1
            labels.append([c, (px0 + px1) / 2 / w, (py0 + py1) / 2 / h, (px1 - px0) / w, (py1 - py0) / h])
            if polygons:
                outlines.append(_outline(sub, vx0, vy0, w, h))
            break
    labels = np.array(labels, np.float64).reshape(-1, 5)
    return (img, labels, outlines) if polygons else (img, labels)


def _outline(mask: np.ndarray, x0: int, y0: int, w: int, h: int) -> np.ndarray:
    """The largest outer contour of ``mask`` (placed at x0, y0), pixel edges as corners, normalized."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    c = cv2.approxPolyDP(max(contours, key=cv2.contourArea), 1.0, True).reshape(-1, 2).astype(np.float64)
    if len(c) < 3:
        ys, xs = np.nonzero(mask)
        c = np.array([[xs.min(), ys.min()], [xs.max(), ys.min()], [xs.max(), ys.max()], [xs.min(), ys.max()]], float)
    c = (c + [x0 + 0.5, y0 + 0.5]) / [w, h]
    return np.clip(c, 0, 1)


def _label_text(labels: np.ndarray) -> str:
    return "".join(f"{int(r[0])} {r[1]:.6f} {r[2]:.6f} {r[3]:.6f} {r[4]:.6f}\n" for r in labels)


def _polygon_text(labels: np.ndarray, outlines: list[np.ndarray]) -> str:
    return "".join(f"{int(r[0])} " + " ".join(f"{v:.6f}" for v in o.ravel()) + "\n" for r, o in zip(labels, outlines))


def _write_one(job) -> None:
    seed, k, w, h, quality, im_path, lb_path, flat, polygons = job
    if polygons:
        img, labels, outlines = render_sample(seed, k, w, h, flat=flat, polygons=True)
        text = _polygon_text(labels, outlines)
    else:
        img, labels = render_sample(seed, k, w, h, flat=flat)
        text = _label_text(labels)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    Path(im_path).write_bytes(buf.tobytes())
    Path(lb_path).write_text(text)


def _write_split(out: Path, split: str, first: int, count: int, seed: int, w: int, h: int, quality: int,
                 workers: int, flat: bool = False, polygons: bool = False) -> None:
    (out / "images" / split).mkdir(parents=True, exist_ok=True)
    (out / "labels" / split).mkdir(parents=True, exist_ok=True)
    jobs = [(seed, k, w, h, quality, str(out / "images" / split / f"{k:06d}.jpg"),
             str(out / "labels" / split / f"{k:06d}.txt"), flat, polygons) for k in range(first, first + count)]
    if workers > 1 and count >= 32:
        map_in_processes("loader.demo_data:_write_one", jobs, workers, chunksize=8)
    else:
        for j in jobs:
            _write_one(j)


def _jpeg_bytes(img: np.ndarray, quality: int = 90) -> bytes:
    return cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()


def _write_nasty(out: Path, seed: int, w: int, h: int, quality: int) -> None:
    from PIL import Image

    imd, lbd = out / "images" / "train", out / "labels" / "train"
    base = 10_000_000  # sample ids far from the regular ones

    def sample(j, ww=w, hh=h):
        return render_sample(seed, base + j, ww, hh)

    img, lb = sample(0)
    cv2.imwrite(str(imd / "nasty_png.png"), img)
    (lbd / "nasty_png.txt").write_text(_label_text(lb))

    img, lb = sample(1)
    cv2.imwrite(str(imd / "nasty_gray.jpg"), cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), [cv2.IMWRITE_JPEG_QUALITY, quality])
    (lbd / "nasty_gray.txt").write_text(_label_text(lb))

    img, lb = sample(2)
    Image.fromarray(img[:, :, ::-1]).convert("CMYK").save(imd / "nasty_cmyk.jpg", "JPEG", quality=quality)
    (lbd / "nasty_cmyk.txt").write_text(_label_text(lb))

    # Labels describe the upright image; the file stores it rotated and says so in EXIF.
    for j, (name, orientation, k) in enumerate((("nasty_exif6", 6, 1), ("nasty_exif3", 3, 2))):
        img, lb = sample(3 + j)
        exif = Image.Exif()
        exif[274] = orientation
        stored = np.ascontiguousarray(np.rot90(img, k))  # orientation 6: rotate 90 CW to display
        Image.fromarray(stored[:, :, ::-1]).save(imd / f"{name}.jpg", "JPEG", quality=quality, exif=exif.tobytes())
        (lbd / f"{name}.txt").write_text(_label_text(lb))

    good = {}
    for j, name in enumerate(("overshoot", "dupes", "nolabel", "emptylabel", "truncated", "cols", "text", "oob",
                              "badclass")):
        img, lb = sample(10 + j)
        if len(lb) == 0:  # these cases need at least one box
            lb = np.array([[0, 0.5, 0.5, 0.2, 0.2]])
        good[name] = (img, lb)
        (imd / f"nasty_{name}.jpg").write_bytes(_jpeg_bytes(img, quality))
    lb = good["overshoot"][1].copy()
    lb[0, 1:] = [0.9, 0.5, 0.21, 0.3]  # right edge 1.005
    (lbd / "nasty_overshoot.txt").write_text(_label_text(lb))
    lb = good["dupes"][1]
    (lbd / "nasty_dupes.txt").write_text(_label_text(np.concatenate([lb, lb[:1], lb[:1]])))
    (lbd / "nasty_emptylabel.txt").write_text("\n")
    data = (imd / "nasty_truncated.jpg").read_bytes()
    (imd / "nasty_truncated.jpg").write_bytes(data[: len(data) // 2])
    (lbd / "nasty_truncated.txt").write_text(_label_text(good["truncated"][1]))
    (lbd / "nasty_cols.txt").write_text(_label_text(good["cols"][1]) + "1 0.5 0.5 0.1\n")
    (lbd / "nasty_text.txt").write_text("0 0.5 0.5 wide tall\n")
    (lbd / "nasty_oob.txt").write_text("0 1.5 0.5 0.2 0.2\n")
    (lbd / "nasty_badclass.txt").write_text("99 0.5 0.5 0.2 0.2\n")

    (imd / "nasty_zero.jpg").write_bytes(b"")
    (lbd / "nasty_zero.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (imd / "nasty_garbage.jpg").write_bytes(np.random.default_rng(seed).integers(0, 256, 4096, np.uint8).tobytes())
    buf = io.BytesIO()
    Image.fromarray(sample(30)[0][:, :, ::-1]).convert("P").save(buf, "GIF")
    (imd / "nasty_gif.jpg").write_bytes(buf.getvalue())
    (imd / "nasty_tiny.jpg").write_bytes(_jpeg_bytes(np.full((8, 8, 3), 128, np.uint8)))
    (imd / "notes.md").write_text("not an image: ignored by extension\n")
    (imd / "clip.gif").write_bytes(buf.getvalue())  # a video/GIF extension: never a candidate


def make_demo_dataset(out, count: int = 64, size: tuple[int, int] = (1920, 1080), quality: int = 90,
                      seed: int = 0, nasty: bool = False, val_count: int | None = None,
                      workers: int | None = None, flat: bool = False, polygons: bool = False) -> Path:
    """Write ``count`` train and ``val_count`` (default ``max(4, count // 8)``) val images; returns data.yaml.

    ``polygons``: label rows are the objects' outlines (``class x1 y1 x2 y2 ...``, as COCO's segments ship
    for Ultralytics) instead of boxes; the images are the same.

    Rewrites the set in place (existing files with the same names are replaced).
    """
    w, h = size
    if count < 1 or w < 32 or h < 32 or not 1 <= quality <= 100:
        raise ValueError(f"need count >= 1, size >= 32x32 and 1 <= quality <= 100; got {count}, {w}x{h}, {quality}")
    out = Path(out)
    val_count = max(4, count // 8) if val_count is None else val_count
    workers = workers if workers is not None else min(os.cpu_count() or 1, 8)
    _write_split(out, "train", 0, count, seed, w, h, quality, workers, flat, polygons)
    if val_count:
        _write_split(out, "val", 1_000_000, val_count, seed, w, h, quality, workers, flat, polygons)
    train = "images/train"
    if nasty:
        _write_nasty(out, seed, w, h, quality)
        files = sorted(p.name for p in (out / "images" / "train").iterdir() if p.suffix in (".jpg", ".png"))
        files.append("nasty_missing.jpg")
        (out / "train.txt").write_text("".join(f"./images/train/{f}\n" for f in files))
        train = "train.txt"
    names = "".join(f"  {i}: {n}\n" for i, (n, _, _) in enumerate(CLASSES))
    yaml_text = (f"# yolo-loader demo data: seed {seed}, {w}x{h}, JPEG quality {quality}"
                 f"{', with bad inputs' if nasty else ''}\n"
                 f"train: {train}\n" + (f"val: images/val\n" if val_count else "") + f"names:\n{names}")
    (out / "data.yaml").write_text(yaml_text)
    return out / "data.yaml"
