"""The allocator setting (``loader/allocator.py``): the CPU engine applies it to its process (and says so in
``allocator_tuned``); a decode-size block then comes from the heap, and a painter thread's emptied heap is kept
instead of unmapped; ``YOLO_LOADER_MALLOC=0`` leaves glibc as it is; the bench hands the same setting to its
other processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from loader.allocator import MMAP_THRESHOLD, TOP_PAD, TRIM_THRESHOLD, glibc_tunables

_FRAME = r"""
import ctypes, json
from loader.engines.cpu import CpuEngine

engine = CpuEngine(None, 2)  # applies the setting, as a loader does (unless YOLO_LOADER_MALLOC=0)
libc = ctypes.CDLL("libc.so.6")
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                "fsmblks", "uordblks", "fordblks", "keepcost")]
libc.mallinfo2.restype = Info
libc.malloc.restype, libc.malloc.argtypes, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_size_t], [ctypes.c_void_p]
mapped = libc.mallinfo2().hblks
frame = libc.malloc(1080 * 1920 * 3)  # a decoded 1920x1080 frame
print(json.dumps({"own_mapping": libc.mallinfo2().hblks - mapped, "tuned": engine.allocator_tuned}))
libc.free(frame)
"""


def _child(script: str, *args: str, **env_extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "YOLO_LOADER_MALLOC")}
    r = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True,
                       env={**env, **env_extra}, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_decode_frames_come_from_the_heap():
    """With the setting a decode-size block comes from the heap (a freed frame is reused, not unmapped and faulted
    in again: 300-440 -> 9 minor faults per image on the bench set, +14 % img/s uncached); glibc's default maps
    each one on its own (the control, YOLO_LOADER_MALLOC=0). Page-fault counts themselves vary with how pages are
    backed (NumPy asks for huge pages on arrays over 4 MB): the mechanism is what is asserted here."""
    assert _child(_FRAME) == {"own_mapping": 0, "tuned": True}
    assert _child(_FRAME, YOLO_LOADER_MALLOC="0") == {"own_mapping": 1, "tuned": False}


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
    assert _child(_HEAPS, "engine")["released"] == 0
    assert _child(_HEAPS, "thresholds-only")["released"] == 20


def test_tunables_string_for_other_processes(monkeypatch):
    assert glibc_tunables() == (f"glibc.malloc.mmap_threshold={MMAP_THRESHOLD}:"
                                f"glibc.malloc.trim_threshold={TRIM_THRESHOLD}:glibc.malloc.top_pad={TOP_PAD}")
    monkeypatch.setenv("YOLO_LOADER_MALLOC", "0")
    assert glibc_tunables() is None
