"""Work in child processes that never import the user's script.

``multiprocessing``'s ``spawn`` and ``forkserver`` start every child by importing the parent's ``__main__``
again (as ``__mp_main__``): a training script without an ``if __name__ == "__main__":`` guard (most of them)
runs its top-level code once more in each child, which then dies bootstrapping (``BrokenProcessPool``).
``fork`` copies whatever locks the parent's threads (torch, painter threads, logging) held at that moment.
So a child here is a plain ``python -c`` that imports only this module and the one holding the function,
reads pickled chunks of work on stdin and writes pickled results on stdout.

A child that cannot start or dies is named at WARNING, counted (``PoolResult.failed``) and its remaining
chunks run in the calling process: slower, never lost.
"""

from __future__ import annotations

import importlib
import logging
import os
import pickle
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["map_in_processes", "PoolResult"]

LOG = logging.getLogger("loader")
_PACKAGE_PARENT = str(Path(__file__).resolve().parents[1])
# The child's whole start-up: sys.path gets this package's folder (not the caller's working directory, where
# a module may shadow ours), then the loop below runs. Nothing of the parent's __main__ is imported.
_BOOT = ("import sys; sys.path[:] = [{parent!r}] + [p for p in sys.path if p not in ('', '.')]; "
         "from loader.procpool import _child_main; _child_main({fn!r})")


@dataclass
class PoolResult:
    """Results in the order of the items; ``failed``: children that could not start or died (their work ran in
    this process instead); ``errors``: what each said."""

    results: list
    failed: int = 0
    errors: list = field(default_factory=list)


def _resolve(ref: str):
    module, _, name = ref.partition(":")
    obj = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def _child_main(ref: str) -> None:
    """The child's loop: (start, items) in, [fn(item) ...] out, until stdin closes."""
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything a library prints goes to stderr, never into the result stream
    sys.stdout = sys.stderr
    fn = _resolve(ref)
    inp = sys.stdin.buffer
    while True:
        try:
            start, items = pickle.load(inp)
        except EOFError:
            return
        pickle.dump((start, [fn(x) for x in items]), out, protocol=pickle.HIGHEST_PROTOCOL)
        out.flush()


def map_in_processes(ref: str, items: list, workers: int, chunksize: int = 256, progress=None) -> PoolResult:
    """``[fn(x) for x in items]`` on ``workers`` child processes, ``fn`` named ``"module:function"`` (a module
    the child can import: never ``__main__``). ``progress.update(n)`` as chunks come back."""
    if ref.startswith("__main__") or ":" not in ref:
        raise ValueError(f"map_in_processes needs 'module:function' of an importable module, got {ref!r}")
    fn = _resolve(ref)
    chunks = [(s, items[s:s + chunksize]) for s in range(0, len(items), chunksize)]
    results: list = [None] * len(items)
    pending = list(reversed(chunks))
    leftovers: list = []
    lock = threading.Lock()
    errors: list[str] = []
    env = dict(os.environ, PYTHONUNBUFFERED="1")

    def store(start, res) -> None:
        results[start:start + len(res)] = res
        if progress is not None:
            progress.update(len(res))

    def drive() -> None:
        with tempfile.TemporaryFile() as err:
            try:
                p = subprocess.Popen([sys.executable, "-c", _BOOT.format(parent=_PACKAGE_PARENT, fn=ref)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, env=env)
            except OSError as e:
                with lock:
                    errors.append(f"cannot start {sys.executable}: {e}")
                return
            job = None
            try:
                while True:
                    with lock:
                        job = pending.pop() if pending else None
                    if job is None:
                        break
                    pickle.dump(job, p.stdin, protocol=pickle.HIGHEST_PROTOCOL)
                    p.stdin.flush()
                    start, res = pickle.load(p.stdout)
                    if start != job[0] or len(res) != len(job[1]):
                        raise EOFError(f"answer for chunk {start} ({len(res)} results) to chunk {job[0]}")
                    job = None
                    store(start, res)
                p.stdin.close()
                p.wait(timeout=60)
            except (OSError, EOFError, pickle.UnpicklingError, subprocess.TimeoutExpired) as e:
                p.kill()
                p.wait()
                err.seek(0)
                tail = err.read()[-1500:].decode(errors="replace").strip()
                with lock:
                    errors.append(f"exit code {p.returncode} ({type(e).__name__}: {e})" + (f": {tail}" if tail else ""))
                    if job is not None:
                        leftovers.append(job)
                    leftovers.extend(pending)  # the other children may be gone too: this process does the rest
                    pending.clear()

    threads = [threading.Thread(target=drive, name=f"procpool-{k}", daemon=True)
               for k in range(max(1, min(workers, len(chunks))))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    leftovers.extend(pending)  # no child could start: nothing took them
    if errors:
        LOG.warning("%d of %d worker processes for %s failed (%s); %d chunks of %d done in this process instead",
                    len(errors), len(threads), ref, errors[0], len(leftovers), len(chunks))
    for start, chunk in leftovers:
        store(start, [fn(x) for x in chunk])
    return PoolResult(results, len(errors), errors)
