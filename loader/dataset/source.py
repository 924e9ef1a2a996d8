"""Where the images are: an Ultralytics data.yaml, a folder, or a list of files.

Follows Ultralytics 8.4's rules so that the same data set resolves to the same
files: ``path`` (default: the yaml's folder), ``train``/``val``/``test`` as a
folder (searched recursively), a ``.txt`` list file (``./`` entries relative to
the list's folder) or a list of either; only files whose extension is an image
format are candidates; the label of ``.../images/.../x.jpg`` is
``.../labels/.../x.txt`` (the *last* ``/images/`` component is replaced).
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

__all__ = ["IMG_FORMATS", "DatasetError", "Source", "load_data_yaml", "resolve_source", "img2label_path",
           "list_image_files"]

# Ultralytics 8.4 IMG_FORMATS (ultralytics/data/utils.py).
IMG_FORMATS = frozenset({"avif", "bmp", "dng", "heic", "heif", "jp2", "jpeg", "jpg", "mpo", "png", "tif", "tiff",
                         "webp"})


class DatasetError(ValueError):
    """The data source cannot give a single usable image; the message says why."""


@dataclass
class Source:
    """A resolved split: candidate image files (sorted), class names, the data.yaml dict."""

    im_files: list[str]
    names: dict[int, str]
    data: dict = field(default_factory=dict)
    split: str = "train"
    # Files under the source that are not images by extension (never candidates).
    ignored: list[str] = field(default_factory=list)


def img2label_path(im_file: str, label_dir: str = "labels") -> str:
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}{label_dir}{os.sep}"
    return sb.join(im_file.rsplit(sa, 1)).rsplit(".", 1)[0] + ".txt"


def _names(data: dict, where: str) -> dict[int, str]:
    names, nc = data.get("names"), data.get("nc")
    if names is None and nc is None:
        raise DatasetError(f"{where}: either 'names' or 'nc' is required")
    if names is None:
        names = [f"class_{i}" for i in range(int(nc))]
    if isinstance(names, list):
        names = dict(enumerate(names))
    if not isinstance(names, dict) or not names:
        raise DatasetError(f"{where}: 'names' must be a non-empty list or dict, got {names!r}")
    try:
        names = {int(k): str(v) for k, v in names.items()}
    except (TypeError, ValueError) as e:
        raise DatasetError(f"{where}: class ids in 'names' must be integers ({e})") from None
    if sorted(names) != list(range(len(names))):
        raise DatasetError(f"{where}: class ids in 'names' must be 0..{len(names) - 1}, got {sorted(names)}")
    if nc is not None and int(nc) != len(names):
        raise DatasetError(f"{where}: 'names' has {len(names)} entries but 'nc' is {nc}")
    return names


def load_data_yaml(path: str | os.PathLike) -> dict:
    """Read a data.yaml and resolve its paths to absolute strings (Ultralytics' rules, see module doc).

    A relative ``path`` is tried against the current directory (as Ultralytics does) and then against
    the yaml's own folder; Ultralytics' extra fallback to its global datasets folder is not used.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"data file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8-sig")) or {}
    except yaml.YAMLError as e:
        raise DatasetError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected a mapping at the top level")
    data["names"] = _names(data, str(path))
    data["nc"] = len(data["names"])
    root = data.get("path")
    if root:
        root = Path(root)
        if not root.is_absolute():
            root = root if root.exists() else path.parent / root
    else:
        root = path.parent
    root = root.resolve()
    data["path"] = str(root)
    for k in ("train", "val", "test", "minival"):
        v = data.get(k)
        if not v:
            continue
        if isinstance(v, str):
            x = (root / v).resolve()
            if not x.exists() and v.startswith("../"):
                x = (root / v[3:]).resolve()
            data[k] = str(x)
        else:
            data[k] = [str((root / x).resolve()) for x in v]
    data["yaml_file"] = str(path.resolve())
    return data


def list_image_files(spec: str | os.PathLike | list) -> tuple[list[str], list[str]]:
    """Candidate image files of a folder / list file / list of either, and the non-image files seen.

    Missing folders or list files raise :class:`DatasetError`. Entries of a list file are not checked
    for existence here: a missing one is reported by the index as a skipped, missing image.
    """
    found: list[str] = []
    for p in spec if isinstance(spec, (list, tuple)) else [spec]:
        p = Path(p)
        if p.is_dir():
            found += glob.glob(str(Path(glob.escape(str(p))) / "**" / "*.*"), recursive=True)
        elif p.is_file() and p.suffix.lower() == ".txt":
            parent = str(p.parent) + os.sep
            lines = p.read_text(encoding="utf-8-sig").strip().splitlines()
            found += [x.replace("./", parent, 1) if x.startswith("./") else x for x in (ln.strip() for ln in lines)
                      if x]
        elif p.is_file() or p.suffix[1:].lower() in IMG_FORMATS:
            found.append(str(p))  # a missing image file is reported by the index, not here
        else:
            raise DatasetError(f"image source does not exist: {p}")
    images, ignored = [], []
    for x in found:
        (images if x.rpartition(".")[-1].lower() in IMG_FORMATS else ignored).append(x)
    return sorted(images), sorted(x for x in ignored if not os.path.isdir(x))


def resolve_source(source, split: str = "train", names=None) -> Source:
    """A data.yaml path, an image folder, a .txt list file, or a list of image files -> :class:`Source`.

    ``names`` (list or dict) is needed for a folder or a list of files when labels have several classes;
    without it the class count is unbounded (every integer class id >= 0 is accepted).
    """
    if isinstance(source, (str, os.PathLike)) and str(source).lower().endswith((".yaml", ".yml")):
        data = load_data_yaml(source)
        spec = data.get(split)
        if not spec:
            raise DatasetError(f"{source}: no '{split}' split")
        images, ignored = list_image_files(spec)
        return Source(images, data["names"], data, split, ignored)
    images, ignored = list_image_files(source)
    if names is None:
        data = {"names": {}, "nc": None}
        name_map: dict[int, str] = {}
    else:
        name_map = _names({"names": names}, "names")
        data = {"names": name_map, "nc": len(name_map)}
    return Source(images, name_map, data, split, ignored)
