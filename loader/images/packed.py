"""One packed image store, three backings: every image of a data set at training size in one mapping.

``cache="ram"`` keeps it in shared memory (``/dev/shm``: one copy per node, whatever the number of processes
or DDP ranks), ``cache="disk"`` in one file (``YOLO_LOADER_DISK_CACHE_DIR`` or the loader's ``cache_dir``,
default ``~/.cache/yolo-loader/images``). Both have the same format (after FFCV's: a header, an offset
table, the pixels), are mapped once per process and read as views: no ``open()``, no header parsing and no
file descriptor per image (a ``.npy`` per image kept one descriptor per mapped image, ~1,256 at batch 128,
above the usual limit of 1,024; and ``np.load`` parses with ``ast``, racy on Python < 3.11.8).

Format: a 4 KiB header (magic, version, n, offsets, total size, CRC32 of the table, the key as JSON:
data set, split, imgsz, decode mode), the table (one ``RECORD`` per image: offset, h, w, the source's
size and mtime, a hash of its path, a status), then the pixels, each image 4 KiB-aligned.

Names: ``<sha1(key)>-<sha1(inputs)>.pack``: a changed data set (sizes, mtimes, paths) gets a new name, so a
file somebody has mapped is never overwritten. Building: under a lock (``flock``; an ``O_EXCL`` lock file
where the file system has no ``flock``), the first process checks the free space (refusing with both
numbers), reserves the whole file (``posix_fallocate``: no space is an error now, not a SIGBUS at the first
write into a too-small ``/dev/shm``), copies forward every image whose source is unchanged from an older
version of the same key and decodes the rest, writes table and header, and publishes with ``os.replace``
(fsync'd for the file backing). The others wait on the lock and map the result. A killed builder leaves a
temporary file only, swept by the next start.

Lifetime: the shared-memory backing is removed by its last user (a shared ``flock`` on ``<name>.users``
marks users; the kernel drops it when a process dies), or swept at the next start when all users crashed;
the file backing stays for the next run, older versions of a key go after a day. ``memfd``: the private
backing ``cache="ram"`` falls back to when ``/dev/shm`` is too small (one copy per process, as Ultralytics'
own ``cache="ram"``).

Every failure of the store (no space, no permission, read-only, I/O errors, too many open files) raises
``StoreUnavailable``: the image source then decodes from the sources (a cache fault is never bad data).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import mmap
import os
import shutil
import socket
import struct
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .._closing import Closing
from ..paths import cache_root
from ..progress import Progress

__all__ = ["PackedStore", "StoreUnavailable", "open_store", "shm_dir", "disk_dir", "sweep_stale", "PREFIX",
           "RECORD", "OK", "UNREADABLE", "NOT_CACHED", "path_hashes"]

LOG = logging.getLogger("loader.cache")
PREFIX = "yolo-loader-"
_LEGACY = ("yolo-loader-arena-",)  # shared-memory files of the loader's earlier RAM arena
MAGIC, VERSION = b"YLPACK\x00\x01", 1
_HEAD = struct.Struct("<8sIIqqqqII")  # magic, version, header size, n, table offset, data offset, total, crc, key len
HEADER = 4096
ALIGN = 4096
RECORD = np.dtype([("off", "<i8"), ("h", "<i4"), ("w", "<i4"), ("size", "<i8"), ("mtime_ns", "<i8"),
                   ("path", "<u8"), ("status", "u1"), ("pad", "V7")])
OK, UNREADABLE, NOT_CACHED = 0, 1, 2  # pixels stored / the source did not decode / a transient fault: decode later
_NO_FALLOCATE = {errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS}
STALE_LOCK_S, HEARTBEAT_S, OLD_VERSION_S = 120.0, 10.0, 86400.0


class StoreUnavailable(OSError):
    """The store cannot be opened or built here; the message says why (with bytes needed and free for space)."""

    def __init__(self, message: str, *, kind: str = "other"):
        super().__init__(message)
        self.kind = kind  # "space" (the file system is too small), "memory" (RAM is), "other"


_SPACE_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


def _unavailable(what: str, e: OSError) -> StoreUnavailable:
    return StoreUnavailable(f"{what}: {e.strerror or e}" + (f" ({e.filename})" if e.filename else ""),
                            kind="space" if e.errno in _SPACE_ERRNOS else "other")


def shm_dir() -> Path:
    return Path(os.environ.get("YOLO_LOADER_SHM_DIR") or "/dev/shm")


def disk_dir(override=None) -> Path:
    """Where ``cache="disk"`` lives: the loader's ``cache_dir``, ``YOLO_LOADER_DISK_CACHE_DIR``, or
    ``<cache root>/images``."""
    return Path(override or os.environ.get("YOLO_LOADER_DISK_CACHE_DIR") or cache_root() / "images")


def path_hashes(paths) -> np.ndarray:
    """A 64-bit hash of each path: what carries an unchanged image forward into a new version of a store."""
    return np.fromiter((int.from_bytes(hashlib.blake2b(p.encode("utf-8", "surrogateescape"), digest_size=8)
                                       .digest(), "little") for p in paths), np.uint64, len(paths))


# ----------------------------------------------------------------------------- locks

def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


class _Lock:
    """An exclusive lock on ``path``: ``flock``; where the file system has none (``ENOLCK``, NFS without lockd,
    or ``YOLO_LOADER_LOCK=excl``), an ``O_EXCL`` lock file holding host, pid and start time, touched every 10 s
    by its holder and broken by a waiter when the holder is dead on this host or silent for 120 s."""

    def __init__(self, path: Path, what: str):
        self.path, self.what = Path(path), what
        self._fd = None
        self._excl = None
        self._beat = threading.Event()

    def __enter__(self):
        if os.environ.get("YOLO_LOADER_LOCK") != "excl":
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                self._wait(lambda: _try_flock(fd, fcntl.LOCK_EX))
                self._fd = fd
                return self
            except OSError as e:
                os.close(fd)
                if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP):
                    raise
                LOG.info("no flock on %s (%s): using an O_EXCL lock file", self.path.parent, e)
        self._excl = self.path.with_name(self.path.name + ".excl")
        self._wait(self._try_excl)
        threading.Thread(target=self._heartbeat, daemon=True, name="loader-lock").start()
        return self

    def _wait(self, attempt) -> None:
        t0, told = time.monotonic(), False
        while not attempt():
            if not told and time.monotonic() - t0 > 5:
                LOG.info("waiting for another process building %s (%s)", self.what, self.path)
                told = True
            time.sleep(0.05 if time.monotonic() - t0 < 1 else 0.5)

    def _try_excl(self) -> bool:
        me = f"{socket.gethostname()} {os.getpid()} {time.time()}".encode()
        try:
            fd = os.open(self._excl, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            break_stale(self._excl)
            return False
        with os.fdopen(fd, "wb") as f:
            f.write(me)
        return True

    def _heartbeat(self) -> None:
        while not self._beat.wait(HEARTBEAT_S):
            try:
                os.utime(self._excl)
            except OSError:
                return

    def __exit__(self, *exc):
        if self._fd is not None:
            os.close(self._fd)  # releases the flock
            self._fd = None
        if self._excl is not None:
            self._beat.set()
            self._excl.unlink(missing_ok=True)
            self._excl = None


def _try_flock(fd: int, kind: int) -> bool:
    try:
        fcntl.flock(fd, kind | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def break_stale(lock: Path) -> bool:
    """Remove the ``O_EXCL`` lock file ``lock`` when its holder is dead (this host) or silent for 120 s (another
    host): renamed aside first, so that of two breakers only one wins. Returns whether it was broken."""
    try:
        host, pid, _ = lock.read_text().split()
        age = time.time() - lock.stat().st_mtime
    except (OSError, ValueError):
        return False  # gone, or being written right now
    if (not _pid_alive(int(pid))) if host == socket.gethostname() else age > STALE_LOCK_S:
        aside = lock.with_name(f"{lock.name}.broken.{os.getpid()}")
        try:
            os.rename(lock, aside)
        except OSError:
            return False
        aside.unlink(missing_ok=True)
        LOG.warning("broke a stale lock %s (holder %s pid %s, %.0f s silent)", lock, host, pid, age)
        return True
    return False


# ----------------------------------------------------------------------------- the format

def _layout(hws: np.ndarray) -> tuple[np.ndarray, int, int, int]:
    """(offsets, table offset, data offset, total bytes) for images of shapes ``hws``."""
    n = len(hws)
    sizes = hws[:, 0].astype(np.int64) * hws[:, 1] * 3
    padded = -(-sizes // ALIGN) * ALIGN
    table_off = HEADER
    data_off = -(-(table_off + n * RECORD.itemsize) // ALIGN) * ALIGN
    offs = np.zeros(n, np.int64)
    if n:
        offs[1:] = np.cumsum(padded)[:-1]
    offs += data_off
    total = int(data_off + padded.sum())
    return offs, table_off, data_off, total


def _parse(mm, key_json: bytes, n: int | None = None):
    """The table of a mapped store, or None when the mapping is not a complete store for ``key_json``."""
    if len(mm) < HEADER:
        return None
    magic, version, head, count, table_off, data_off, total, crc, klen = _HEAD.unpack_from(mm, 0)
    if magic != MAGIC or version != VERSION or head != HEADER or total != len(mm) or klen > HEADER - _HEAD.size:
        return None
    if bytes(mm[_HEAD.size:_HEAD.size + klen]) != key_json or (n is not None and count != n):
        return None
    end = table_off + count * RECORD.itemsize
    if end > data_off or data_off > total or zlib.crc32(mm[table_off:end]) != crc:
        return None
    table = np.frombuffer(mm, RECORD, count=count, offset=table_off)
    sizes = table["h"].astype(np.int64) * table["w"] * 3
    if count and (table["off"].min() < data_off or (table["off"] + sizes).max() > total):
        return None
    return table


def _map(path: Path):
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        return mmap.mmap(fd, size, prot=mmap.PROT_READ) if size else None
    finally:
        os.close(fd)


def _pwrite_all(fd: int, data, offset: int) -> None:
    view = memoryview(data).cast("B")
    while len(view):
        k = os.pwrite(fd, view, offset)
        view, offset = view[k:], offset + k


class PackedStore(Closing):
    """Images ``0..n-1`` (shapes ``hws``) of one data set in one mapping; ``get(i)`` is a read-only view.

    ``backing``: ``"shm"``, ``"file"`` or ``"memfd"``; ``key``: what the data set is (a dict: JSON-compared in
    full); ``stamps``: (n, 2) the sources' size and mtime_ns; ``paths``: (n,) ``path_hashes``; ``load(i)``:
    image i at its training size, None when its source does not decode (``UNREADABLE``); an ``OSError`` it
    raises leaves the image ``NOT_CACHED`` (decoded when it is needed). ``directory``: where the file goes.
    """

    def __init__(self, backing: str, key: dict, hws, stamps, paths, load, *, workers: int = 4,
                 directory: str | os.PathLike | None = None, headroom: float = 0.9, what: str = "image cache"):
        if backing not in ("shm", "file", "memfd"):
            raise ValueError(f"backing must be 'shm', 'file' or 'memfd', got {backing!r}")
        self.backing, self.what, self.headroom = backing, what, float(headroom)
        self._mm = self.table = self.status = None
        self._users_fd = None
        self.path = None
        self.built_here = False
        self.decoded = self.copied = 0  # images decoded / carried over from an older version, when built here
        self.build_s = 0.0
        hws = np.asarray(hws, np.int64).reshape(-1, 2)
        self.n = len(hws)
        self.hws = hws
        self._key_json = json.dumps(dict(key, format=VERSION), sort_keys=True).encode()
        if len(self._key_json) > HEADER - _HEAD.size:
            self._key_json = hashlib.sha256(self._key_json).hexdigest().encode()
        self.offsets, self._table_off, self._data_off, self.nbytes = _layout(hws)
        inputs = np.zeros(self.n, RECORD)
        inputs["off"], inputs["h"], inputs["w"] = self.offsets, hws[:, 0], hws[:, 1]
        stamps = np.asarray(stamps, np.int64).reshape(-1, 2)
        inputs["size"], inputs["mtime_ns"], inputs["path"] = stamps[:, 0], stamps[:, 1], np.asarray(paths, np.uint64)
        self._inputs = inputs
        kh = hashlib.sha1(self._key_json).hexdigest()[:16]
        self.name = f"{PREFIX}{kh}-{hashlib.sha1(inputs.tobytes()).hexdigest()[:16]}.pack"
        self._family = f"{PREFIX}{kh}-"
        try:
            if backing == "memfd":
                self._open_memfd(load, workers)
            else:
                self.dir = shm_dir() if backing == "shm" else Path(directory) if directory else disk_dir()
                self._open_named(load, workers)
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ opening
    def _open_named(self, load, workers: int) -> None:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise _unavailable(f"cannot create {self.dir}", e) from None
        self.path = self.dir / self.name
        if self.backing == "file" and self._try_open(warn=False):  # published files never change: read unlocked
            return
        if self.backing == "shm":
            sweep_stale(keep=self.name)
        try:
            with _Lock(self.dir / (self.name + ".lock"), f"the {self.what} {self.name}"):
                if not self._try_open():
                    self._build_named(load, workers)
                if self.backing == "shm":  # "I use it" until close() or death; taken under the lock, so no last
                    fd = os.open(self.dir / (self.name + ".users"), os.O_RDWR | os.O_CREAT, 0o600)
                    fcntl.flock(fd, fcntl.LOCK_SH)  # user can remove it between our open and this line
                    self._users_fd = fd
        except StoreUnavailable:
            raise
        except OSError as e:
            raise _unavailable(f"{self.what} in {self.dir}", e) from None
        if self.backing == "file":
            _sweep_file_family(self.dir, self._family, keep=self.name)

    def _try_open(self, warn: bool = True) -> bool:
        """Map the published store if it is complete and for these inputs. ``warn``: say so when it is not (once:
        the unlocked first look of the file backing is silent, the look under the lock speaks)."""
        try:
            mm = _map(self.path)
        except FileNotFoundError:
            return False
        except OSError as e:
            raise _unavailable(f"cannot map {self.path}", e) from None
        table = _parse(mm, self._key_json, self.n) if mm is not None else None
        if table is None or not _same_inputs(table, self._inputs):
            if mm is not None:
                del table
                mm.close()
            if warn:
                LOG.warning("%s %s is not a complete store for this data set: building it again", self.what,
                            self.path)
            return False
        self._mm, self.table = mm, table
        self.status = table["status"]  # per image: OK, UNREADABLE or NOT_CACHED (asked on every read)
        return True

    def _check_space(self, where: Path | None) -> None:
        need = self.nbytes
        if where is not None:
            st = os.statvfs(where)
            free = st.f_bavail * st.f_frsize
            if need > free:
                raise StoreUnavailable(f"{self.what} needs {need / 2**30:.2f} GiB ({need} bytes) for {self.n} images "
                                       f"but {where} has {free / 2**30:.2f} GiB ({free} bytes) free", kind="space")
        if self.backing in ("shm", "memfd"):
            import psutil

            avail = psutil.virtual_memory().available
            if need > self.headroom * avail:
                raise StoreUnavailable(f"{self.what} needs {need / 2**30:.2f} GiB for {self.n} images but only "
                                       f"{avail / 2**30:.2f} GiB of memory are available (using at most "
                                       f"{self.headroom:.0%}); use cache='disk' or cache=False", kind="memory")

    def _build_named(self, load, workers: int) -> None:
        _sweep_temps(self.dir, self._family)
        self._check_space(self.dir)
        tmp = self.dir / f"{self.name}.tmp.{socket.gethostname()}.{os.getpid()}"
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            self._fill(fd, load, workers, self._siblings())
            if self.backing == "file":
                os.fsync(fd)
            os.replace(tmp, self.path)
            if self.backing == "file":
                _fsync_dir(self.dir)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        finally:
            os.close(fd)
        if not self._try_open():
            raise StoreUnavailable(f"{self.path} unreadable right after building it")

    def _open_memfd(self, load, workers: int) -> None:
        self._check_space(None)
        try:
            fd = os.memfd_create(self.name, os.MFD_CLOEXEC)
        except (AttributeError, OSError) as e:
            raise StoreUnavailable(f"no private memory file for the {self.what} ({e})") from None
        try:
            self._fill(fd, load, workers, [])
            self._mm = mmap.mmap(fd, self.nbytes, prot=mmap.PROT_READ)
        except OSError as e:
            raise _unavailable(f"{self.what} in this process's memory", e) from None
        finally:
            os.close(fd)
        self.table = _parse(self._mm, self._key_json, self.n)
        self.status = self.table["status"]
        self.path = f"memfd:{self.name}"

    # ------------------------------------------------------------------ building
    def _siblings(self) -> list:
        """Valid older versions of this key (mappings), newest first: their unchanged images are copied."""
        out, found = [], []
        for p in self.dir.glob(self._family + "*.pack"):
            try:
                found.append((-p.stat().st_mtime, p))
            except OSError:  # removed meanwhile (an older version swept by another process)
                continue
        for _, p in sorted(found):
            if p.name == self.name:
                continue
            try:
                mm = _map(p)
            except OSError:
                continue
            table = _parse(mm, self._key_json) if mm is not None else None
            if table is not None:
                out.append((mm, table))
            elif mm is not None:
                mm.close()
        return out

    def _fill(self, fd: int, load, workers: int, siblings: list) -> None:
        t0 = time.perf_counter()
        try:
            os.posix_fallocate(fd, 0, self.nbytes)  # reserve it all now: ENOSPC here, never SIGBUS later
        except OSError as e:
            if e.errno not in _NO_FALLOCATE:
                raise StoreUnavailable(f"cannot reserve {self.nbytes / 2**30:.2f} GiB ({self.nbytes} bytes) for the "
                                       f"{self.what} in {getattr(self, 'dir', 'memory')}: {e.strerror or e}",
                                       kind="space" if e.errno in _SPACE_ERRNOS else "other") from None
            os.ftruncate(fd, self.nbytes)  # no fallocate here: writes below report a full disk
        table = self._inputs.copy()
        todo = np.ones(self.n, bool)
        try:
            for k in range(len(siblings)):
                self._copy_forward(fd, table, todo, *siblings[k])
        finally:
            maps = [mm for mm, _ in siblings]
            siblings.clear()  # the tables are views into the maps: gone first
            for mm in maps:
                mm.close()

        def one(i: int) -> int:
            try:
                im = load(i)
            except OSError as e:
                LOG.debug("%s: image %d not cached (%s)", self.what, i, e)
                table["status"][i] = NOT_CACHED
                return i
            if im is None:
                table["status"][i] = UNREADABLE
                return i
            im = np.ascontiguousarray(im, np.uint8)
            if im.shape != (table["h"][i], table["w"][i], 3):
                raise ValueError(f"image {i}: load gave {im.shape}, the store expects "
                                 f"{(int(table['h'][i]), int(table['w'][i]), 3)}")
            _pwrite_all(fd, im, int(table["off"][i]))
            return i

        idx = np.flatnonzero(todo).tolist()
        label = "RAM cache" if self.backing != "file" else "disk cache"
        with ThreadPoolExecutor(max(1, workers), thread_name_prefix="loader-cache") as ex, \
                Progress(label, len(idx)) as bar:
            for i in ex.map(one, idx):
                bar.update(1, int(table["h"][i]) * int(table["w"][i]) * 3)
        self.decoded, self.copied = len(idx), self.n - len(idx)
        blob = table.tobytes()
        key = self._key_json
        _pwrite_all(fd, blob, self._table_off)
        head = _HEAD.pack(MAGIC, VERSION, HEADER, self.n, self._table_off, self._data_off, self.nbytes,
                          zlib.crc32(blob), len(key)) + key
        _pwrite_all(fd, head, 0)
        self.built_here = True
        self.build_s = time.perf_counter() - t0
        if self.copied:
            LOG.info("%s: %d unchanged images carried over, %d decoded", self.what, self.copied, self.decoded)

    def _copy_forward(self, fd: int, table: np.ndarray, todo: np.ndarray, mm, old: np.ndarray) -> None:
        fields = ["path", "h", "w", "size", "mtime_ns"]
        ok = old[old["status"] == OK]
        where = {int(p): k for k, p in enumerate(ok["path"])}
        for i in np.flatnonzero(todo):
            k = where.get(int(table["path"][i]))
            if k is None or any(ok[f][k] != table[f][i] for f in fields):
                continue
            a, nb = int(ok["off"][k]), int(table["h"][i]) * int(table["w"][i]) * 3
            _pwrite_all(fd, mm[a:a + nb], int(table["off"][i]))
            todo[i] = False

    # ------------------------------------------------------------------ reading
    @property
    def unreadable(self) -> np.ndarray:
        """Indices whose source did not decode when the store was built."""
        return np.flatnonzero(self.table["status"] == UNREADABLE)

    def get(self, i: int) -> np.ndarray:
        """Image i, a read-only (h, w, 3) view into the mapping (no copy, no system call)."""
        h, w = self.hws[i]
        return np.frombuffer(self._mm, np.uint8, count=int(h * w * 3), offset=int(self.offsets[i])).reshape(
            int(h), int(w), 3)

    def close(self) -> None:
        """Unmap; for shared memory, the last user on the node also removes the store."""
        self.table = self.status = None
        if self._mm is not None:
            try:
                self._mm.close()
            except BufferError:  # views still alive: the mapping goes with them
                pass
            self._mm = None
        fd, self._users_fd = getattr(self, "_users_fd", None), None
        if fd is not None:
            os.close(fd)
            _remove_if_unused(self.dir, self.name)


def _same_inputs(table: np.ndarray, inputs: np.ndarray) -> bool:
    return all(np.array_equal(table[f], inputs[f]) for f in ("off", "h", "w", "size", "mtime_ns", "path"))


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _sweep_temps(d: Path, family: str) -> None:
    """Temporary files of builders that died (this host: pid gone; any host: a day old)."""
    host = socket.gethostname()
    for p in d.glob(family + "*.tmp.*"):
        try:
            h, pid = p.name.rsplit(".", 2)[-2:]
            dead = (h == host and not _pid_alive(int(pid))) or time.time() - p.stat().st_mtime > OLD_VERSION_S
        except (ValueError, OSError):
            continue
        if dead:
            p.unlink(missing_ok=True)
            LOG.info("removed %s, left by a builder that died", p)


def _sweep_file_family(d: Path, family: str, keep: str) -> None:
    """Older versions of a disk store go a day after they were last written (a run still using one keeps its
    mapping: unlinking never truncates); and the per-image ``.npy`` folders of the loader's earlier disk cache."""
    now = time.time()
    for p in d.glob(family + "*.pack"):
        try:
            if p.name != keep and now - p.stat().st_mtime > OLD_VERSION_S:
                p.unlink()
                p.with_name(p.name + ".lock").unlink(missing_ok=True)
                LOG.info("removed %s (an older version of this data set's disk cache)", p)
        except OSError:
            pass
    for old in d.glob("*/*/manifest.json"):
        if len(old.parent.parent.name) == 16:
            shutil.rmtree(old.parent.parent, ignore_errors=True)
            LOG.info("removed %s (the earlier per-image disk cache format)", old.parent.parent)


