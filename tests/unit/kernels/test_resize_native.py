"""The load-time resize (``loader/kernels/resize.py`` and ``resize.c``) gives ``cv2.resize``'s INTER_LINEAR bytes.

* The kernel against OpenCV on some 150 size pairs (down, up, mixed, tiny, a downscale beyond the 128-byte
  window, sources with padded rows), 1, 3 and 4 channels: its AVX-512 code where the CPU has it (CI's does) and
  its per-element reference code on any CPU.
* A numpy model of OpenCV's fixed-point arithmetic: with the vector code's vertical rounding it is OpenCV's
  bytes; with the scalar form's (one rounded shift) it is not. That is why the kernel follows the vector form.
* ``resize_linear`` (the route ``decode_resized`` takes): bitwise ``cv2.resize`` on every input it is given,
  native or not (views, exactly 2x, grey); the route in the engine's stats, and ``YOLO_LOADER_RESIZE=opencv``.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from loader.kernels import resize

from engine_route import assert_vbmi_route


@pytest.fixture(scope="module")
def kernel():
    """The built kernel (ctypes), called directly whatever route ``resize_linear`` takes on this CPU."""
    fn, vector = resize.native_kernel()  # built by `pip install -e .` (make venv): missing fails
    return fn, vector


def _sizes():
    rng = np.random.default_rng(2)
    fixed = [(1080, 1920, 504, 896), (3024, 4032, 672, 896), (480, 640, 672, 896), (427, 640, 597, 896),
             (1000, 700, 896, 627), (1, 1, 3, 3), (2, 3, 1, 1), (7, 9, 3, 4), (61, 50, 203, 11),
             (1080, 1920, 60, 107),  # beyond the kernel's 128-byte window: per-element chunks
             (300, 300, 896, 896), (1080, 1920, 540, 960)]
    return fixed + [tuple(int(v) for v in rng.integers(1, 700, 4)) for _ in range(140)]


def _ref(src, dh, dw):
    return cv2.resize(src, (dw, dh), interpolation=cv2.INTER_LINEAR).reshape(dh, dw, src.shape[2])


def test_kernel_equals_opencv(kernel):
    fn, vector = kernel
    rng = np.random.default_rng(4)
    photo = cv2.GaussianBlur(rng.integers(0, 256, (700, 700, 3), np.uint8), (0, 0), 3)  # smooth, as photos are
    bad = []
    for k, (sh, sw, dh, dw) in enumerate(_sizes()):
        cn = (3, 1, 4)[k % 3] if k >= 12 else 3
        src = rng.integers(0, 256, (sh, sw + 3, cn), np.uint8)[:, 1:sw + 1]  # padded rows: the step is not w * cn
        if cn == 3 and sh <= 700 and sw <= 700:
            src[: sh // 2] = photo[: sh // 2, :sw]
        ref = _ref(src, dh, dw)
        for vec in ((True, False) if vector else (False,)):
            if k >= 12 and not vec and k % 4:  # the slow reference code on a quarter of the random sizes
                continue
            if not np.array_equal(resize.run_native(fn, src, (dh, dw), vec), ref):
                bad.append((sh, sw, dh, dw, cn, vec))
    assert not bad, f"the kernel differs from cv2.resize on {bad[:10]}"


def _model(src, dh, dw, vector_rounding: bool):
    """OpenCV's INTER_LINEAR on 8-bit images in numpy (resize.cpp: coefficients, horizontal, vertical pass)."""
    sh, sw, cn = src.shape

    def taps(d, s):
        f = ((np.arange(d) + 0.5) * (1.0 / (d / s)) - 0.5).astype(np.float32)
        i = np.floor(f).astype(np.int64)
        f = (f - i).astype(np.float32)
        return i, f

    sx, fx = taps(dw, sw)
    fx[sx < 0], sx[sx < 0] = 0, 0
    edge = sx >= sw - 1
    fx[edge], sx[edge] = 0, sw - 1
    a0 = np.rint((np.float32(1) - fx) * np.float32(2048)).astype(np.int64)
    a1 = np.rint(fx * np.float32(2048)).astype(np.int64)
    s = src.astype(np.int64)
    hor = s[:, sx] * a0[None, :, None] + s[:, np.minimum(sx + 1, sw - 1)] * a1[None, :, None]
    sy, fy = taps(dh, sh)
    b0 = np.rint((np.float32(1) - fy) * np.float32(2048)).astype(np.int64)[:, None, None]
    b1 = np.rint(fy * np.float32(2048)).astype(np.int64)[:, None, None]
    h0, h1 = hor[np.clip(sy, 0, sh - 1)], hor[np.clip(sy + 1, 0, sh - 1)]
    if vector_rounding:  # sat16(H >> 4) mulhi beta, summed, then (v + 2) >> 2
        v = ((np.clip(h0 >> 4, -32768, 32767) * b0) >> 16) + ((np.clip(h1 >> 4, -32768, 32767) * b1) >> 16)
        out = (np.clip(v, -32768, 32767) + 2) >> 2
    else:  # FixedPtCast<int, uchar, 22>
        out = (h0 * b0 + h1 * b1 + (1 << 21)) >> 22
    return np.clip(out, 0, 255).astype(np.uint8)


