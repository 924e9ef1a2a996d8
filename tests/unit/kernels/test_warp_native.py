"""The mosaic warp from the tiles (``loader/kernels/warp.py`` and ``warp.c``) gives ``cv2.warpAffine``'s bytes
of the composed canvas window, the painters' OpenCV route.

* The kernel against OpenCV on the planner's own mosaics (Ultralytics' default augmentation at 896, 640 and
  320 px, a far zoom-out whose chunks leave the 128-byte window, flips) with photo-like tiles: its AVX-512 code
  where the CPU has it (CI's does) and its per-element reference code on any CPU; outputs whose width does not
  fill a vector.
* A numpy model: OpenCV maps the output pixels in double and rounds only the fractional parts to float; the
  reading of OpenCV's newer sources (coordinates in float, with FMA) differs on some pixels.
* The HSV step run inside the kernel on the box's rows (``finish``): the bytes of the warp then ``apply_hsv``.
* ``warp_pastes`` (the painters' call): matrices with rotation or shear and tiles without contiguous rows go to
  the canvas route, counted; the route in the engine's stats and ``YOLO_LOADER_WARP=opencv``.
"""

from __future__ import annotations

import ctypes

import cv2
import numpy as np
import pytest

from loader.dataset import build_index
from loader.kernels import hsv, opencv, warp
from loader.plan import Planner, translate

from engine_route import assert_vbmi_route


@pytest.fixture(scope="module")
def kernel():
    """The built kernel (ctypes), called directly whatever route the painters take on this CPU."""
    return warp.native_kernel()  # built by `pip install -e .` (make venv): missing fails


def _photo(rng, h, w):
    return cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), np.uint8), (0, 0), 2)


def _mosaics(demo_set, imgsz, hyp, n):
    """(tiles, pastes, window hw, forward matrix, composed canvas, the box of output pixels that can see a tile)
    of the planner's first ``n`` simple samples."""
    index = build_index(demo_set, verbose=False)
    planner = Planner(index, imgsz, hyp, batch_size=8, seed=5)
    batch = planner.plan_batch(0, np.arange(n) % len(index), np.random.default_rng(0).permutation(len(index)))
    geo = opencv.BatchGeometry(batch)
    rng = np.random.default_rng(imgsz)
    tiles = {}
    for j in range(len(batch)):
        if not (geo.simple[j] and geo.visible[j]):
            continue
        images = []
        for i in geo.tiles[j]:
            if i not in tiles:
                tiles[i] = _photo(rng, *planner.load_hw(i))
            images.append(tiles[i])
        cx0, cy0, cx1, cy1 = geo.window[j]
        canvas = np.full((cy1 - cy0, cx1 - cx0, 3), 114, np.uint8)
        for k, sy, sx, h, w, dy, dx in geo.pastes[j]:
            canvas[dy:dy + h, dx:dx + w] = images[k][sy:sy + h, sx:sx + w]
        yield images, geo.pastes[j], canvas.shape[:2], geo.M[j] @ translate(cx0, cy0), canvas, tuple(geo.box[j])


@pytest.mark.parametrize("imgsz,hyp", [(896, {}), (640, {}), (320, {"flipud": 0.5}),
                                       (320, {"scale": 0.9, "translate": 0.45})])  # last: chunks beyond 128 bytes
def test_kernel_equals_opencv_on_planned_mosaics(demo_set, kernel, imgsz, hyp):
    fn, vector = kernel
    fma = warp._setup()["fma"]
    bad, n = [], 0
    for k, (images, pastes, whw, M, canvas, _) in enumerate(_mosaics(demo_set, imgsz, hyp, 12)):
        assert warp.separable(M)  # the default augmentation: no rotation, no shear
        ref = warp.reference(canvas, M, (imgsz, imgsz))
        for vec in ((True, False) if vector else (False,)):
            if not vec and imgsz == 896 and k % 3:  # the slow reference code on a third of the large ones
                continue
            out = np.zeros_like(ref)
            warp.run_native(fn, images, pastes, whw, M, out, vec, fma)
            if not np.array_equal(out, ref):
                bad.append((k, vec, int((out != ref).any(2).sum())))
        n += 1
    assert n >= 6 and not bad, f"{n} mosaics; the kernel differs from cv2.warpAffine on {bad}"


