"""The DALI decoder against OpenCV (the decode + resize Ultralytics does), per device, and its recovery from a
corrupt file (the dynamic executor: one bad run, not a broken pipeline)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import nvidia.dali  # noqa: F401,E402  (a dependency: missing fails, never skips)

DEVICES = ["cpu", pytest.param("gpu", marks=[pytest.mark.gpu, pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU")])]


def _files(data_yaml, n):
    from loader.dataset import build_index
    from loader.plan import load_size

    ix = build_index(data_yaml, verbose=False)
    return ix, [(ix.im_files[i], tuple(int(v) for v in ix.shapes[i]), load_size(*ix.shapes[i], 320)) for i in range(n)]


@pytest.mark.parametrize("device", DEVICES)
def test_decodes_match_opencv(demo_set, device):
    """Same files, same sizes: DALI's decode + INTER_LINEAR resize vs OpenCV's full decode + resize. On a GPU
    nvJPEG runs with libjpeg-turbo's chroma upsampling (jpeg_fancy_upsampling): without it colour edges drift."""
    from loader.images import decode_resized, read_bytes
    from loader.kernels.dali_decode import DaliDecoder

    _, files = _files(demo_set, 8)
    blobs = [read_bytes(f) for f, _, _ in files]
    with DaliDecoder(max_batch=8, threads=1, device=device) as dec:
        got = dec.decode(blobs, [hw for _, _, hw in files])
    for (f, hw0, hw), b, im in zip(files, blobs, got, strict=True):
        ref = decode_resized(b, hw0, hw, True, reduce=False, path=f)
        im = im.cpu().numpy() if torch.is_tensor(im) else im
        d = np.abs(im.astype(int) - ref)
        assert im.shape == ref.shape and d.mean() <= 0.5 and np.percentile(d, 99.9) <= 8, (f, d.mean(), d.max())


def test_good_bad_good_recovers(demo_set):
    from loader.images import read_bytes
    from loader.kernels.dali_decode import DaliDecoder

    _, files = _files(demo_set, 3)
    good = [read_bytes(f) for f, _, _ in files]
    sizes = [hw for _, _, hw in files]
    bad = np.frombuffer(b"\xff\xd8\xff\xe0 not a jpeg at all", np.uint8)
    with DaliDecoder(max_batch=4, threads=1, device="cpu") as dec:
        first = dec.decode(good, sizes)
        with pytest.raises(Exception):
            dec.decode([good[0], bad], sizes[:2])
        third = dec.decode(good, sizes)  # the legacy executor raised here, and on every run after
    assert len(first) == 3 and all(np.array_equal(a, b) for a, b in zip(first, third, strict=True))
