"""The packed store behind cache="ram" / cache="disk": one mapping, views, no descriptor per image; built once by
one process under a lock, published atomically, rebuilt incrementally; every fault a clear StoreUnavailable."""

from __future__ import annotations

import errno
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from loader.images import packed
from loader.images.packed import NOT_CACHED, OK, UNREADABLE, PackedStore, StoreUnavailable

ROOT = Path(__file__).resolve().parents[3]
N = 40


def _hws(n=N):
    rng = np.random.default_rng(0)
    return np.c_[rng.integers(8, 60, n), rng.integers(8, 60, n)]


def _image(i, hw):
    return ((np.arange(hw[0] * hw[1] * 3, dtype=np.int64) * (i + 7)) % 251).astype(np.uint8).reshape(hw[0], hw[1], 3)


class Loads:
    """A counting ``load``: image i is a pattern of i (none for ``bad``; ``OSError`` for ``flaky``)."""

    def __init__(self, hws, bad=(), flaky=()):
        self.hws, self.bad, self.flaky, self.calls = hws, set(bad), set(flaky), []

    def __call__(self, i):
        self.calls.append(i)
        if i in self.flaky:
            raise OSError(errno.EMFILE, "Too many open files")
        return None if i in self.bad else _image(i, self.hws[i])


def _store(backing, d, hws=None, stamps=None, load=None, key=None, **kw):
    hws = _hws() if hws is None else hws
    stamps = np.c_[np.arange(len(hws)) + 100, np.full(len(hws), 5)] if stamps is None else stamps
    paths = packed.path_hashes([f"/data/{i}.jpg" for i in range(len(hws))])
    load = load or Loads(hws)
    return PackedStore(backing, key or {"data": "t"}, hws, stamps, paths, load, workers=2,
                       directory=d if backing == "file" else None, **kw), load


@pytest.fixture
def shm(tmp_path, monkeypatch):
    """A private shared-memory folder for each test (a tmpfs-like place; the real /dev/shm in the scale tier)."""
    d = Path("/dev/shm") / f"yl-test-{os.getpid()}-{time.time_ns()}"
    d.mkdir()
    monkeypatch.setenv("YOLO_LOADER_SHM_DIR", str(d))
    yield d
    for p in d.iterdir():
        p.unlink()
    d.rmdir()


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("backing", ["file", "shm", "memfd"])
def test_views_are_the_images_and_hold_no_descriptor(backing, tmp_path, shm, monkeypatch):
    monkeypatch.setattr(np, "load", lambda *a, **k: pytest.fail("np.load parses headers with ast: never on reads"))
    before = _fds()
    st, load = _store(backing, tmp_path)
    assert sorted(load.calls) == list(range(N)) and st.built_here and (st.status == OK).all()
    opened = _fds()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (128, hard))
    try:
        views = [st.get(i % N) for i in range(300)]  # more live images than descriptors allowed
        assert _fds() == opened, "a read opens nothing"
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    for i, v in enumerate(views[:N]):
        assert np.array_equal(v, _image(i, load.hws[i])) and not v.flags.writeable
    del views, v
    assert opened - before <= 2  # the lock files of a named store, nothing per image
    st.close()


def test_file_store_is_reused_and_rebuilt_incrementally(tmp_path):
    hws = _hws()
    st, load = _store("file", tmp_path, hws)
    name = st.path.name
    st.close()
    st2, load2 = _store("file", tmp_path, hws)
    assert not st2.built_here and load2.calls == [] and st2.path.name == name, "a second run decodes nothing"
    st2.close()
    stamps = np.c_[np.arange(N) + 100, np.full(N, 5)]
    stamps[7] = (999, 6)  # one source changed (size, mtime)
    st3, load3 = _store("file", tmp_path, hws, stamps=stamps)
    assert load3.calls == [7] and st3.copied == N - 1 and st3.path.name != name, "only the changed image decodes"
    assert all(np.array_equal(st3.get(i), _image(i, hws[i])) for i in range(N))
    st3.close()
    assert sorted(p.name for p in tmp_path.glob("*.pack")) == sorted([name, st3.path.name]), \
        "the older version stays (for a day) for runs that still map it"


def test_statuses_unreadable_and_not_cached(tmp_path):
    st, load = _store("file", tmp_path, load=Loads(_hws(), bad={3}, flaky={5}))
    assert st.status[3] == UNREADABLE and st.status[5] == NOT_CACHED and st.unreadable.tolist() == [3]
    st.close()
    st2, load2 = _store("file", tmp_path)
    assert load2.calls == [], "published with its statuses: reused as it is"
    st2.close()


def test_key_is_compared_in_full(tmp_path):
    a, _ = _store("file", tmp_path, key={"data": "t", "imgsz": 640, "decode": "False"})
    b, load = _store("file", tmp_path, key={"data": "t", "imgsz": 640, "decode": "True"})
    assert b.built_here and len(load.calls) == N and a.path != b.path
    a.close(), b.close()


