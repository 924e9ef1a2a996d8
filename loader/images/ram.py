"""``cache="ram"``: one shared-memory arena per node holding every image at training size.

Ultralytics' ``cache="ram"`` keeps one copy per process (per DDP rank). Here the first
process to arrive builds one arena in ``/dev/shm`` (under an exclusive ``flock``; the others
wait on the lock, then map the finished arena read-only), so the node pays for one copy.

Lifetime: two lock files per arena. ``.build`` is held exclusively while a process builds or
joins; ``.users`` is held shared by every process that has the arena mapped (the kernel
drops ``flock`` locks when a process exits or crashes). ``close()`` unmaps and, if nobody
else holds ``.users`` and nobody is joining, unlinks the arena. An arena whose users all crashed is
reused by the next run with the same key, and removed by ``sweep_stale()`` (run at every
start) when nobody holds it and it is not the one being opened.

Before allocating anything the builder compares the bytes needed with the memory available
and refuses with both numbers when it would not fit (``CacheTooLarge``).
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import mmap
import os
import struct
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .._closing import Closing
from ..progress import Progress

__all__ = ["RamArena", "CacheTooLarge", "sweep_stale", "SHM_DIR"]

LOG = logging.getLogger("loader.cache")
SHM_DIR = Path(os.environ.get("YOLO_LOADER_SHM_DIR", "/dev/shm"))
PREFIX = "yolo-loader-arena-"
_MAGIC = b"YLARENA1"
_HEAD = struct.Struct("<8sqq")  # magic, n images, ready flag


class CacheTooLarge(MemoryError):
    """The RAM cache would not fit; the message names the bytes needed and available."""


def _try_lock(fd: int, kind: int) -> bool:
    try:
        fcntl.flock(fd, kind | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _remove_if_unused(name: str) -> bool:
    """Unlink arena ``name`` and its lock files when no process uses or is joining it."""
    fds = []
    try:
        for suffix in (".build", ".users"):
            try:
                fd = os.open(SHM_DIR / (name + suffix), os.O_RDWR | os.O_CREAT, 0o600)
            except OSError:
                return False
            fds.append(fd)
            if not _try_lock(fd, fcntl.LOCK_EX):
                return False
        for suffix in ("", ".users", ".build"):
            (SHM_DIR / (name + suffix)).unlink(missing_ok=True)
        return True
    finally:
        for fd in fds:
            os.close(fd)


def sweep_stale(keep: str | None = None) -> list[str]:
    """Remove arenas nobody uses (their users crashed), except ``keep``. Returns the names removed."""
    names = {p.name.split(".")[0] for p in SHM_DIR.glob(PREFIX + "*")}
    return [n for n in sorted(names - {keep}) if _remove_if_unused(n)]


class RamArena(Closing):
    """Images ``0..n-1`` of shapes ``hws`` (h, w) x 3 uint8 in one shared mapping."""

    def __init__(self, key: str, hws: np.ndarray, load, workers: int = 4, headroom: float = 0.9):
        """``load(i)`` decodes image i at its training size, or returns None when it cannot (called
        only by the builder; such images are flagged in the arena, see ``unreadable``)."""
        hws = np.asarray(hws, np.int64).reshape(-1, 2)
        self.n = len(hws)
        sizes = hws[:, 0] * hws[:, 1] * 3
        self.offsets = np.zeros(self.n + 1, np.int64)
        np.cumsum(sizes, out=self.offsets[1:])
        # header, one flag byte per image (1: unreadable when the arena was built), then the pixels
        self.data_start = -(-(_HEAD.size + self.n) // 4096) * 4096
        self.nbytes = self.data_start + int(self.offsets[-1])
        self.hws = hws
        self.name = PREFIX + hashlib.sha1(f"{key}|{hws.tobytes().hex()[:64]}|{self.nbytes}".encode()).hexdigest()[:20]
        self.path = SHM_DIR / self.name
        self._mm = None
        self._users_fd = None
        self.built_here = False
        sweep_stale(keep=self.name)
        build_fd = os.open(SHM_DIR / (self.name + ".build"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(build_fd, fcntl.LOCK_EX)  # one builder at a time; the others wait here
            if not self._open_ready():
                self._build(load, workers, headroom)
            self._users_fd = os.open(SHM_DIR / (self.name + ".users"), os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._users_fd, fcntl.LOCK_SH)  # "I use it" until close() or death
        except BaseException:
            self.close()
            raise
        finally:
            os.close(build_fd)  # releases the build lock

    def _open_ready(self) -> bool:
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            if os.fstat(fd).st_size != self.nbytes:
                return False
            mm = mmap.mmap(fd, self.nbytes, prot=mmap.PROT_READ)
        finally:
            os.close(fd)
        magic, n, ready = _HEAD.unpack_from(mm, 0)
        if magic != _MAGIC or n != self.n or not ready:
            mm.close()
            return False
        self._mm = mm
        return True

    def _build(self, load, workers: int, headroom: float) -> None:
        import psutil

        avail = psutil.virtual_memory().available
        if self.nbytes > headroom * avail:
            raise CacheTooLarge(f"cache='ram' needs {self.nbytes / 2**30:.2f} GiB for {self.n} images but only "
                                f"{avail / 2**30:.2f} GiB are available (using at most {headroom:.0%}); use "
                                f"cache='disk' or cache=False")
        self.path.unlink(missing_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, self.nbytes)
            mm = mmap.mmap(fd, self.nbytes)
        finally:
            os.close(fd)
        try:
            _HEAD.pack_into(mm, 0, _MAGIC, self.n, 0)
            view = np.frombuffer(mm, np.uint8)

            def fill(i: int) -> int:
                im = load(i)
                if im is None:
                    view[_HEAD.size + i] = 1
                    return i
                a, b = self.data_start + self.offsets[i], self.data_start + self.offsets[i + 1]
                view[a:b] = np.ascontiguousarray(im).reshape(-1)
                return i

            with ThreadPoolExecutor(max(1, workers)) as ex, Progress("RAM cache", self.n) as bar:
                for i in ex.map(fill, range(self.n)):
                    bar.update(1, int(self.offsets[i + 1] - self.offsets[i]))
            del view
            _HEAD.pack_into(mm, 0, _MAGIC, self.n, 1)
            mm.flush()
            mm.close()
        except BaseException:
            mm.close()
            self.path.unlink(missing_ok=True)
            raise
        self.built_here = True
        if not self._open_ready():
            raise RuntimeError(f"RAM cache {self.path} unreadable right after building it")

    @property
    def unreadable(self) -> np.ndarray:
        """Indices that could not be decoded when the arena was built."""
        return np.flatnonzero(np.frombuffer(self._mm, np.uint8, count=self.n, offset=_HEAD.size))

    def get(self, i: int) -> np.ndarray:
        """Image i, a read-only view into the shared mapping (no copy)."""
        a, b = self.data_start + self.offsets[i], self.data_start + self.offsets[i + 1]
        h, w = self.hws[i]
        return np.frombuffer(self._mm, np.uint8, count=int(b - a), offset=int(a)).reshape(int(h), int(w), 3)

    def close(self) -> None:
        """Unmap; the last user on the node also removes the arena from /dev/shm."""
        if self._mm is not None:
            try:
                self._mm.close()
            except BufferError:  # views still alive: the mapping goes when they do
                pass
            self._mm = None
        fd, self._users_fd = getattr(self, "_users_fd", None), None
        if fd is not None:
            os.close(fd)  # drop our shared lock, then remove the arena if nobody else holds one
        if getattr(self, "path", None) is not None:
            _remove_if_unused(self.name)
