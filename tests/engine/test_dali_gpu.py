"""What only a GPU can see of the DALI engine (gpu_review_2.md findings 2-5), each measured where it happens:
stream waits by CUDA events, host synchronisations by torch's sync debug mode, uploads by the engine's count,
tile memory by torch's allocator statistics. Skipped without CUDA; ``benchmarks/gpu_check.sh`` runs them first.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from loader import DetectionLoader

import nvidia.dali  # noqa: F401,E402  (a dependency: missing fails, never skips)

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
S = 320


def _jpegs(data_yaml, n):
    from loader.dataset import build_index
    from loader.images import read_bytes
    from loader.plan import load_size

    ix = build_index(data_yaml, verbose=False)
    files = [ix.im_files[i % len(ix)] for i in range(n)]
    sizes = [load_size(*ix.shapes[i % len(ix)], 896) for i in range(n)]
    return [read_bytes(f) for f in files], sizes


def test_decoded_tiles_do_not_make_the_callers_stream_wait(demo_set):
    """Finding 2: the DLPack hand-over happens on the engine's stream. Measured: an event recorded on the
    calling thread's (default) stream right after ``decode`` completes at once, while DALI's own work on the
    tiles (their copies, queued on the engine stream) is still running; before the fix the default stream
    waited for every tile of the run."""
    from loader.kernels.dali_decode import DaliDecoder

    blobs, sizes = _jpegs(demo_set, 48)
    engine = torch.cuda.Stream()
    with DaliDecoder(max_batch=48, threads=4, device="gpu", to_torch=True) as dec:
        dec.decode(blobs[:4], sizes[:4], engine)  # warm-up: nvJPEG and the allocator
        torch.cuda.synchronize()
        with torch.cuda.stream(engine):
            torch.cuda._sleep(int(5e8))  # ~0.2-0.5 s of GPU time ahead of the engine stream's copies
        t0 = time.perf_counter()
        tiles = dec.decode(blobs, sizes, engine)
        mine = torch.cuda.Event()
        mine.record(torch.cuda.current_stream())
        mine.synchronize()
        t_mine = time.perf_counter() - t0
        engine.synchronize()
        t_engine = time.perf_counter() - t0
    print(f"caller's stream free after {t_mine * 1e3:.1f} ms, engine stream after {t_engine * 1e3:.1f} ms")
    assert len(tiles) == 48 and all(t.is_cuda for t in tiles)
    assert t_engine > 0.05, "the engine stream's sleep did not hold its work back: nothing measured"
    assert t_mine < 0.5 * t_engine, "the caller's stream waited for the tiles"


def test_painting_makes_no_host_synchronisation(demo_set):
    """Finding 3: colour tables, mixup ratios and the canvas copies reach the GPU without blocking the host
    (torch's sync debug mode raises on every synchronising call; before the fix ``as_tensor(..., device=cuda)``
    of the colour rows did, ~4 times per batch)."""
    with DetectionLoader(demo_set, imgsz=S, batch_size=8, workers=2, seed=1, backend="dali", index_cache=False,
                         hyp={"mixup": 0.5, "degrees": 5.0}) as dl:
        next(iter(dl))  # warm-up: graphs built, tiles decoded, allocator primed
        order = dl.sampler.indices()
        batch = dl.planner.plan_batch(dl.epoch, np.arange(8), order)
        out = torch.empty((8, S, S, 3), dtype=torch.uint8, device="cuda")
        engine = dl.engine
        get = engine._getter(engine.prepare(batch))
        painter = engine.painter_for(batch)
        with engine._on_stream():
            res = painter.run(painter.feeds(batch, get), engine.stream)
            torch.cuda.set_sync_debug_mode("error")
            try:
                painter.finish(batch, res, out)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        torch.cuda.synchronize()
        assert batch.has_mix.any() and batch.hsv is not None


def test_cached_tiles_are_uploaded_once(demo_set):
    """Finding 4: with cache="disk" every tile comes from host memory; each is uploaded once and kept on the GPU
    (the demo set's 24 tiles fit the buffer), so a second epoch uploads nothing."""
    with DetectionLoader(demo_set, imgsz=S, batch_size=6, workers=2, seed=2, backend="dali", index_cache=False,
                         cache="disk") as dl:
        for _ in dl:
            pass
        first = dl.stats()["tile_uploads"]
        for _ in dl:
            pass
        second = dl.stats()["tile_uploads"]
    print("tile uploads: epoch 0", first, "epoch 1", second - first)
    assert 0 < first <= 24 and second == first


def test_decoded_tiles_own_their_gpu_memory(demo_set):
    """Finding 5: a tile kept in the buffer holds its own bytes, not the whole run's output buffer (a DLPack view
    keeps DALI's run buffer alive while the buffer counts one tile): the tiles are torch allocations."""
    from loader.kernels.dali_decode import DaliDecoder

    blobs, sizes = _jpegs(demo_set, 16)
    with DaliDecoder(max_batch=16, threads=2, device="gpu", to_torch=True) as dec:
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        tiles = dec.decode(blobs, sizes)
        torch.cuda.synchronize()
        grown = torch.cuda.memory_allocated() - before
    need = sum(t.nbytes for t in tiles)
    print(f"torch allocated {grown / 2**20:.1f} MiB for {need / 2**20:.1f} MiB of tiles")
    assert grown >= need, "the tiles are views into DALI's buffers, not torch's own memory"
    assert all(t.untyped_storage().nbytes() == t.nbytes for t in tiles)