@pytest.mark.parametrize("imgsz,hyp", [(640, {}), (320, {"scale": 0.9, "translate": 0.45})])
def test_kernel_writes_outer_above_and_below_the_box(demo_set, kernel, imgsz, hyp):
    """With the painters' box (the output pixels that can see a tile): OpenCV's warp is 114 everywhere outside it;
    the kernel writes ``outer`` in the rows above and below it without computing them, 114 beside it, and OpenCV's
    bytes inside. An empty box: every row is ``outer``."""
    fn, vector = kernel
    fma = warp._setup()["fma"]
    n = trimmed = 0
    for images, pastes, whw, M, canvas, box in _mosaics(demo_set, imgsz, hyp, 12):
        ref = warp.reference(canvas, M, (imgsz, imgsz))
        Y0, Y1, X0, X1 = box
        inside = np.zeros(ref.shape[:2], bool)
        inside[Y0:Y1, X0:X1] = True
        assert (ref[~inside] == 114).all(), box  # what lets the kernel skip them
        want = ref.copy()
        want[:Y0], want[Y1:] = 7, 7
        for vec in ((True, False) if vector else (False,)):
            out = np.zeros_like(ref)
            warp.run_native(fn, images, pastes, whw, M, out, vec, fma, box, 7)
            assert np.array_equal(out, want), (box, vec)
        n += 1
        trimmed += Y0 > 0 or Y1 < imgsz
    assert n >= 6 and trimmed >= 2, (n, trimmed)
    images, pastes, whw, M, canvas, _ = next(_mosaics(demo_set, imgsz, hyp, 12))
    out = np.zeros((imgsz, imgsz, 3), np.uint8)
    warp.run_native(fn, images, pastes, whw, M, out, vector, fma, (0, 0, 0, 0), 7)
    assert (out == 7).all()


@pytest.mark.parametrize("imgsz,hyp", [(896, {}), (320, {"scale": 0.9, "translate": 0.45})])
def test_finish_colours_the_box_as_apply_hsv_does(demo_set, kernel, imgsz, hyp, monkeypatch):
    """``finish`` (the HSV kernel on the box's rows, 16 at a time, as the warp makes them): the bytes of the warp
    followed by ``apply_hsv`` on the box, and the colour 114 takes after HSV everywhere else (``outer``), in both
    channel orders, flipped frames or not, boxes whose height is no multiple of 16."""
    fn, vector = kernel
    fma = warp._setup()["fma"]
    if hsv.kernel() != "native":  # a CPU without AVX-512 VBMI: the kernel's per-pixel code, exact too
        hfn = hsv.native_kernel()[0]
        monkeypatch.setattr(hsv._setup, "value", dict(hsv._setup(), fn=hfn, fma=hsv._self_check(hfn, 0),
                                                      address=ctypes.cast(hfn, ctypes.c_void_p).value))
    rng = np.random.default_rng(imgsz)
    n, flipped, partial = 0, 0, 0
    for images, pastes, whw, M, canvas, box in _mosaics(demo_set, imgsz, hyp, 12):
        r = rng.uniform(-1, 1, 3) * [0.5, 0.9, 0.9]
        to_rgb, flip_lr = bool(n % 2), bool(M[0, 0] < 0)
        planar = hsv.planar_luts(hsv.hsv_luts_batch(r))[0]
        grey = np.full((1, 1, 3), 114, np.uint8)
        hsv.apply_hsv(grey, r, to_rgb)
        want = warp.reference(canvas, M, (imgsz, imgsz))
        hsv.apply_hsv(want, r, to_rgb, box=box, flip_lr=flip_lr)
        Y0, Y1, X0, X1 = box
        inside = np.zeros(want.shape[:2], bool)
        inside[Y0:Y1, X0:X1] = True
        want[~inside] = grey[0, 0]
        for vec in ((True, False) if vector else (False,)):
            if not vec and imgsz == 896 and n % 3:  # the slow reference code on a third of the large ones
                continue
            out = np.zeros_like(want)
            finish = hsv.row_finisher(planar, to_rgb, imgsz, flip_lr)
            warp.run_native(fn, images, pastes, whw, M, out, vec, fma, box, int(grey[0, 0, 0]), finish)
            assert np.array_equal(out, want), (box, vec, to_rgb, flip_lr, int((out != want).any(2).sum()))
        n += 1
        flipped += flip_lr
        partial += (Y1 - Y0) % 16 != 0 and X1 - X0 < imgsz
    assert n >= 6 and flipped >= 1 and partial >= 2, (n, flipped, partial)


def test_kernel_on_odd_output_widths(kernel):
    """Widths that leave outputs after the last 16-output chunk, and the self-check's own mosaics."""
    fn, vector = kernel
    for tiles, pastes, whw, M, canvas, hw in warp._cases():
        for vec in ((True, False) if vector else (False,)):
            out = np.zeros((*hw, 3), np.uint8)
            warp.run_native(fn, tiles, pastes, whw, M, out, vec, warp._setup()["fma"])
            assert np.array_equal(out, warp.reference(canvas, M, hw)), (hw, M.tolist(), vec)


