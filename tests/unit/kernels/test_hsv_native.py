"""The HSV step (``loader/kernels/hsv.py`` and ``hsv.c``) gives Ultralytics' ``RandomHSV`` bytes.

* The native kernel against OpenCV's three passes on every one of the 2^24 colours, in both of OpenCV's codes
  (the vector part of a row truncates, its scalar tail rounds), both channel orders, several tables. The
  per-pixel C code is checked on any CPU; the 64-pixel AVX-512 blocks where the CPU has them (CI's does).
* ``apply_hsv`` on the box of a frame, by both routes (native and OpenCV), against Ultralytics' own
  ``RandomHSV`` on the whole frame followed by its ``RandomFlip``: the box's bytes equal, for frame widths with
  and without a scalar tail, flipped or not. Converting the box alone with OpenCV (the route before) fails this:
  the box's own row tails round where Ultralytics' full rows truncated.
"""

from __future__ import annotations

import numpy as np
import pytest

from loader.kernels import hsv

from engine_route import assert_vbmi_route

import ultralytics  # noqa: F401  (a dependency: missing fails, never skips)


def _luts():
    rng = np.random.default_rng(5)
    gains = [np.zeros(3), np.array([0.5, 0.9, 0.9]), np.array([-0.5, -0.9, -0.9])]
    gains += [rng.uniform(-1, 1, 3) * [0.015, 0.7, 0.4] for _ in range(2)]
    return [hsv.hsv_luts_batch(g)[0] for g in gains]


def _three_passes(img, lut, to_rgb):
    out = img.copy()
    hsv.opencv_three_passes(out, lut, to_rgb)
    return out


@pytest.fixture(scope="module")
def kernel():
    """The built kernel (ctypes), called directly whatever route ``apply_hsv`` takes on this CPU."""
    fn, vector = hsv.native_kernel()  # built by `pip install -e .` (make venv): missing fails
    fma = hsv._self_check(fn, hsv.vector_block() or 0)
    assert fma is not None, "the native kernel does not reproduce this OpenCV's bytes"

    def run(img, lut, tlo, thi, to_rgb, out=None):
        out = np.empty_like(img) if out is None else out
        planar = np.ascontiguousarray(lut.T)
        fn(img.ctypes.data, img.strides[0], out.ctypes.data, out.strides[0], img.shape[0], img.shape[1],
           planar.ctypes.data, tlo, thi, int(to_rgb), fma)
        return out
    run.fn, run.fma = fn, fma
    return run, vector


@pytest.fixture(scope="module")
def all_colours():
    c = np.arange(1 << 24, dtype=np.uint32)
    return np.stack([(c >> 16) & 255, (c >> 8) & 255, c & 255], -1).astype(np.uint8)


