"""DetectionLoader: batch contract, determinism, resume, close, failures, refused settings."""

from __future__ import annotations

import gc
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from loader import BadDataError, DetectionLoader, UnsupportedHyp
from loader.demo_data import CLASSES
from loader.kernels import opencv
from loader.pool import WorkerError

S = 320


def _batches(loader, n=None):
    out = []
    for k, b in enumerate(loader):
        out.append({k2: (v.clone() if torch.is_tensor(v) else v) for k2, v in b.items()})
        if n is not None and k + 1 >= n:
            break
    return out


def _equal(a, b):
    return all(torch.equal(x[k], y[k]) if torch.is_tensor(x[k]) else x[k] == y[k] for x, y in zip(a, b, strict=True)
               for k in x) and len(a) == len(b) > 0


def _painter_threads():
    return [t for t in threading.enumerate() if t.name.startswith("loader-paint")]


def _leftovers(before: tuple[set, set]) -> dict:
    """Threads, child processes and /dev/shm entries a loader left behind (new since ``_shm()``; a process an
    earlier test started, e.g. multiprocessing's resource tracker, is not this loader's)."""
    import psutil

    shm_before, children_before = before
    shm = set(os.listdir("/dev/shm")) - shm_before if os.path.isdir("/dev/shm") else set()
    children = [p for p in psutil.Process().children(recursive=True) if p.pid not in children_before]
    return {"threads": _painter_threads(), "children": children, "shm": shm}


def _shm() -> tuple[set, set]:
    import psutil

    shm = set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()
    return shm, {p.pid for p in psutil.Process().children(recursive=True)}


def test_batch_contract(demo_set):
    with DetectionLoader(demo_set, imgsz=S, batch_size=5, workers=2) as dl:
        assert len(dl) == 5 and dl.num_workers == 2 and len(dl.sampler) == 24
        batches = list(dl)
    assert len(batches) == len(dl)
    assert [len(b["im_file"]) for b in batches] == [5, 5, 5, 5, 4]
    for b in batches:
        img = b["img"]
        assert img.dtype == torch.uint8 and img.shape[1:] == (3, S, S)
        assert img.stride()[1] == 1, "NCHW view of HWC memory (channels-last strides)"
        n = len(b["cls"])
        assert b["cls"].dtype == torch.float32 and b["cls"].shape == (n, 1)
        assert b["bboxes"].dtype == torch.float32 and b["bboxes"].shape == (n, 4)
        assert ((b["bboxes"] >= 0) & (b["bboxes"] <= 1)).all()
        bi = b["batch_idx"]
        assert bi.dtype == torch.float32 and bi.shape == (n,)
        assert (bi[1:] >= bi[:-1]).all(), "grouped by image, ascending"
        assert isinstance(b["im_file"], tuple) and all(isinstance(f, str) for f in b["im_file"])
        assert all(r == (S, S) for r in b["resized_shape"]) and all(o == (1080, 1920) for o in b["ori_shape"])
        assert len(b["ratio_pad"]) == len(b["im_file"])
    assert not _painter_threads()


def test_rgb_and_letterbox_in_val(demo_set):
    """Val: letterboxed, RGB; each object's pixels carry its class colour (no augmentation)."""
    with DetectionLoader(demo_set, imgsz=S, batch_size=6, workers=1, augment=False) as dl:
        b = next(iter(dl))
    img = b["img"].permute(0, 2, 3, 1).numpy()
    checked = 0
    for (i, c, (x, y, w, h)) in zip(b["batch_idx"].int().tolist(), b["cls"].int().flatten().tolist(),
                                     b["bboxes"].numpy()):
        if w * S < 12 or h * S < 12 or CLASSES[c][1] != "box":
            continue
        px = img[i, int(y * S), int(x * S)].astype(int)
        assert np.abs(px - np.array(CLASSES[c][2][::-1])).max() < 40, (px, CLASSES[c])
        checked += 1
    assert checked >= 3
    # letterbox: 1920x1080 -> 320x180 centred in 320x320, 114 above and below
    assert (img[:, :60] == 114).all() and (img[:, -60:] == 114).all()
    assert b["ratio_pad"][0] == ((180 / 1080, 320 / 1920), (0, 70))