def test_model_of_opencv_arithmetic():
    """The arithmetic the kernel implements is OpenCV's; the scalar rounding (the obvious reading of resize.cpp)
    is not: it differs on a share of the pixels of a photo-like image."""
    rng = np.random.default_rng(6)
    src = cv2.GaussianBlur(rng.integers(0, 256, (240, 320, 3), np.uint8), (0, 0), 2)
    for dh, dw in ((113, 150), (336, 448), (200, 97)):
        ref = _ref(src, dh, dw)
        assert np.array_equal(_model(src, dh, dw, True), ref), (dh, dw)
        assert (_model(src, dh, dw, False) != ref).mean() > 0.01, (dh, dw)


@pytest.mark.parametrize("case", ["native", "channel-view", "half", "double", "grey", "same", "far-down"])
def test_resize_linear_is_opencv_on_any_input(case):
    rng = np.random.default_rng(8)
    im = rng.integers(0, 256, (540, 962, 3), np.uint8)[:, 1:961]
    hw = {"native": (251, 448), "channel-view": (251, 448), "half": (270, 480), "double": (1080, 1920),
          "grey": (251, 448), "same": (540, 960), "far-down": (60, 107)}[case]  # far-down: beyond MAX_DOWNSCALE
    if case == "channel-view":
        im = im[..., ::-1]  # negative channel stride: OpenCV takes it, the kernel does not
    if case == "grey":
        im = np.ascontiguousarray(im[..., 0])
    out = resize.resize_linear(im, hw)
    ref = cv2.resize(im, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR)
    assert out.shape == ref.shape and np.array_equal(out, ref)


def test_decode_resized_bytes_are_ultralytics_load(tmp_path):
    """``decode_resized`` (every uncached image) equals Ultralytics' load step: imread, then INTER_LINEAR."""
    from loader.images.decode import decode_resized, load_size

    rng = np.random.default_rng(9)
    img = cv2.GaussianBlur(rng.integers(0, 256, (1080, 1920, 3), np.uint8), (0, 0), 4)
    f = tmp_path / "a.jpg"
    cv2.imwrite(str(f), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
    hw = load_size(1080, 1920, 896)
    ours = decode_resized(np.fromfile(f, np.uint8), (1080, 1920), hw, jpeg=True)
    stock = cv2.resize(cv2.imread(str(f)), (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR)
    assert np.array_equal(ours, stock)


@pytest.mark.parametrize("env", ["", "opencv"])
def test_route_is_reported(env, kernel):
    """The CPU engine's stats say which route runs; YOLO_LOADER_RESIZE=opencv chooses OpenCV's, with a warning."""
    assert_vbmi_route("resize_kernel", "YOLO_LOADER_RESIZE", env, "runs through cv2.resize", kernel[1])