def _interp(canvas, sx, sy):
    f32 = np.float32
    ix, iy = np.floor(sx), np.floor(sy)
    al, be = (sx - ix).astype(f32)[..., None], (sy - iy).astype(f32)[..., None]
    ix, iy = ix.astype(int), iy.astype(int)
    h, w = canvas.shape[:2]

    def tap(r, c):
        ok = (r >= 0) & (r < h) & (c >= 0) & (c < w)
        v = np.full(r.shape + (3,), 114, np.uint8)
        v[ok] = canvas[r[ok], c[ok]]
        return v.astype(f32)

    def fma(a, b, c):  # exact: the float32 products fit a double
        return (a.astype(np.float64) * b + c).astype(f32)

    p00, p01, p10, p11 = tap(iy, ix), tap(iy, ix + 1), tap(iy + 1, ix), tap(iy + 1, ix + 1)
    top, bottom = fma(al, p01 - p00, p00), fma(al, p11 - p10, p10)
    return np.clip(np.rint(fma(be, bottom - top, top)), 0, 255).astype(np.uint8)


def test_model_of_opencv_arithmetic():
    """OpenCV maps output pixels through the inverted matrix in double (what the kernel does); mapping them in
    float with FMA (what OpenCV's newer sources read as) moves some pixels by one level."""
    canvas = np.random.default_rng(1).integers(0, 256, (300, 400, 3), np.uint8)  # sharp: many near-ties
    M = np.array([[1.3712345, 0, -20.3371], [0, 1.3712345, -15.77]])
    ref = warp.reference(canvas, M, (256, 256))
    A = cv2.invertAffineTransform(M)
    y, x = np.mgrid[0:256, 0:256].astype(np.float64)
    assert np.array_equal(_interp(canvas, A[0, 0] * x + A[0, 2], A[1, 1] * y + A[1, 2]), ref)
    f = [np.float32(v) for v in A.ravel()]
    sx = (np.float64(f[0]) * x + f[2]).astype(np.float32)
    sy = (np.float64(f[4]) * y + f[5]).astype(np.float32)
    assert (_interp(canvas, sx, sy) != ref).any(2).sum() > 0


def test_warp_pastes_takes_the_canvas_route_where_it_must(kernel):
    """Rotation or shear, tiles without contiguous rows, more tiles than the kernel takes: False (the painter
    composes and calls OpenCV), counted as "canvas"; the kernel refuses such a matrix or window itself too."""
    tiles, pastes, whw, M, canvas, hw = next(warp._cases())
    out = np.zeros((*hw, 3), np.uint8)
    before = warp.routes()
    rot = np.vstack([cv2.getRotationMatrix2D((40.0, 40.0), 10, 1.1), [0, 0, 1]])
    assert not warp.warp_pastes(tiles, pastes, whw, rot, out)
    views = [t[:, ::-1] for t in tiles]  # negative column step: not contiguous rows
    assert not warp.warp_pastes(views, pastes, whw, M, out)
    many = [(0, 0, 0, 2, 2, 2 * i, 0) for i in range(warp.MAX_PASTES + 1)]  # more tiles than the kernel takes
    assert not warp.warp_pastes(tiles, many, whw, M, out)
    after = warp.routes()
    assert after["canvas"] - before["canvas"] == 3
    with pytest.raises(ValueError, match="rotation or shear"):
        warp.run_native(kernel[0], tiles, pastes, whw, rot, out, False, False)
    with pytest.raises(ValueError, match="more than it takes"):
        warp.run_native(kernel[0], tiles, many, whw, M, out, False, False)
    with pytest.raises(ValueError, match="contiguous rows"):
        warp.run_native(kernel[0], views, pastes, whw, M, out, False, False)
    if warp.kernel() == "native":
        assert warp.warp_pastes(tiles, pastes, whw, M, out)
        assert np.array_equal(out, warp.reference(canvas, M, hw))
        assert warp.routes()["native"] == after["native"] + 1


@pytest.mark.parametrize("env", ["", "opencv"])
def test_route_is_reported(env, kernel):
    """The CPU engine's stats say which route runs; YOLO_LOADER_WARP=opencv chooses OpenCV's, with a warning."""
    assert_vbmi_route("warp_kernel", "YOLO_LOADER_WARP", env, "cv2.warpAffine", kernel[1])