@pytest.mark.parametrize("workers", [1, 3])
def test_same_seed_same_batches_whatever_the_worker_count(demo_set, workers):
    with DetectionLoader(demo_set, imgsz=S, batch_size=4, workers=2, seed=3, hyp={"mixup": 0.3}) as ref_dl:
        ref = _batches(ref_dl)
    with DetectionLoader(demo_set, imgsz=S, batch_size=4, workers=workers, seed=3, hyp={"mixup": 0.3},
                         prefetch=3) as dl:
        got = _batches(dl)
    assert _equal(ref, got)
    with DetectionLoader(demo_set, imgsz=S, batch_size=4, workers=2, seed=4) as other:
        assert not _equal(ref, _batches(other))


def test_epochs_reshuffle_and_set_epoch(demo_set):
    with DetectionLoader(demo_set, imgsz=S, batch_size=8, workers=2) as dl:
        e0 = [f for b in dl for f in b["im_file"]]
        e1 = [f for b in dl for f in b["im_file"]]
        assert dl.epoch == 1 and sorted(e0) == sorted(e1) and e0 != e1
        dl.set_epoch(0)
        assert [f for b in dl for f in b["im_file"]] == e0


def test_resume_mid_epoch_is_bitwise(demo_set):
    with DetectionLoader(demo_set, imgsz=S, batch_size=4, workers=2, seed=9) as dl:
        dl.set_epoch(2)
        full = _batches(dl)
    with DetectionLoader(demo_set, imgsz=S, batch_size=4, workers=2, seed=9) as dl:
        dl.set_epoch(2)
        head = _batches(dl, 2)
        state = dl.state_dict()
    with DetectionLoader(demo_set, imgsz=S, batch_size=4, workers=1, seed=9) as dl2:
        dl2.load_state_dict(state)
        tail = _batches(dl2)
    assert _equal(full, head + tail)
    with DetectionLoader(demo_set, imgsz=S, batch_size=3, workers=1) as other:  # the state's batch size wins
        other.load_state_dict(state)
        assert other.batch_size == 4 and _equal(_batches(other), tail)
    with DetectionLoader(demo_set, imgsz=S + 32, batch_size=4, workers=1) as other, pytest.raises(ValueError,
                                                                                                    match="imgsz"):
        other.load_state_dict(state)


def test_iteration_is_lazy_and_reset_restarts(demo_set):
    with DetectionLoader(demo_set, imgsz=S, batch_size=4, workers=2) as dl:
        it = iter(dl)  # nothing planned yet
        dl.close_mosaic()  # as the trainer does at close_mosaic: dataset switch, then reset()
        assert dl.mosaic_closed
        first = next(it)
        assert len(first["im_file"]) == 4
        order = dl.sampler.indices()
        assert not dl.planner.train_plan(dl.epoch, 0, order).mosaic
        rest = list(it)
        assert len(rest) == len(dl) - 1


def test_close_joins_threads_and_is_idempotent(demo_set):
    dl = DetectionLoader(demo_set, imgsz=S, batch_size=4, workers=3)
    it = iter(dl)
    next(it)
    assert len(_painter_threads()) == 3
    dl.close()
    dl.close()
    assert not _painter_threads()
    with pytest.raises(RuntimeError, match="closed"):
        next(iter(dl))
    del it
    gc.collect()


def _backend(name: str) -> str:
    return name


