"""The scale tier: the loader run as people run it, not inside pytest's process. Each case is a real subprocess
running a plain script without a ``__main__`` guard (``scripts/``) on a set of 4,100 images (more than the
4,000 at which the index starts child processes), imgsz 896, batch 128; small pixels (256x32 sources, 896x112
at training size) keep it fast. ``pytest -m scale`` runs only this tier (about 2.5 minutes on 2 cores).

Before the fixes each case failed: the unguarded script ran its top-level code three times and stopped in
``BrokenProcessPool`` / "bootstrapping phase" (every cache mode, the trainer); ``cache="disk"`` under
``ulimit -n 256`` ended epoch 0 with ``BadDataError`` (47 healthy images "unreadable": Too many open files);
``cache="ram"`` with a 64 MiB ``/dev/shm`` died with SIGBUS (exit 135)."""

from __future__ import annotations

import json
import os
import resource
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.scale

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = Path(__file__).resolve().parent / "scripts"
N = 4100


@pytest.fixture(scope="module")
def big_set(tmp_path_factory) -> Path:
    from loader.demo_data import make_demo_dataset

    return make_demo_dataset(tmp_path_factory.mktemp("scale"), count=N, val_count=64, size=(256, 32), seed=3)


@pytest.fixture
def place(tmp_path):
    """Fresh caches per case (the index too: every case builds it, with its child processes); the disk cache's
    gigabyte goes when the case ends."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), YOLO_LOADER_CACHE_DIR=str(tmp_path / "cache"),
               YOLO_LOADER_DISK_CACHE_DIR=str(tmp_path / "disk"), YOLO_CONFIG_DIR=str(tmp_path / "ultralytics"),
               YOLO_OFFLINE="1")
    yield tmp_path, env
    shutil.rmtree(tmp_path / "disk", ignore_errors=True)


def _open_files_limit(n: int):
    def limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    return limit


def _run(cmd, env, cwd, timeout=600, preexec=None):
    r = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, preexec_fn=preexec)
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout[-1500:]}\n{r.stderr[-3000:]}"
    return r


def _check_two_epochs(out: dict) -> None:
    assert out["images"] == N and out["batches"] == -(-N // 128)
    assert out["epoch0"] == out["epoch0_unique"] == N, "epoch 0 (interrupted, resumed): every image once"
    assert out["epoch1"] == out["epoch1_unique"] == N and out["mosaic_closed"]
    assert out["shapes"] == [[3, 896, 896]]
    assert out["unreadable"] == 0 and out["read_faults"] == 0


@pytest.mark.parametrize("cache", ["none", "ram", "disk"])
def test_plain_script_two_epochs_resume_close_mosaic_under_256_open_files(big_set, place, cache):
    tmp, env = place
    r = _run([sys.executable, str(SCRIPTS / "plain_loop.py"), str(big_set), cache, str(tmp / "out.json")], env, tmp,
             preexec=_open_files_limit(256))
    assert r.stdout.count("top-level code ran") == 1, "nothing the loader starts re-runs the user's script"
    out = json.loads((tmp / "out.json").read_text())
    print({k: v for k, v in out.items() if k != "shapes"})
    _check_two_epochs(out)
    assert out["store_errors"] == 0 and out["fd_max"] < 64, "no descriptor per cached image"
    if cache != "none":
        assert out["first_store"]["built_here"] and out["first_store"]["decoded"] == N
        assert out["store"]["backing"] == {"ram": "shm", "disk": "file"}[cache]
    if cache == "disk":
        assert not out["store"]["built_here"], "the resumed loader maps the published file"


def test_ram_cache_in_a_64_mib_dev_shm(big_set, place):
    """Docker's default /dev/shm (a private mount namespace with a 64 MiB tmpfs, as root): the RAM cache (1.2 GB)
    does not fit; the loader says so once per build, counts it, and holds a private copy instead."""
    tmp, env = place
    script = (f"mount -t tmpfs -o size=64m tmpfs /dev/shm && exec {sys.executable} {SCRIPTS / 'plain_loop.py'} "
              f"{big_set} ram {tmp / 'out.json'}")
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "true"], capture_output=True, text=True)
    assert probe.returncode == 0, ("this case needs `unshare -m` (root, as on the project's machines) to give the "
                                   f"script a 64 MiB /dev/shm: {probe.stderr.strip()}")
    r = _run(["unshare", "-m", "--propagation", "private", "sh", "-c", script], env, tmp)
    out = json.loads((tmp / "out.json").read_text())
    _check_two_epochs(out)
    assert out["store"]["backing"] == "memfd" and out["store_errors"] == 2, "one fallback per loader, counted"
    assert r.stderr.count("holding it in this process's memory instead") == 2 and "docker run --shm-size" in r.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("cache", ["ram", "disk"])
def test_two_ddp_ranks_share_one_cache_and_equal_disjoint_shards(big_set, place, cache):
    tmp, env = place
    _run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
          str(SCRIPTS / "plain_ddp.py"), str(big_set), cache, str(tmp / "out.json")], env, tmp)
    rows = json.loads((tmp / "out.json").read_text())
    a, b = ({**r, "files": set(r["files"])} for r in rows)
    assert len(a["files"]) == len(b["files"]) == N // 2 and not a["files"] & b["files"], "equal, disjoint shards"
    assert len(a["files"] | b["files"]) == N
    assert a["built_here"] + b["built_here"] == 1, "the cache is built once per node"
    assert a["path"] == b["path"] and a["backing"] == b["backing"] == {"ram": "shm", "disk": "file"}[cache]
    assert a["store_errors"] == b["store_errors"] == a["unreadable"] == b["unreadable"] == 0
    if cache == "ram":
        assert not Path(a["path"]).exists(), "the last rank removed the shared store"


def test_fast_trainer_from_a_plain_script(big_set, place):
    """FastDetectionTrainer, one epoch, cache="disk", under 256 open files. imgsz 64: a yolo11n step at 896 px and
    batch 128 takes minutes on 2 CPU cores; the loader's own 896 px path is the cases above."""
    tmp, env = place
    r = _run([sys.executable, str(SCRIPTS / "plain_trainer.py"), str(big_set), "64", "128", "disk",
              str(tmp / "runs")], env, tmp, preexec=_open_files_limit(256))
    assert r.stdout.count("top-level code ran") == 1 and "trained" in r.stdout
    assert "Too many open files" not in r.stderr and "unreadable" not in r.stderr