def test_a_damaged_file_is_never_trusted(tmp_path, caplog):
    st, _ = _store("file", tmp_path)
    path = st.path
    st.close()
    data = bytearray(path.read_bytes())
    data[packed.HEADER + 5] ^= 0xFF  # one byte of the table: the CRC no longer matches
    path.write_bytes(bytes(data))
    st2, load = _store("file", tmp_path)
    assert st2.built_here and len(load.calls) == N
    assert any("not a complete store" in r.getMessage() for r in caplog.records)
    st2.close()
    with open(path, "r+b") as f:  # a file cut short by a page
        f.truncate(path.stat().st_size - 4096)
    st3, load = _store("file", tmp_path)
    assert st3.built_here and len(load.calls) == N
    st3.close()


def test_no_space_is_a_clear_refusal_and_leaves_nothing(tmp_path):
    """RLIMIT_FSIZE makes the reservation fail as a full disk would (Python ignores SIGXFSZ: EFBIG)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 10, hard))
    try:
        with pytest.raises(StoreUnavailable, match=r"cannot reserve .* bytes") as e:
            _store("file", tmp_path)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert e.value.kind == "space"
    assert not [p for p in tmp_path.iterdir() if ".tmp." in p.name or p.suffix == ".pack"], "no partial file"


def test_free_space_is_checked_before_building(tmp_path, monkeypatch):
    class Tiny:
        f_bavail, f_frsize = 10, 4096

    monkeypatch.setattr(os, "statvfs", lambda p: Tiny())
    with pytest.raises(StoreUnavailable, match=r"needs .* bytes\) for 40 images but .* has 0.00 GiB \(40960 bytes\) "
                                              r"free"):
        _store("file", tmp_path)
    assert not list(tmp_path.glob("*.pack*.tmp.*"))


def test_memory_is_checked_before_allocating(shm, monkeypatch):
    class Tiny:
        available = 1 << 10

    monkeypatch.setattr(psutil, "virtual_memory", lambda: Tiny())
    with pytest.raises(StoreUnavailable, match=r"needs .* GiB for 40 images but only 0.00 GiB of memory") as e:
        _store("shm", None)
    assert e.value.kind == "memory" and not list(shm.glob("*.pack")), "nothing was allocated"


def test_read_only_folder(tmp_path, monkeypatch):
    """A valid store in a read-only place still maps; where none is, building fails as StoreUnavailable. (chmod
    does not stop root: the file system's answer, EROFS, is given by os.open.)"""
    st, _ = _store("file", tmp_path)
    st.close()
    real_open = os.open

    def ro_open(path, flags, *a, **k):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, *a, **k)

    monkeypatch.setattr(os, "open", ro_open)
    st2, load = _store("file", tmp_path)
    assert not st2.built_here and load.calls == []
    st2.close()
    with pytest.raises(StoreUnavailable, match="Read-only file system"):
        _store("file", tmp_path / "elsewhere")


RACE_CHILD = r"""
import json, os, sys, time
import numpy as np
sys.path.insert(0, sys.argv[1])
from loader.images.packed import PackedStore, path_hashes
d, go, n = sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
hws = np.c_[np.arange(n) % 50 + 10, np.arange(n) % 30 + 10]
calls = []
def load(i):
    calls.append(i)
    if sys.argv[5] == "die" and len(calls) == n // 2:
        os._exit(3)  # a builder killed half-way
    time.sleep(0.002)
    return np.full((hws[i][0], hws[i][1], 3), i % 256, np.uint8)
while time.time() < go:
    time.sleep(0.001)
st = PackedStore("file", {"data": "race"}, hws, np.c_[np.arange(n), np.ones(n)], path_hashes([str(i) for i in range(n)]),
                 load, workers=2, directory=d)
print(json.dumps({"calls": len(calls), "built": st.built_here, "sum": int(sum(int(st.get(i).sum()) for i in range(n)))}))
"""


