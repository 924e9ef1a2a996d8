"""Drop-in for Ultralytics: real trainer and validator, fed by our loader."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

import ultralytics  # noqa: F401,E402  (a dependency: missing fails, never skips)

from integration.ultralytics import (FastDetectionTrainer, FastDetectionValidator, UltralyticsLoader,  # noqa: E402
                                     fast_trainer, loader_options)
from loader import UnsupportedHyp  # noqa: E402
from loader.demo_data import make_demo_dataset  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def train_set(tmp_path_factory):
    return make_demo_dataset(tmp_path_factory.mktemp("ul"), count=16, val_count=8, size=(640, 360), seed=31)


@pytest.fixture(scope="module")
def trained(train_set, tmp_path_factory):
    """yolo11n from scratch, 3 epochs at imgsz 320, batch 8, close_mosaic=1, through the real trainer, with
    non-default degrees, mixup and seed (each must reach our loader: test_training_settings_reach_the_loader)."""
    from ultralytics import YOLO

    seen = {"mosaic_by_epoch": [], "loader": [], "batch_shapes": []}

    def on_epoch_start(trainer):
        dl = trainer.train_loader.loader
        seen["mosaic_by_epoch"].append(not dl.mosaic_closed)
        seen["loader"].append(dict(degrees=dl.planner.hyp.degrees, mixup=dl.planner.hyp.mixup, seed=dl.planner.seed,
                                   sampler_seed=dl.sampler.seed, imgsz=dl.imgsz, batch=dl.batch_size))

    base = fast_trainer(workers=2)

    class Recording(base):  # the batches the trainer itself draws (Ultralytics plots the first three)
        def plot_training_samples(self, batch, ni):
            seen["batch_shapes"].append(tuple(batch["img"].shape))
            return super().plot_training_samples(batch, ni)

    Recording.__name__ = "FastDetectionTrainer"
    model = YOLO("yolo11n.yaml")
    model.add_callback("on_train_epoch_start", on_epoch_start)
    project = tmp_path_factory.mktemp("runs")
    model.train(data=str(train_set), imgsz=320, epochs=3, batch=8, close_mosaic=1, device="cpu", plots=True,
                project=str(project), name="fast", exist_ok=True, trainer=Recording, verbose=False,
                amp=False, seed=7, degrees=10.0, mixup=0.2)
    return model, model.trainer, seen


def test_training_settings_reach_the_loader(trained):
    """Non-default degrees, mixup, seed, imgsz and batch, set on ``train()``, are what our planner, sampler and
    batches use (a trainer that dropped ``hyp`` or ``seed`` would still train, on other augmentations)."""
    _, trainer, seen = trained
    assert seen["loader"][0] == dict(degrees=10.0, mixup=0.2, seed=7, sampler_seed=7, imgsz=320, batch=8)
    assert trainer.train_loader.loader.planner.hyp.mixup == 0.0, "close_mosaic turned mixup off at the end"
    assert seen["batch_shapes"] and all(s == (8, 3, 320, 320) for s in seen["batch_shapes"]), seen["batch_shapes"]


def test_training_end_to_end(trained):
    model, trainer, seen = trained
    assert isinstance(trainer, FastDetectionTrainer)
    assert isinstance(trainer.train_loader, UltralyticsLoader)
    # the close_mosaic switch reached our loader at the last epoch (checked when each epoch started,
    # i.e. before the trainer closes mosaic for that epoch)
    assert trainer.train_loader.loader.mosaic_closed
    assert seen["mosaic_by_epoch"][:2] == [True, True]
    save = Path(trainer.save_dir)
    assert (save / "results.csv").exists() and (save / "weights" / "last.pt").exists()
    assert (save / "train_batch0.jpg").exists() and (save / "labels.jpg").exists()
    rows = (save / "results.csv").read_text().strip().splitlines()
    header = [h.strip() for h in rows[0].split(",")]
    assert len(rows) == 4
    for line in rows[1:]:
        vals = dict(zip(header, (float(v) for v in line.split(","))))
        assert all(math.isfinite(vals[k]) for k in ("train/box_loss", "train/cls_loss", "train/dfl_loss"))
        assert "metrics/mAP50-95(B)" in vals
    assert "metrics/mAP50-95(B)" in trainer.metrics
    # the loaders were closed at the end of training: no painter thread left
    import threading

    assert not [t for t in threading.enumerate() if t.name.startswith("loader-paint")]


def _recording(base):
    """A validator class that records which images it scored, batch by batch."""

    class Recording(base):
        record: list = []

        def update_metrics(self, preds, batch):
            type(self).record.append(tuple(batch["im_file"]))
            return super().update_metrics(preds, batch)

    return Recording


def test_validation_matches_the_stock_loader(trained, train_set):
    """Same weights through Ultralytics' validator, our val loader vs the stock one.

    Honest limit: a yolo11n trained from scratch for a few CPU epochs scores mAP 0 here (its
    predictions do not yet depend on the image), so the mAP equality is weak evidence here. The
    metric equality on a model that has learned is ``test_validator_exact``; what feeds the metric
    (bitwise the same images, order, ori_shape, ratio_pad, boxes) is pinned down there and by
    ``test_parity_stock_loader.test_val_batches_match_stock``.
    """
    from ultralytics import YOLO
    from ultralytics.models.yolo.detect import DetectionValidator

    weights = Path(trainer_dir(trained)) / "weights" / "last.pt"
    kw = dict(data=str(train_set), imgsz=320, batch=8, device="cpu", plots=False, verbose=False)
    ours_cls, stock_cls = _recording(FastDetectionValidator), _recording(DetectionValidator)
    ours = YOLO(str(weights)).val(validator=ours_cls, **kw)
    stock = YOLO(str(weights)).val(validator=stock_cls, **kw)
    print("mAP50-95 ours", ours.box.map, "stock", stock.box.map)
    assert abs(ours.box.map - stock.box.map) <= 1e-3 and abs(ours.box.map50 - stock.box.map50) <= 1e-3
    assert ours_cls.record == stock_cls.record and sum(map(len, ours_cls.record)) == 8


def trainer_dir(trained):
    return trained[1].save_dir


@pytest.mark.parametrize("override,key,why", [
    ({"cache": "memory"}, "cache", "use False"),
    ({"copy_paste": 0.2}, "copy_paste", "pixel mask"), ({"rect": True}, "rect", "square mosaic")])
def test_unsupported_arguments_are_refused_by_name_and_why(train_set, tmp_path, override, key, why):
    from ultralytics import YOLO

    with pytest.raises(UnsupportedHyp, match=f"{key}.*{why}"):
        YOLO("yolo11n.yaml").train(data=str(train_set), imgsz=64, epochs=1, batch=4, device="cpu",
                                   project=str(tmp_path), name="x", trainer=FastDetectionTrainer, **override)


def test_options_factory_env_and_ddp_name(monkeypatch):
    cls = fast_trainer(workers=3, backend="cpu")
    assert cls.__name__ == "FastDetectionTrainer" and cls.__module__ == "integration.ultralytics.trainer"
    assert issubclass(cls, FastDetectionTrainer) and cls.loader_options["workers"] == 3
    monkeypatch.setenv("YOLO_LOADER_WORKERS", "5")
    assert loader_options()["workers"] == 5
    assert loader_options({"workers": 2})["workers"] == 2
    monkeypatch.setenv("YOLO_LOADER_TRAINER_OPTIONS", '{"backend": "cpu", "workers": 7, "prefetch": 3}')
    monkeypatch.delenv("YOLO_LOADER_WORKERS")
    assert loader_options(inherited=True)["workers"] == 7  # a DDP worker sees its parent's options
    assert loader_options()["workers"] is None  # a fresh trainer in the parent does not
    with pytest.raises(TypeError, match="unknown"):
        loader_options({"threads": 2})
    monkeypatch.setenv("YOLO_LOADER_REDUCED_DECODE", "false")
    assert loader_options()["reduced_decode"] is False
    monkeypatch.setenv("YOLO_LOADER_REDUCED_DECODE", "equivalent")
    assert loader_options()["reduced_decode"] == "equivalent"
    assert fast_trainer(reduced_decode=True).loader_options["reduced_decode"] is True


def test_cli_train_makes_a_run_directory(train_set, tmp_path):
    exe = Path(sys.executable).with_name("yolo-loader")
    r = subprocess.run([str(exe), "train", "model=yolo11n.yaml", f"data={train_set}", "imgsz=64", "epochs=1",
                        "batch=4", "device=cpu", f"project={tmp_path}", "name=cli", "plots=False", "--workers", "2"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    run = tmp_path / "cli"
    assert (run / "weights" / "last.pt").exists() and (run / "results.csv").exists() and (run / "args.yaml").exists()


_DDP_CHILD = r"""
import os, sys, json
import torch.distributed as dist
rank, world, data, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
dist.init_process_group("gloo", init_method="tcp://127.0.0.1:" + sys.argv[5], rank=rank, world_size=world)
from loader import DetectionLoader
with DetectionLoader(data, imgsz=64, batch_size=3, workers=1, rank=rank, world_size=world, seed=4) as dl:
    result = {}
    for epoch in (0, 1):
        dl.set_epoch(epoch)
        result[epoch] = [f for b in dl for f in b["im_file"]]
    result["len"] = len(dl)