@pytest.mark.parametrize("backend", ["cpu", "dali"])
@pytest.mark.parametrize("damage", ["corrupt", "deleted"])
def test_unreadable_file_is_replaced_deterministically(demo_set, copy_of, backend, damage):
    """A file broken or deleted after indexing: its samples get a replacement, the same whatever the worker
    count, on every engine (the DALI engine reads the files itself)."""
    from loader.dataset import build_index

    data = copy_of(demo_set)
    index = build_index(data, cache=False)  # indexed while intact ...
    victim = Path(index.im_files[5])
    if damage == "corrupt":
        victim.write_bytes(b"not a jpeg any more")  # ... broken afterwards
    else:
        victim.unlink()
    runs = []
    for workers in (1, 3):
        with DetectionLoader(index, imgsz=S, batch_size=6, workers=workers, seed=2, max_bad_fraction=0.5,
                             backend=_backend(backend)) as dl:
            batches = _batches(dl)
            assert set(dl.unreadable) == {5}
        files = [f for b in batches for f in b["im_file"]]
        assert len(files) == 24 and str(victim) not in files
        runs.append(batches)
    assert _equal(*runs)
    assert not _painter_threads()


@pytest.mark.parametrize("backend", ["cpu", "dali"])
def test_too_many_unreadable_files_is_a_clear_error(demo_set, copy_of, backend):
    shm = _shm()
    data = copy_of(demo_set)
    with DetectionLoader(data, imgsz=S, batch_size=24, workers=2, index_cache=False,
                         backend=_backend(backend)) as dl:
        victim = Path(dl.index.im_files[5])
        victim.unlink()
        with pytest.raises(BadDataError, match=victim.name) as e:
            list(dl)
        assert "max_bad_fraction=0.01" in str(e.value)
    assert _leftovers(shm) == {"threads": [], "children": [], "shm": set()}


def test_validation_image_unreadable_is_a_clear_error(demo_set, copy_of):
    data = copy_of(demo_set)
    with DetectionLoader(data, imgsz=S, batch_size=4, workers=2, augment=False, index_cache=False) as dl:
        Path(dl.index.im_files[2]).write_bytes(b"")
        with pytest.raises(BadDataError, match="validation image unreadable"):
            list(dl)


def test_worker_exception_surfaces_with_its_traceback(demo_set, monkeypatch):
    shm = _shm()
    with DetectionLoader(demo_set, imgsz=S, batch_size=4, workers=2) as dl:
        def broken(*args, **kw):
            raise ZeroDivisionError("painter bug")

        monkeypatch.setattr(opencv, "translate", broken)  # a bug in a step every training sample's paint runs
        with pytest.raises(WorkerError, match="ZeroDivisionError: painter bug") as e:
            list(dl)
        assert "worker traceback" in str(e.value) and isinstance(e.value.__cause__, ZeroDivisionError)
    assert _leftovers(shm) == {"threads": [], "children": [], "shm": set()}


def test_ring_reuses_the_buffers_of_dropped_batches(demo_set):
    """A consumer that drops each batch when it takes the next (a training loop) is painted into the ring's few
    buffers over and over: no fresh batch-size allocation per batch (each one was faulted in by the painters)."""
    with DetectionLoader(demo_set, imgsz=S, batch_size=4, workers=2, pin_memory=False) as dl:
        n = 0
        for _ in range(3):
            for b in dl:  # the loop variable drops the previous batch
                n += 1
        assert n > 2 * dl.ring.slots and dl.stats()["ring_allocations"] <= dl.ring.slots, (n, dl.stats())


def test_consumer_keeping_batches_never_sees_them_overwritten(demo_set):
    with DetectionLoader(demo_set, imgsz=S, batch_size=4, workers=2) as dl:
        kept = list(dl)  # every batch kept alive: the ring must not reuse their memory
        copies = [b["img"].clone() for b in kept]
        list(dl)
        assert all(torch.equal(b["img"], c) for b, c in zip(kept, copies, strict=True)) and kept