def test_opencv_vector_block_is_measured():
    """The CI machine's OpenCV has a vector HSV2BGR; the block must be read off it (64 with AVX-512)."""
    assert hsv.vector_block() in (64, 32, 16, 8, 4)
    lo, hi = hsv.vector_columns(200, False)
    assert (lo, hi) == (0, 200 // hsv.vector_block() * hsv.vector_block())
    assert hsv.vector_columns(200, True) == (200 - hi, 200)


def test_every_colour_vector_code(kernel, all_colours):
    """All 2^24 colours in rows OpenCV converts entirely in its vector code (4096 wide: a multiple of any block)."""
    run, _ = kernel
    img = all_colours.reshape(4096, 4096, 3)
    for k, lut in enumerate(_luts()):
        got, ref = run(img, lut, 0, 4096, k % 2 == 0), _three_passes(img, lut, k % 2 == 0)
        bad = int((got != ref).any(-1).sum())
        assert bad == 0, f"table {k}: {bad} colours differ from OpenCV's vector code"


def test_every_colour_vector_code_per_pixel(kernel, all_colours):
    """The per-pixel C code that reproduces OpenCV's vector arithmetic (used where a row's vector part starts or
    ends inside a 64-pixel block, and on CPUs without AVX-512): rows of 63, all of them in the vector range."""
    run, _ = kernel
    lut = _luts()[1]
    ref = _three_passes(all_colours.reshape(4096, 4096, 3), lut, True).reshape(-1, 3)
    n = (1 << 24) // 63 * 63
    got = run(np.ascontiguousarray(all_colours[:n].reshape(-1, 63, 3)), lut, 0, 63, True).reshape(-1, 3)
    bad = int((got != ref[:n]).any(-1).sum())
    assert bad == 0, f"{bad} colours differ from OpenCV's vector code"


def test_every_colour_hue_tables_past_180(kernel, all_colours):
    """Hue tables with entries of 180 and above (not Ultralytics' own, whose entries are x % 180): OpenCV's vector
    code then reduces the sector modulo 6, a step the blocks skip only when every hue entry is below 180."""
    run, _ = kernel
    img = all_colours.reshape(4096, 4096, 3)
    base = _luts()[1]
    for k, hue in enumerate((np.arange(256) * 255 // 179, (np.arange(256) + 100) % 256)):
        lut = base.copy()
        lut[:, 0] = hue
        assert lut[:, 0].max() >= 180
        got, ref = run(img, lut, 0, 4096, k == 0), _three_passes(img, lut, k == 0)
        bad = int((got != ref).any(-1).sum())
        assert bad == 0, f"hue table {k}: {bad} colours differ from OpenCV's vector code"


def test_every_colour_scalar_tail(kernel, all_colours):
    """All 2^24 colours in rows shorter than a block (OpenCV's scalar tail only: rounding, fmod sectors)."""
    run, _ = kernel
    w = max(1, (hsv.vector_block() or 2) // 2)
    img = all_colours.reshape(-1, w, 3)
    for k, lut in enumerate(_luts()[:3]):
        got, ref = run(img, lut, 0, 0, k % 2 == 1), _three_passes(img, lut, k % 2 == 1)
        bad = int((got != ref).any(-1).sum())
        assert bad == 0, f"table {k}: {bad} colours differ from OpenCV's scalar code"


def test_mixed_rows_in_place(kernel):
    """Rows with a vector part and a tail, converted in place (src == dst) and through a strided view."""
    run, _ = kernel
    rng = np.random.default_rng(1)
    for w in (896, 928, 300, 63, 65):
        img = rng.integers(0, 256, (9, w, 3), np.uint8)
        lut = _luts()[1]
        b = hsv.vector_block()
        ref = _three_passes(img, lut, True)
        assert np.array_equal(run(img, lut, 0, w // b * b, True), ref), w
        frame = np.zeros((9, w + 10, 3), np.uint8)
        frame[:, 5:w + 5] = img
        view = frame[:, 5:w + 5]
        run(view, lut, 0, w // b * b, True, out=view)
        assert np.array_equal(view, ref) and not frame[:, :5].any() and not frame[:, w + 5:].any(), w


def test_writes_no_pixel_past_its_columns(kernel):
    """A row of ``cols`` pixels whose frame's vector columns run on past it (a box ending left of the frame's
    vector part): the kernel writes its ``cols`` pixels only, in place or into another buffer. The warp's
    ``finish`` relies on it: the pixels beside the box hold their final colour already, and the source rows
    beside the box are not pixels at all. (It once ran its last whole 64-pixel block on past the row.)"""
    run, _ = kernel
    rng = np.random.default_rng(2)
    lut = _luts()[1]
    b = hsv.vector_block() or 64
    for w in (100, 130, 64, 30):
        wide = rng.integers(0, 256, (4, w + 64, 3), np.uint8)  # Ultralytics' frame: its vector part runs on
        thi = (w + 64) // b * b
        ref = _three_passes(wide, lut, True)[:, :w]
        frame = np.full((4, w + 80, 3), 7, np.uint8)
        frame[:, :w] = wide[:, :w]
        view = frame[:, :w]
        run(view, lut, 0, thi, True, out=view)
        assert np.array_equal(view, ref) and (frame[:, w:] == 7).all(), w
        dst = np.full((4, w + 80, 3), 9, np.uint8)
        run(wide[:, :w], lut, 0, thi, True, out=dst[:, :w])
        assert np.array_equal(dst[:, :w], ref) and (dst[:, w:] == 9).all(), w


def _ultralytics_frame(frame_bgr, r, flip_lr):
    """Ultralytics' RandomHSV on the whole frame with gains giving ``r``, then its RandomFlip and Format's RGB."""
    from ultralytics.data.augment import RandomFlip, RandomHSV

    np.random.seed(0)
    draw = np.random.uniform(-1, 1, 3)
    np.random.seed(0)
    t = RandomHSV(*(np.asarray(r) / draw).tolist())
    labels = {"img": frame_bgr.copy()}
    t.apply_image(labels)
    img = labels["img"]
    if flip_lr:
        f = RandomFlip(p=1.0, direction="horizontal")
        h, w = img.shape[:2]
        params = {"flip": True, "h": h, "w": w, "direction": "horizontal", "flip_idx": None}
        img = f.apply_image({"img": img}, params)["img"]
    return np.ascontiguousarray(img[..., ::-1])


@pytest.mark.parametrize("route", ["native", "opencv"])
def test_box_equals_ultralytics_full_frame(route, kernel, monkeypatch):
    if route == "opencv":  # the route a CPU without AVX-512 VBMI (or without the built kernel) takes
        monkeypatch.setattr(hsv._setup, "value", dict(hsv._setup(), fn=None, why="test"))
    elif hsv.kernel() != "native":  # a CPU without AVX-512 VBMI: the C code's per-pixel path, exact as well
        monkeypatch.setattr(hsv._setup, "value", dict(hsv._setup(), fn=kernel[0].fn, fma=kernel[0].fma))
    rng = np.random.default_rng(3)
    checked = 0
    for W, box in ((896, (10, 200, 37, 861)), (928, (0, 50, 3, 925)), (200, (5, 60, 0, 137)), (100, (2, 9, 1, 99)),
                   (640, (0, 640, 0, 640)), (896, (3, 70, 37, 896))):  # last: its rows end in < 64 vector pixels
        frame = np.full((max(box[1], 64), W, 3), 114, np.uint8)
        Y0, Y1, X0, X1 = box
        frame[Y0:Y1, X0:X1] = rng.integers(0, 256, (Y1 - Y0, X1 - X0, 3), np.uint8)
        for flip_lr in (False, True):
            r = rng.uniform(-1, 1, 3) * [0.015, 0.7, 0.4]
            ref = _ultralytics_frame(frame, r, flip_lr)
            ours = frame[:, ::-1].copy() if flip_lr else frame.copy()  # our warp flips before the colour step
            fbox = (Y0, Y1, W - X1, W - X0) if flip_lr else box
            hsv.apply_hsv(ours, r, True, box=fbox, flip_lr=flip_lr)
            y0, y1, x0, x1 = fbox
            d = np.abs(ours[y0:y1, x0:x1].astype(int) - ref[y0:y1, x0:x1])
            assert d.max() == 0, (route, W, box, flip_lr, int((d > 0).any(-1).sum()))
            checked += 1
    assert checked == 12


def test_box_alone_through_opencv_is_not_ultralytics():
    """The control: the box converted on its own by OpenCV (the route before) differs on its row tails."""
    rng = np.random.default_rng(4)
    frame = rng.integers(0, 256, (32, 896, 3), np.uint8)
    r = np.array([0.01, 0.5, -0.3])
    ref = _ultralytics_frame(frame, r, False)
    ours = frame.copy()
    hsv.opencv_three_passes(ours[:, 3:850], hsv.hsv_luts_batch(r)[0], True)
    assert (ours[:, 3:850] != ref[:, 3:850]).any()


@pytest.mark.parametrize("env", ["", "opencv"])
def test_route_is_reported(env, kernel):
    """The CPU engine's stats say which route runs; YOLO_LOADER_HSV=opencv chooses OpenCV's, with a warning."""
    assert_vbmi_route("hsv_kernel", "YOLO_LOADER_HSV", env, "three passes", kernel[1])
