"""What only a GPU can see of the DALI engine (gpu_review_2.md findings 2-5), each measured where it happens:
the stream current at each DLPack hand-over, host synchronisations by torch's sync debug mode, uploads by the
engine's count, tile memory by torch's allocator statistics. Skipped without CUDA; ``benchmarks/gpu_check.sh``
runs them first.
"""

from __future__ import annotations

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


def test_decoded_tiles_are_handed_over_on_the_engine_stream(demo_set, monkeypatch):
    """Finding 2: ``torch.from_dlpack`` makes torch's *current* stream wait for DALI's output (it passes that
    stream to ``__dlpack__``), so the hand-over must run with the engine's stream current, not the painter
    thread's default stream (which the trainer's work shares). Checked where it happens: the current stream at
    every hand-over. (Timing cannot show it: DALI's outputs carry their own ready event, so before the fix the
    default stream waited only for the decode itself.)"""
    from loader.kernels.dali_decode import DaliDecoder

    seen = []
    real = torch.from_dlpack

    def recording(x, *a, **kw):
        seen.append(torch.cuda.current_stream().cuda_stream)
        return real(x, *a, **kw)

    monkeypatch.setattr(torch, "from_dlpack", recording)
    blobs, sizes = _jpegs(demo_set, 8)
    engine = torch.cuda.Stream()
    with DaliDecoder(max_batch=8, threads=2, device="gpu", to_torch=True) as dec:
        tiles = dec.decode(blobs, sizes, engine)
    engine.synchronize()
    assert len(tiles) == 8 and len(seen) == 8
    assert set(seen) == {engine.cuda_stream}, "a hand-over ran on another stream than the engine's"
    assert torch.cuda.default_stream().cuda_stream not in seen


def test_painting_makes_no_host_synchronisation(demo_set):
    """Finding 3: colour tables, mixup ratios and the canvas copies reach the GPU without blocking the host:
    torch's sync debug mode raises on every synchronising call (before the fix ``as_tensor(..., device=cuda)``
    of the colour rows did, ~4 times per batch), under deterministic algorithms as Ultralytics trains (there
    CUDA ``index_put_`` reads its index bounds back: the colour step uses ``index_select`` / ``where``). The
    engine is driven from this thread only (no prefetching painter threads while the mode is on)."""
    with DetectionLoader(demo_set, imgsz=S, batch_size=8, workers=2, seed=1, backend="dali", index_cache=False,
                         hyp={"mixup": 0.5, "degrees": 5.0, "bgr": 0.3}) as dl:
        engine = dl.engine
        order = dl.sampler.indices()
        batch = dl.planner.plan_batch(dl.epoch, np.arange(8), order)
        assert batch.has_mix.any() and batch.hsv is not None
        out = torch.empty((8, S, S, 3), dtype=torch.uint8, device="cuda")
        engine.paint(batch, out)  # warm-up: graph built, tiles decoded, allocators primed
        torch.cuda.synchronize()
        get = engine._getter(engine.prepare(batch))
        painter = engine.painter_for(batch)
        torch.use_deterministic_algorithms(True, warn_only=True)
        try:
            with engine._on_stream():
                res = painter.run(painter.feeds(batch, get), engine.stream)
                torch.cuda.set_sync_debug_mode("error")
                try:
                    painter.finish(batch, res, out)
                finally:
                    torch.cuda.set_sync_debug_mode("default")
        finally:
            torch.use_deterministic_algorithms(False)
        torch.cuda.synchronize()


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