@pytest.mark.parametrize("kw,match", [
    ({"hyp": {"cutmix": 1.5}}, "cutmix"),
    ({"hyp": {"copy_paste": 0.1}}, "copy_paste"),
    ({"hyp": {"augmentations": ["Blur"]}}, "augmentations"),
    ({"hyp": {"fliplr": 1.5}}, "fliplr"),
    ({"hyp": {"degrees": -3}}, "degrees"),
    ({"hyp": {"scale": (0.9, 0.1)}}, "scale"),
    ({"rect": True}, "rect"),
])
def test_unsupported_settings_are_refused(demo_set, kw, match):
    with pytest.raises(UnsupportedHyp, match=match):
        DetectionLoader(demo_set, imgsz=S, **kw)


def test_bad_arguments(demo_set):
    with pytest.raises(ValueError, match="batch_size"):
        DetectionLoader(demo_set, batch_size=0)
    with pytest.raises(ValueError, match="backend"):
        DetectionLoader(demo_set, backend="tpu")
    with pytest.raises(ValueError, match="workers"):
        DetectionLoader(demo_set, workers=0)
    with pytest.raises(ValueError, match="imgsz"):
        DetectionLoader(demo_set, imgsz=33)


def test_unusual_sources_and_backgrounds(nasty_set):
    """PNG, grayscale, CMYK, EXIF-rotated JPEGs and background images all load; EXIF is honoured."""
    with DetectionLoader(nasty_set, imgsz=S, batch_size=40, workers=2, augment=False, split="train") as dl:
        b = next(iter(dl))
        names = [Path(f).name for f in b["im_file"]]
        img = b["img"].permute(0, 2, 3, 1).numpy()
        for name in ("nasty_exif6.jpg", "nasty_exif3.jpg", "nasty_png.png", "nasty_cmyk.jpg"):
            i = names.index(name)
            rows = (b["batch_idx"] == i).nonzero().flatten().tolist()
            assert rows, name
            for r in rows:
                c = int(b["cls"][r])
                x, y, w, h = b["bboxes"][r].tolist()
                if CLASSES[c][1] != "box" or w * S < 10 or h * S < 10:
                    continue
                px = img[i, int(y * S), int(x * S)].astype(int)
                assert np.abs(px - np.array(CLASSES[c][2][::-1])).max() < 60, (name, px, CLASSES[c])
        for name in ("nasty_nolabel.jpg", "nasty_emptylabel.jpg"):
            assert not (b["batch_idx"] == names.index(name)).any()
        gray = img[names.index("nasty_gray.jpg")]
        assert (gray[..., 0] == gray[..., 1]).all()
    with DetectionLoader(nasty_set, imgsz=S, batch_size=8, workers=2) as dl:  # training on the same files
        assert sum(len(x["im_file"]) for x in dl) == len(dl.index)


def test_plain_pytorch_loop(demo_set):
    """No Ultralytics involved: iterate, move to float, a conv forward."""
    conv = torch.nn.Conv2d(3, 4, 3)
    with DetectionLoader(demo_set, imgsz=64, batch_size=6, workers=2) as dl:
        for b in dl:
            y = conv(b["img"].float() / 255)
            assert y.shape[0] == len(b["im_file"])


def test_copy_of_demo_left_alone(demo_set, tmp_path):
    """The loader never writes into the data set folder (index cache lives elsewhere)."""
    before = sorted(p.name for p in Path(demo_set).parent.rglob("*"))
    with DetectionLoader(demo_set, imgsz=64, batch_size=6, workers=1) as dl:
        list(dl)
    assert sorted(p.name for p in Path(demo_set).parent.rglob("*")) == before
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_painter_cap_is_this_ranks_share_of_the_cores(monkeypatch):
    """Ultralytics' rule for its worker processes (``cpu_count // devices``), for the trainer's ``workers``."""
    from loader import painter_cap
    from loader.loader import default_workers

    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert painter_cap() == default_workers()
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(default_workers() * 4))
    assert painter_cap() == 1
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "junk")
    assert painter_cap() == default_workers()