def _race(d, procs=3, n=300, mode="ok", env=None):
    go = time.time() + 1.5  # a barrier: every child starts building at the same moment
    env = dict(os.environ, **(env or {}))
    ps = [subprocess.Popen([sys.executable, "-c", RACE_CHILD, str(ROOT), str(d), str(go), str(n), mode],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(procs)]
    out = [p.communicate(timeout=120) for p in ps]
    return [(p.returncode, o, e) for p, (o, e) in zip(ps, out)]


@pytest.mark.parametrize("lock", ["flock", "excl"])
def test_three_processes_build_once_and_read_the_same(tmp_path, lock):
    res = _race(tmp_path, env={"YOLO_LOADER_LOCK": lock})
    assert all(rc == 0 for rc, _, _ in res), [e[-1500:] for _, _, e in res]
    rows = [json.loads(o.strip().splitlines()[-1]) for _, o, _ in res]
    assert sum(r["built"] for r in rows) == 1 and sum(r["calls"] for r in rows) == 300, rows
    assert len({r["sum"] for r in rows}) == 1
    assert len(list(tmp_path.glob("*.pack"))) == 1 and not list(tmp_path.glob("*.tmp.*"))


def test_a_killed_builder_leaves_no_store_and_the_next_start_builds(tmp_path):
    (rc, _, _), = _race(tmp_path, procs=1, mode="die")
    assert rc == 3 and not list(tmp_path.glob("*.pack")), "no final file from a builder that died"
    assert list(tmp_path.glob("*.tmp.*")), "(its temporary file is left)"
    (rc, out, err), = _race(tmp_path, procs=1)
    assert rc == 0, err[-1500:]
    assert json.loads(out.strip().splitlines()[-1])["built"] and not list(tmp_path.glob("*.tmp.*")), "swept"


def test_stale_excl_locks_are_broken(tmp_path, monkeypatch):
    monkeypatch.setenv("YOLO_LOADER_LOCK", "excl")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    st, _ = _store("file", tmp_path)  # learn the lock's name
    lock = tmp_path / (st.name + ".lock.excl")
    st.path.unlink()
    st.close()
    lock.write_text(f"{socket.gethostname()} {dead.pid} {time.time()}")  # a holder that died on this host
    t0 = time.monotonic()
    st, load = _store("file", tmp_path)
    assert st.built_here and time.monotonic() - t0 < 10 and not lock.exists()
    st.path.unlink()
    st.close()
    lock.write_text(f"another-host 1 {time.time()}")  # another host, silent for longer than STALE_LOCK_S
    old = time.time() - packed.STALE_LOCK_S - 5
    os.utime(lock, (old, old))
    st, _ = _store("file", tmp_path)
    assert st.built_here and not lock.exists()
    st.close()
    lock.write_text(f"another-host 1 {time.time()}")  # another host, alive (recent heartbeat): not broken
    assert not packed.break_stale(lock) and lock.exists()


SHM_CHILD = r"""
import sys, time
import numpy as np
sys.path.insert(0, sys.argv[1])
from loader.images.packed import PackedStore, path_hashes
n = 64
hws = np.full((n, 2), 200)
st = PackedStore("shm", {"data": "shared"}, hws, np.c_[np.arange(n), np.ones(n)], path_hashes([str(i) for i in range(n)]),
                 lambda i: np.full((200, 200, 3), i, np.uint8), workers=2)
total = sum(int(st.get(i)[::7, ::7].sum()) for i in range(n))  # every page mapped here
for i in range(n):
    st.get(i).sum()
print("ready", st.path, st.nbytes, int(st.built_here), flush=True)
time.sleep(float(sys.argv[2]))
st.close()
print("closed", flush=True)
"""


def _start(hold):
    p = subprocess.Popen([sys.executable, "-c", SHM_CHILD, str(ROOT), str(hold)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline().split()
    assert line and line[0] == "ready", p.stderr.read()[-2000:]
    return p, line[1], int(line[2]), line[3] == "1"


def _pss(pid, path):
    rss = pss = 0
    for m in psutil.Process(pid).memory_maps(grouped=True):
        if m.path == path:
            rss, pss = rss + m.rss, pss + m.pss
    return rss, pss


def test_shared_memory_one_copy_per_node_survives_a_crash_and_goes_with_its_last_user(shm):
    a, path, nbytes, a_built = _start(60)
    b, path_b, _, b_built = _start(0.5)
    try:
        assert path == path_b and a_built and not b_built, "built once, by the first process"
        (rss_a, pss_a), (rss_b, pss_b) = _pss(a.pid, path), _pss(b.pid, path)
        assert rss_a > 0.9 * nbytes and rss_b > 0.9 * nbytes, "both processes see the whole store"
        assert pss_a + pss_b <= 1.1 * nbytes, "the node pays for one copy, not two"
        a.send_signal(signal.SIGKILL)  # one user crashes; the other closes later: it removes the store
        a.wait(timeout=30)
        out, err = b.communicate(timeout=60)
        assert "closed" in out, err[-2000:]
        assert not list(shm.iterdir()), "the last user removed the store and its lock files"
    finally:
        for p in (a, b):
            if p.poll() is None:
                p.kill()
                p.wait()


def test_stores_whose_users_all_crashed_are_swept(shm):
    a, path, _, _ = _start(60)
    a.send_signal(signal.SIGKILL)
    a.wait(timeout=30)
    assert Path(path).exists()
    assert packed.sweep_stale() == [Path(path).name] and not list(shm.iterdir())


def test_ram_falls_back_to_private_memory_when_shm_is_too_small(shm, monkeypatch):
    real = os.statvfs

    class Full:
        f_bavail, f_frsize = 1, 4096

    monkeypatch.setattr(os, "statvfs", lambda p: Full() if str(p) == str(shm) else real(p))
    told = []
    hws = _hws()
    st = packed.open_store("ram", {"data": "t"}, hws, np.zeros((N, 2)), packed.path_hashes([str(i) for i in range(N)]),
                           Loads(hws), workers=2, on_fallback=told.append)
    assert st.backing == "memfd" and len(told) == 1 and "docker run --shm-size" in told[0]
    assert all(np.array_equal(st.get(i), _image(i, hws[i])) for i in range(N))
    assert not list(shm.glob("*.pack"))
    st.close()