gathered = [None] * world
dist.all_gather_object(gathered, result)
if rank == 0:
    open(out, "w").write(json.dumps(gathered))
dist.destroy_process_group()
"""


def test_ddp_sharding_with_two_gloo_processes(train_set, tmp_path):
    import json
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    out = tmp_path / "ddp.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    procs = [subprocess.Popen([sys.executable, "-c", _DDP_CHILD, str(r), "2", str(train_set), str(out), port],
                              env=env, stderr=subprocess.PIPE, text=True) for r in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
    g = json.loads(out.read_text())
    assert g[0]["len"] == g[1]["len"], "equal batches on every rank"
    for epoch in ("0", "1"):
        a, b = g[0][epoch], g[1][epoch]
        assert len(a) == len(b) == 8 and not set(a) & set(b), "disjoint equal shards (16 images, 2 ranks)"
        assert len(set(a) | set(b)) == 16
    assert g[0]["0"] != g[0]["1"], "set_epoch reshuffles"


class _OOMOnce(FastDetectionTrainer):
    """Raises an out-of-memory error on the first batch, as a GPU would at too large a batch."""

    raised = False
    loaders_seen: list = []

    def get_dataloader(self, *a, **kw):
        dl = super().get_dataloader(*a, **kw)
        type(self).loaders_seen.append(dl)
        return dl

    def preprocess_batch(self, batch):
        if not type(self).raised:
            type(self).raised = True
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")
        return super().preprocess_batch(batch)


def test_out_of_memory_retry_rebuilds_loaders_without_leaks(train_set, tmp_path):
    import threading

    from ultralytics import YOLO

    model = YOLO("yolo11n.yaml")
    model.train(data=str(train_set), imgsz=64, epochs=1, batch=8, device="cpu", plots=False, val=False,
                project=str(tmp_path), name="oom", trainer=_OOMOnce, verbose=False, amp=False)
    trainer = model.trainer
    assert _OOMOnce.raised and trainer.batch_size == 4
    train_loaders = [dl for dl in _OOMOnce.loaders_seen if dl.loader.augment]
    first, rebuilt = train_loaders[0], train_loaders[-1]
    assert len(train_loaders) == 2 and first.batch_size == 8 and rebuilt.batch_size == 4
    assert first.loader.closed, "the replaced train loader was closed"
    val_loaders = [dl for dl in _OOMOnce.loaders_seen if not dl.loader.augment]
    assert len(val_loaders) == 2 and val_loaders[0].loader.closed and trainer.validator.dataloader is val_loaders[1]
    assert not [t for t in threading.enumerate() if t.name.startswith("loader-paint")]


def test_trainer_workers_argument_sets_painter_threads(train_set, tmp_path):
    trainer = FastDetectionTrainer(overrides=dict(model="yolo11n.yaml", data=str(train_set), imgsz=64, device="cpu",
                                                  workers=3, project=str(tmp_path), name="w"))
    assert trainer.args.workers == 0  # Ultralytics' rule on CPU devices ...
    dl = trainer.get_dataloader(trainer.data["train"], batch_size=4, mode="train")
    try:
        assert dl.num_workers == len(os.sched_getaffinity(0))  # ... then "auto": one per core
    finally:
        dl.close()
    trainer.args.workers = 3  # as on a GPU machine: capped as Ultralytics caps its processes (cores // devices)
    dl = trainer.get_dataloader(trainer.data["train"], batch_size=4, mode="train")
    try:
        assert dl.num_workers == min(3, len(os.sched_getaffinity(0))) and dl.batch_size == 4
        assert len(dl.dataset) == 16
    finally:
        dl.close()


def test_training_with_the_dali_backend_cpu_only(train_set, tmp_path):
    """The same trainer with backend='dali' (DALI's CPU-only mode here): trains, closes mosaic, validates."""
    from ultralytics import YOLO

    model = YOLO("yolo11n.yaml")
    model.train(data=str(train_set), imgsz=160, epochs=2, batch=8, close_mosaic=1, device="cpu", plots=False,
                project=str(tmp_path), name="dali", trainer=fast_trainer(backend="dali", workers=2), verbose=False,
                amp=False)
    trainer = model.trainer
    assert trainer.train_loader.loader.backend == "dali" and trainer.train_loader.loader.mosaic_closed
    rows = (Path(trainer.save_dir) / "results.csv").read_text().strip().splitlines()
    header = [h.strip() for h in rows[0].split(",")]
    assert len(rows) == 3
    for line in rows[1:]:
        vals = dict(zip(header, (float(v) for v in line.split(","))))
        assert math.isfinite(vals["train/box_loss"]) and "metrics/mAP50-95(B)" in vals
