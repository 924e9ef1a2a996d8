"""The dataset index: sources, every bad-input case, the summary line, the cache."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np
import pytest

from loader.dataset import DatasetError, StringTable, build_index, load_data_yaml, resolve_source
from loader.demo_data import NASTY_CASES, render_sample


def _by_name(ix):
    return {Path(p).name: k for k, p in enumerate(ix.im_files)}


def test_clean_demo_set_indexes_fully(demo_set):
    ix = build_index(demo_set, "train", cache=False)
    assert len(ix) == 24 and not ix.skipped
    assert ix.names[0] == "red_box" and len(ix.names) == 6
    assert (ix.shapes == [1080, 1920]).all()
    # labels equal what the generator drew
    for k in range(len(ix)):
        cls, boxes = ix.labels_of(k)
        _, expected = render_sample(1, k, 1920, 1080)
        assert np.allclose(boxes, expected[:, 1:], atol=1e-6)
        assert np.array_equal(cls, expected[:, 0])
    val = build_index(demo_set, "val", cache=False)
    assert len(val) == 6


def test_every_nasty_case_is_classified(nasty_set, caplog):
    with caplog.at_level(logging.INFO, logger="loader"):
        ix = build_index(nasty_set, "train", cache=False)
    kept = _by_name(ix)
    skipped = {Path(s.path).name: s for s in ix.skipped}
    for name, (what, outcome) in NASTY_CASES.items():
        if outcome in ("kept", "background"):
            assert name in kept, f"{name} ({what}) should be kept"
            n_boxes = len(ix.labels_of(kept[name])[0])
            assert (n_boxes == 0) == (outcome == "background"), name
        else:
            assert name in skipped, f"{name} ({what}) should be skipped"
            assert skipped[name].reason == outcome, (name, skipped[name])
            # each skip is a warning that names the file and says why
            assert any(name in r.getMessage() and outcome in r.getMessage() for r in caplog.records
                       if r.levelno == logging.WARNING), name
    assert len(ix) == 12 + sum(o in ("kept", "background") for _, o in NASTY_CASES.values())
    # EXIF orientation 6: the stored image is 1080 wide and 1920 high; the index holds the upright shape
    assert tuple(ix.shapes[kept["nasty_exif6.jpg"]]) == (1080, 1920)
    assert ix.orientation[kept["nasty_exif6.jpg"]] == 6
    assert ix.format_name(kept["nasty_png.png"]) == "png"
    # duplicates are removed, not multiplied
    cls, boxes = ix.labels_of(kept["nasty_dupes.jpg"])
    assert len(np.unique(np.c_[cls, boxes], axis=0)) == len(cls)
    assert ix.n_duplicates == 2
    # a small overshoot is kept as written (Ultralytics clips it when boxes are transformed)
    assert boxes.shape[1] == 4
    _, ob = ix.labels_of(kept["nasty_overshoot.jpg"])
    assert np.isclose(ob[0, 0] + ob[0, 2] / 2, 1.005, atol=1e-6)
    # background: absent and empty label files
    assert ix.label_status[kept["nasty_nolabel.jpg"]] == 1
    assert ix.label_status[kept["nasty_emptylabel.jpg"]] == 2


def test_summary_line(nasty_set):
    ix = build_index(nasty_set, "train", cache=False)
    s = ix.summary()
    n_kept = len(ix)
    assert s.startswith(f"train: {n_kept} images, {ix.n_backgrounds} backgrounds")
    assert f"{len(ix.skipped)} skipped: 1 missing, 1 zero-byte, 1 truncated, 1 corrupt, 1 unsupported format, " \
           "1 too small, 2 bad label rows, 1 out-of-bounds coordinates, 1 unknown class" in s
    assert "2 duplicate label rows removed" in s
    # the folder source also reports files ignored by extension
    folder = build_index(Path(nasty_set).parent / "images" / "train", cache=False, names=list(range(6)))
    assert "2 non-image files ignored" in folder.summary()
    assert "missing" not in folder.summary()  # only a list file can name a missing image


def test_labels_view_is_ultralytics_shaped(demo_set):
    ix = build_index(demo_set, cache=False)
    lab = ix.labels[3]
    assert set(lab) >= {"im_file", "shape", "cls", "bboxes", "segments", "keypoints", "normalized", "bbox_format"}
    assert lab["cls"].dtype == np.float32 and lab["cls"].shape == (len(lab["bboxes"]), 1)
    assert lab["bboxes"].dtype == np.float32 and lab["shape"] == (1080, 1920)
    assert len(ix.labels) == len(ix) and ix.labels[-1]["im_file"] == ix.im_files[len(ix) - 1]


def test_sources_folder_listfile_and_list(demo_set):
    root = Path(demo_set).parent
    by_yaml = build_index(demo_set, cache=False)
    by_dir = build_index(root / "images" / "train", names=[str(i) for i in range(6)], cache=False)
    files = sorted(str(p) for p in (root / "images" / "train").glob("*.jpg"))
    by_list = build_index(files, names=[str(i) for i in range(6)], cache=False)
    lst = root / "some.txt"
    lst.write_text("".join(f"./images/train/{Path(f).name}\n" for f in files[:5]))
    by_txt = build_index(lst, names=[str(i) for i in range(6)], cache=False)
    assert list(by_dir.im_files) == list(by_yaml.im_files) == list(by_list.im_files)
    assert list(by_txt.im_files) == files[:5]
    assert np.array_equal(by_dir.boxes, by_yaml.boxes)
    # without names any non-negative integer class is accepted
    assert len(build_index(root / "images" / "train", cache=False)) == 24


def test_data_yaml_rules(tmp_path, demo_set):
    root = Path(demo_set).parent
    y = tmp_path / "d.yaml"
    y.write_text(f"path: {root}\ntrain: images/train\nval: [images/val]\nnames: [a, b, c, d, e, f]\n")
    d = load_data_yaml(y)
    assert d["train"] == str(root / "images" / "train") and d["val"] == [str(root / "images" / "val")]
    assert d["names"] == dict(enumerate("abcdef")) and d["nc"] == 6
    y.write_text("train: x\nnc: 2\nnames: [a, b, c]\n")
    with pytest.raises(DatasetError, match="nc"):
        load_data_yaml(y)
    y.write_text("train: x\n")
    with pytest.raises(DatasetError, match="names"):
        load_data_yaml(y)
    y.write_text("names: [a]\ntrain: does/not/exist\n")
    with pytest.raises(DatasetError, match="does not exist"):
        build_index(y, cache=False)
    with pytest.raises(DatasetError, match="no 'test' split"):
        resolve_source(demo_set, "test")
    with pytest.raises(DatasetError, match="not found"):
        load_data_yaml(tmp_path / "nope.yaml")


def test_fatal_only_when_nothing_usable(tmp_path):
    d = tmp_path / "images"
    d.mkdir()
    (d / "a.jpg").write_bytes(b"")
    (d / "b.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError, match=r"no usable images.*all 2 skipped.*1 zero-byte, 1 corrupt"):
        build_index(d, cache=False)
    (d / "c.txt").write_text("x")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match="no image files"):
        build_index(empty, cache=False)


def test_cache_hit_invalidation_and_corrupt_file(demo_set, copy_of, tmp_path):
    data = copy_of(demo_set)
    cache = tmp_path / "index.npz"
    first = build_index(data, cache=cache)
    assert first.build_info["cache"] == "built" and first.build_info["probed"] == 24
    hit = build_index(data, cache=cache)
    assert hit.build_info["cache"] == "hit" and hit.build_info["probed"] == 0
    assert np.array_equal(hit.boxes, first.boxes) and list(hit.im_files) == list(first.im_files)

    # a label edit is seen (size/mtime), and only that pair is re-checked
    lbl = data.parent / "labels" / "train" / "000003.txt"
    lbl.write_text("2 0.5 0.5 0.25 0.25\n")
    os.utime(lbl, ns=(time.time_ns(), time.time_ns() + 10_000_000))
    upd = build_index(data, cache=cache)
    assert upd.build_info["cache"].startswith("updated") and upd.build_info["probed"] == 1
    k = list(upd.im_files).index(str(data.parent / "images" / "train" / "000003.jpg"))
    cls, boxes = upd.labels_of(k)
    assert cls.tolist() == [2.0] and np.allclose(boxes, [[0.5, 0.5, 0.25, 0.25]])

    # a deleted image disappears, a new one appears
    (data.parent / "images" / "train" / "000004.jpg").unlink()
    (data.parent / "images" / "train" / "000005.jpg").rename(data.parent / "images" / "train" / "zzz.jpg")
    moved = build_index(data, cache=cache)
    names = [Path(p).name for p in moved.im_files]
    assert "000004.jpg" not in names and "zzz.jpg" in names and len(moved) == 23
    assert moved.build_info["probed"] == 1

    # a corrupt cache file is rebuilt, not trusted
    cache.write_bytes(b"\x00garbage" * 100)
    rebuilt = build_index(data, cache=cache)
    assert rebuilt.build_info["cache"] == "rebuilt (corrupt cache)" and rebuilt.build_info["probed"] == 23
    assert np.array_equal(rebuilt.boxes, moved.boxes)
    assert build_index(data, cache=cache).build_info["cache"] == "hit"
    # a truncated cache file too
    cache.write_bytes(cache.read_bytes()[:200])
    assert build_index(data, cache=cache).build_info["cache"] == "rebuilt (corrupt cache)"


def test_default_cache_location_is_keyed_by_source(demo_set, nasty_set):
    a = build_index(demo_set)
    b = build_index(nasty_set)
    assert a.cache_file != b.cache_file
    assert a.cache_file.startswith(os.environ["YOLO_LOADER_CACHE_DIR"])
    assert build_index(demo_set).build_info["cache"] == "hit"


def test_single_cls_accepts_any_class(nasty_set):
    ix = build_index(nasty_set, cache=False, single_cls=True)
    assert "nasty_badclass.jpg" in _by_name(ix)


def test_string_table_roundtrip():
    items = ["a", "", "ünïcödé/path.jpg", "x" * 300]
    t = StringTable.from_list(items)
    assert list(t) == items and t.tolist() == items and t[-1] == items[-1] and t[1:3] == items[1:3]
    assert t.take([3, 0]).tolist() == [items[3], items[0]]
    assert t.equals(StringTable.from_list(items)) and not t.equals(StringTable.from_list(items[:3]))
    with pytest.raises(IndexError):
        t[4]


def test_index_holds_no_python_object_per_sample(demo_set):
    ix = build_index(demo_set, cache=False)
    for name in ("shapes", "label_offsets", "cls", "boxes", "orientation", "formats", "label_status"):
        assert isinstance(getattr(ix, name), np.ndarray) and getattr(ix, name).dtype != object
    assert isinstance(ix.im_files, StringTable)