def _remove_if_unused(d: Path, name: str, locks=(".lock", ".users")) -> bool:
    """Unlink shared-memory store ``name`` and its lock files when no process uses it or is opening it (holds
    one of ``locks``)."""
    fds = []
    try:
        for suffix in locks:
            try:
                fd = os.open(d / (name + suffix), os.O_RDWR | os.O_CREAT, 0o600)
            except OSError:
                return False
            fds.append(fd)
            if not _try_flock(fd, fcntl.LOCK_EX):
                return False
        for suffix in ("", *locks):
            (d / (name + suffix)).unlink(missing_ok=True)
        return True
    finally:
        for fd in fds:
            os.close(fd)


def sweep_stale(keep: str | None = None) -> list[str]:
    """Remove shared-memory stores nobody uses (their users crashed), except ``keep``; the names removed."""
    d = shm_dir()
    _sweep_temps(d, PREFIX)  # a builder that died holds memory in its temporary file
    names = {p.name.split(".pack")[0] + ".pack" for p in d.glob(PREFIX + "*.pack*") if ".tmp." not in p.name}
    out = [n for n in sorted(names - {keep}) if _remove_if_unused(d, n)]
    for legacy in _LEGACY:  # the earlier RAM arena's files (".build"/".users" locks)
        for p in d.glob(legacy + "*"):
            base = p.name.split(".")[0]
            if p.name == base and _remove_if_unused(d, base, (".build", ".users")):
                out.append(base)
    return out


def open_store(mode: str, key: dict, hws, stamps, paths, load, *, workers: int = 4, directory=None,
               on_fallback=None) -> PackedStore:
    """The store for ``cache=mode`` (``"ram"`` or ``"disk"``). ``"ram"`` falls back to a private copy in this
    process's memory when ``/dev/shm`` has too little space for a shared one (``on_fallback(reason)`` is told);
    anything else that fails raises ``StoreUnavailable``."""
    args = (key, hws, stamps, paths, load)
    if mode == "disk":
        return PackedStore("file", *args, workers=workers, directory=directory, what="disk cache")
    if mode != "ram":
        raise ValueError(f"mode must be 'ram' or 'disk', got {mode!r}")
    try:
        return PackedStore("shm", *args, workers=workers, what="RAM cache")
    except StoreUnavailable as e:
        if e.kind != "space":
            raise
        if on_fallback is not None:
            on_fallback(f"{e}; holding it in this process's memory instead (one copy per process, not one per node: "
                        f"give {shm_dir()} more space, e.g. docker run --shm-size, to share it)")
        return PackedStore("memfd", *args, workers=workers, what="RAM cache (private)")
