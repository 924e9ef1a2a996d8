"""cache="ram": one shared arena per node, bitwise batches, one copy for two processes, crash-safe."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch

from loader import DetectionLoader
from loader.images import ram as ramcache

ROOT = Path(__file__).resolve().parents[3]
S = 640


def _arenas() -> set:
    return {p.name for p in ramcache.SHM_DIR.glob(ramcache.PREFIX + "*")}


@pytest.fixture(autouse=True)
def _no_stale_arenas():
    ramcache.sweep_stale()  # leftovers of crashed runs do not belong to this test
    yield


def _batches(data, cache):
    with DetectionLoader(data, imgsz=S, batch_size=6, workers=2, seed=8, cache=cache) as dl:
        out = [{k: (v.clone() if torch.is_tensor(v) else v) for k, v in b.items()} for b in dl]
        built = dl.images.arena.built_here if dl.images.arena else None
    return out, built


def test_ram_cache_gives_the_same_batches_and_leaves_nothing(demo_set):
    before = _arenas()
    plain, _ = _batches(demo_set, False)
    ram, built = _batches(demo_set, "ram")
    assert built is True
    assert all(torch.equal(a["img"], b["img"]) and a["im_file"] == b["im_file"] for a, b in zip(plain, ram))
    assert _arenas() == before, "the last user removes the arena"


CHILD = r"""
import sys, time
from loader import DetectionLoader
dl = DetectionLoader(sys.argv[1], imgsz=int(sys.argv[2]), batch_size=6, workers=1, cache="ram")
for b in dl:  # a training epoch (it reads only the crops its mosaics show) ...
    pass
for i in range(len(dl.index)):  # ... then every page of every image, so the whole arena is mapped here
    int(dl.images.get(i).sum())
print("ready", dl.images.arena.name, dl.images.arena.nbytes, int(dl.images.arena.built_here), flush=True)
time.sleep(float(sys.argv[3]))
dl.close()
print("closed", flush=True)
"""


def _start(data, hold: float):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.Popen([sys.executable, "-c", CHILD, str(data), str(S), str(hold)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env)
    line = p.stdout.readline().split()
    assert line and line[0] == "ready", p.stderr.read()[-2000:]
    return p, line[1], int(line[2]), line[3] == "1"


def _arena_pss(pid: int, name: str) -> tuple[int, int]:
    rss = pss = 0
    for m in psutil.Process(pid).memory_maps(grouped=True):
        if name in m.path:
            rss, pss = rss + m.rss, pss + m.pss
    return rss, pss


def test_two_processes_share_one_copy_and_survive_a_crash(demo_set):
    before = _arenas()
    a, name, nbytes, a_built = _start(demo_set, 60)
    b, name_b, _, b_built = _start(demo_set, 60)
    try:
        assert name == name_b and a_built and not b_built, "built once, by the first process"
        (rss_a, pss_a), (rss_b, pss_b) = _arena_pss(a.pid, name), _arena_pss(b.pid, name)
        print(f"arena {nbytes / 2**20:.1f} MiB; RSS a {rss_a / 2**20:.1f} b {rss_b / 2**20:.1f}; "
              f"PSS a+b {(pss_a + pss_b) / 2**20:.1f} MiB")
        assert rss_a > 0.9 * nbytes and rss_b > 0.9 * nbytes, "both processes see the whole arena"
        assert pss_a + pss_b <= 1.1 * nbytes, "the node pays for one copy, not two"
        a.send_signal(signal.SIGKILL)  # one user crashes ...
        a.wait(timeout=30)
        assert name in _arenas(), "... the survivor still uses the arena"
        b.send_signal(signal.SIGINT)
    finally:
        for p in (a, b):
            if p.poll() is None:
                p.kill()
            p.wait(timeout=30)
    # B was interrupted without close(): both users are gone; the next start sweeps the arena
    time.sleep(0.2)
    ramcache.sweep_stale()
    assert _arenas() == before


def test_survivor_close_removes_the_arena(demo_set):
    before = _arenas()
    a, name, _, _ = _start(demo_set, 60)
    b, _, _, _ = _start(demo_set, 0.5)  # closes on its own after half a second
    try:
        a.send_signal(signal.SIGKILL)
        a.wait(timeout=30)
        out, err = b.communicate(timeout=60)
        assert "closed" in out, err[-2000:]
        assert _arenas() == before, "the last user (the survivor) removed the arena"
    finally:
        for p in (a, b):
            if p.poll() is None:
                p.kill()


def test_ram_check_refuses_before_allocating(demo_set, monkeypatch):
    class Tiny:
        available = 1 << 20

    monkeypatch.setattr(psutil, "virtual_memory", lambda: Tiny())
    before = _arenas()
    with pytest.raises(ramcache.CacheTooLarge, match=r"needs .* GiB for 24 images but only 0.00 GiB"):
        DetectionLoader(demo_set, imgsz=S, batch_size=6, workers=1, cache="ram")
    assert {n for n in _arenas() - before if not n.endswith(".lock")} == set(), "nothing was allocated"
    ramcache.sweep_stale()
