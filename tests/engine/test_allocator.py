"""The allocator setting (``loader/allocator.py``): the CPU engine applies it to its process, and decoding then
faults far fewer pages per sample; a painter thread's emptied heap is kept instead of unmapped;
``YOLO_LOADER_MALLOC=0`` leaves glibc as it is; the bench hands the same setting to its other processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from loader.allocator import MMAP_THRESHOLD, TOP_PAD, TRIM_THRESHOLD, glibc_tunables

_RUN = r"""
import json, resource, sys
from loader import DetectionLoader
with DetectionLoader(sys.argv[1], imgsz=896, batch_size=8, workers=2, seed=0, index_cache=False,
                     cache_bytes=1) as dl:  # no decoded-image buffer: every tile is decoded again
    list(dl)
    r0, n = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, 0
    for e in range(1, 3):
        dl.set_epoch(e)
        n += sum(len(b["img"]) for b in dl)
    print(json.dumps({"tuned": dl.stats()["allocator_tuned"],
                      "faults": (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0) / n}))
"""


def _run(data, **env_extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "YOLO_LOADER_MALLOC")}
    out = subprocess.run([sys.executable, "-c", _RUN, str(data)], capture_output=True, text=True,
                         env={**env, **env_extra}, check=True, timeout=300).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_decoding_faults_fewer_pages_with_the_setting(demo_set):
    """Measured here: 17-21 vs 63-134 minor faults per sample (2 runs each; 9 vs 300-440 per image on the
    1,200-image bench set, where it is worth +14 % img/s uncached)."""
    tuned, off = _run(demo_set), _run(demo_set, YOLO_LOADER_MALLOC="0")
    assert tuned["tuned"] and not off["tuned"]
    assert tuned["faults"] < 0.5 * off["faults"], (tuned, off)


_HEAPS = r"""
import ctypes, json, sys, threading
from loader.allocator import MMAP_THRESHOLD, TRIM_THRESHOLD
from loader.engines.cpu import CpuEngine

libc = ctypes.CDLL("libc.so.6")
if sys.argv[1] == "engine":
    CpuEngine(None, 2)  # applies the setting, as a loader does
else:  # the thresholds alone (the setting before the top pad): large blocks in the heaps, as the engine's are
    libc.mallopt(-3, MMAP_THRESHOLD), libc.mallopt(-1, TRIM_THRESHOLD)
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                "fsmblks", "uordblks", "fordblks", "keepcost")]
libc.mallinfo2.restype = Info
libc.malloc.restype, libc.malloc.argtypes, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_size_t], [ctypes.c_void_p]
out = {}

def painter():  # its own arena: a first heap nearly full of long-lived tiles, then decode frames
    tiles = libc.malloc(60 << 20)
    released = 0
    for _ in range(20):
        frame = libc.malloc(6 << 20)  # does not fit: glibc opens a new heap for it
        before = libc.mallinfo2().arena
        libc.free(frame)
        released += libc.mallinfo2().arena < before  # the emptied heap went back to the system
    out["released"] = released
    libc.free(tiles)

t = threading.Thread(target=painter)
t.start()
t.join()
print(json.dumps(out))
"""


def test_painter_heaps_are_kept_not_unmapped():
    """glibc unmaps a thread's emptied heap whatever the trim threshold; the top pad keeps it (without it, ~2.4
    heaps were mapped per decoded image on the bench set and every frame faulted in afresh). The control
    (the thresholds without the pad) shows the pattern does unmap."""
    def released(how: str) -> int:
        env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "YOLO_LOADER_MALLOC")}
        r = subprocess.run([sys.executable, "-c", _HEAPS, how], capture_output=True, text=True, env=env,
                           timeout=120)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout.strip().splitlines()[-1])["released"]

    assert released("engine") == 0
    assert released("thresholds-only") == 20


def test_tunables_string_for_other_processes(monkeypatch):
    assert glibc_tunables() == (f"glibc.malloc.mmap_threshold={MMAP_THRESHOLD}:"
                                f"glibc.malloc.trim_threshold={TRIM_THRESHOLD}:glibc.malloc.top_pad={TOP_PAD}")
    monkeypatch.setenv("YOLO_LOADER_MALLOC", "0")
    assert glibc_tunables() is None
