"""The JPEG decoder (``loader/kernels/jpeg.py`` and ``jpeg.c``) gives ``cv2.imdecode``'s bytes, or hands the file to it.

* The kernel against ``cv2.imdecode`` on JPEGs from two encoders (OpenCV's libjpeg-turbo and Pillow's): every chroma
  subsampling (4:1:1 included), grey, RGB-coded, progressive, optimised Huffman tables, restart markers, sizes from 1x1 up, at every DCT scale
  (1, 1/2, 1/4, 1/8), each decoded by the kernel itself (no image handed to OpenCV).
* The files it must not decode as it would (the demo set's bad inputs): EXIF-rotated (3 and 6, and a big-endian 6),
  unreadable EXIF, CMYK, a truncated stream, garbage, a wrong expected size. Each is declined, counted by reason,
  and what comes back is exactly OpenCV's result; an EXIF orientation of 1 is no reason to decline.
* ``decode_resized`` over the demo set (bad inputs included) equals Ultralytics' load step (imread + resize).
* The route in the engine's stats, and ``YOLO_LOADER_JPEG=opencv``.
"""

from __future__ import annotations

import io
import re

import cv2
import numpy as np
import pytest
from PIL import Image

from loader.kernels import jpeg

from engine_route import engine_route

SCALES = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
          8: cv2.IMREAD_REDUCED_COLOR_8}


@pytest.fixture(scope="module")
def kernel():
    fn, _ = jpeg.native_kernel()  # built by `pip install -e .` (make venv): missing fails
    return fn


def _picture(h: int, w: int, seed: int) -> np.ndarray:
    """Smooth gradients, hard coloured edges and noise: what the IDCT, the chroma upsampler and the colour
    conversion all see in photographs."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    im = np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x * 3 + y * 5) % 256], -1).astype(np.float64)
    im += rng.normal(0, 25, im.shape)
    for _ in range(4):
        y0, x0 = rng.integers(0, h), rng.integers(0, w)
        im[y0:y0 + max(h // 5, 1), x0:x0 + max(w // 6, 1)] = rng.integers(0, 256, 3)
    return np.clip(im, 0, 255).astype(np.uint8)


def _pil(im: np.ndarray, **kw) -> np.ndarray:
    b = io.BytesIO()
    Image.fromarray(im[..., ::-1] if im.ndim == 3 else im).save(b, "JPEG", **kw)
    return np.frombuffer(b.getvalue(), np.uint8)


def _corpus() -> list[tuple[str, np.ndarray]]:
    out = []
    for i, (h, w) in enumerate(((1, 1), (9, 7), (31, 257), (480, 640), (1080, 1920 // 2 + 3), (203, 97))):
        im = _picture(h, w, i)
        for sub in (0, 1, 2):  # Pillow: 4:4:4, 4:2:2, 4:2:0
            out.append((f"pil {w}x{h} sub{sub}", _pil(im, quality=85, subsampling=sub)))
        out.append((f"pil {w}x{h} progressive optimised", _pil(im, quality=70, progressive=True, optimize=True)))
        out.append((f"pil {w}x{h} q100 4:4:4", _pil(im, quality=100, subsampling=0)))
        out.append((f"pil {w}x{h} grey", _pil(cv2.cvtColor(im, cv2.COLOR_BGR2GRAY), quality=90)))
        out.append((f"pil {w}x{h} 4:1:1", _pil(im, quality=90, subsampling="4:1:1")))
        out.append((f"pil {w}x{h} RGB-coded (Adobe transform 0)", _pil(im, quality=90, keep_rgb=True)))
        for name, p in (("4:2:0 q95", [cv2.IMWRITE_JPEG_QUALITY, 95]),
                        ("4:2:2", [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422]),
                        ("4:4:4 q40", [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444,
                                       cv2.IMWRITE_JPEG_QUALITY, 40]),
                        ("progressive", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
                        ("restarts", [cv2.IMWRITE_JPEG_RST_INTERVAL, 1])):
            out.append((f"cv2 {w}x{h} {name}", cv2.imencode(".jpg", im, p)[1]))
    return out


def _opencv(data: np.ndarray, scale: int) -> np.ndarray:
    ref = cv2.imdecode(data, SCALES[scale])
    return cv2.cvtColor(ref, cv2.COLOR_GRAY2BGR) if ref.ndim == 2 else ref


def test_self_check_passes(kernel):
    """The check ``jpeg.py`` runs before using the kernel passes with this OpenCV (else CI's route is OpenCV's)."""
    assert jpeg._self_check(kernel)
    assert jpeg.kernel() == "native"
    assert re.fullmatch(r"\d+\.\d+\.\d+", jpeg.library()), jpeg.library()  # the report names the libjpeg-turbo


@pytest.mark.parametrize("scale", [1, 2, 4, 8])
def test_kernel_is_opencv_bitwise(kernel, scale):
    """Every file of two encoders, decoded by the kernel itself (rc 0), equals cv2.imdecode at the same DCT scale."""
    bad = []
    for name, data in _corpus():
        ref = _opencv(data, scale)
        got, rc = jpeg.run_native(kernel, data, scale, ref.shape[:2])
        if rc or not np.array_equal(got, ref):
            bad.append((name, rc, None if got is None else int((got != ref).sum())))
    assert not bad, bad


def _with_exif(data: np.ndarray, payload: bytes) -> np.ndarray:
    """``data`` with an APP1 segment holding ``payload`` right after SOI."""
    seg = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    b = data.tobytes()
    return np.frombuffer(b[:2] + seg + b[2:], np.uint8)


def _tiff(orientation: int, big_endian: bool) -> bytes:
    o = "big" if big_endian else "little"
    head = (b"MM" if big_endian else b"II") + (42).to_bytes(2, o) + (8).to_bytes(4, o)
    entry = (0x0112).to_bytes(2, o) + (3).to_bytes(2, o) + (1).to_bytes(4, o) + orientation.to_bytes(2, o) + b"\0\0"
    return b"Exif\0\0" + head + (1).to_bytes(2, o) + entry + (0).to_bytes(4, o)


def _declines(fn) -> dict[str, int]:
    before = jpeg.declined()
    fn()
    after = jpeg.declined()
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


def test_frames_are_off_32_byte_alignment(kernel):
    """Decoded frames start 8 bytes past a 32-byte boundary (libjpeg-turbo writes aligned rows with non-temporal
    stores, which would send the frame to memory just before the resize reads it), and decode there bitwise."""
    for h, w in ((1080, 1920), (67, 93), (1, 1)):
        f = jpeg.frame(h, w)
        assert f.shape == (h, w, 3) and f.dtype == np.uint8 and f.flags.c_contiguous and f.ctypes.data % 32 == 8
    data = dict(jpeg._samples())["321x240 4:2:0"]
    ref = cv2.imdecode(data, cv2.IMREAD_COLOR)
    got, rc = jpeg.run_native(kernel, data, 1, ref.shape[:2])
    assert rc == 0 and got.ctypes.data % 32 == 8 and np.array_equal(got, ref)


@pytest.mark.parametrize("orientation,big_endian", [(1, False), (1, True), (3, False), (6, False), (6, True),
                                                    (8, True)])
def test_exif_orientation(orientation, big_endian):
    """OpenCV rotates by EXIF: the kernel declines any orientation but 1 (in either byte order) and the result is
    OpenCV's rotated image; orientation 1 decodes in the kernel."""
    im = _picture(120, 200, 5)
    data = _with_exif(cv2.imencode(".jpg", im)[1], _tiff(orientation, big_endian))
    ref = cv2.imdecode(data, cv2.IMREAD_COLOR)
    assert (ref.shape[:2] == (200, 120)) == (orientation in (6, 8))  # OpenCV did rotate
    out = {}
    got = _declines(lambda: out.setdefault("im", jpeg.decode_jpeg(data, 1, ref.shape[:2])))
    assert np.array_equal(out["im"], ref)
    assert got == ({} if orientation == 1 else {jpeg.REASONS[2]: 1}), got


def test_unreadable_exif_is_declined():
    """An Exif block the kernel cannot read (its IFD points past the end) is OpenCV's to interpret."""
    im = _picture(64, 80, 6)
    data = _with_exif(cv2.imencode(".jpg", im)[1], b"Exif\0\0II*\0" + (9999).to_bytes(4, "little"))
    ref = cv2.imdecode(data, cv2.IMREAD_COLOR)
    out = {}
    assert _declines(lambda: out.setdefault("im", jpeg.decode_jpeg(data, 1, ref.shape[:2]))) == {jpeg.REASONS[2]: 1}
    assert np.array_equal(out["im"], ref)


def test_demo_bad_inputs_are_opencvs(nasty_set, kernel):
    """The demo set's bad JPEGs: each declined for its reason, and decode_jpeg returns what cv2.imdecode does
    (rotated for EXIF, converted for CMYK, None for the truncated file and for garbage)."""
    imd = nasty_set.parent / "images" / "train"
    expect = {"nasty_exif6.jpg": 2, "nasty_exif3.jpg": 2, "nasty_cmyk.jpg": 1, "nasty_truncated.jpg": 3,
              "nasty_garbage.jpg": 4, "nasty_gif.jpg": 4}
    for name, code in expect.items():
        data = np.fromfile(imd / name, np.uint8)
        ref = cv2.imdecode(data, cv2.IMREAD_COLOR)  # None for the truncated file too: OpenCV 5 fails on the warning
        hw = ref.shape[:2] if ref is not None else (1080, 1920)  # the demo's stored size
        out = {}
        got = _declines(lambda: out.setdefault("im", jpeg.decode_jpeg(data, 1, hw)))
        assert got == {jpeg.REASONS[code]: 1}, (name, got)
        assert (out["im"] is None and ref is None) or np.array_equal(out["im"], ref), name
    for name in ("nasty_gray.jpg", "nasty_tiny.jpg", "nasty_overshoot.jpg"):  # these the kernel decodes itself
        data = np.fromfile(imd / name, np.uint8)
        ref = _opencv(data, 1)
        got, rc = jpeg.run_native(kernel, data, 1, ref.shape[:2])
        assert rc == 0 and np.array_equal(got, ref), name


def test_wrong_size_is_declined_and_decode_resized_says_so(kernel, tmp_path):
    """An expected size other than the file's (the file changed since indexing): declined, and decode_resized
    raises its DecodeError as before."""
    from loader.images.decode import DecodeError, decode_resized

    data = cv2.imencode(".jpg", _picture(100, 150, 7))[1]
    assert jpeg.run_native(kernel, data, 1, (100, 151)) == (None, 5)
    with pytest.raises(DecodeError, match="differs from the indexed size"):
        decode_resized(data, (300, 150), (300, 150), jpeg=True)


def test_decode_resized_is_ultralytics_load_step(nasty_set):
    """Every image of the demo set (bad ones included) through the loader's decode + resize equals Ultralytics'
    cv2.imread + INTER_LINEAR resize, at 896 and at 320 (a DCT-reduced 1/2 decode where that is exact)."""
    from loader.dataset import build_index
    from loader.images.decode import decode_resized, load_size

    ix = build_index(nasty_set, verbose=False)
    assert len(ix) >= 12
    for i, f in enumerate(ix.im_files):
        hw0 = tuple(int(v) for v in ix.shapes[i])
        stock = cv2.imread(f)
        for imgsz in (896, 320):
            hw = load_size(*hw0, imgsz)
            ours = decode_resized(np.fromfile(f, np.uint8), hw0, hw, jpeg=bool(ix.formats[i] == 1), reduce=False)
            ref = cv2.resize(stock, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR) if stock.shape[:2] != hw else stock
            assert np.array_equal(ours, ref), (f, imgsz)


@pytest.mark.parametrize("env", ["", "opencv"])
def test_route_is_reported(env, kernel):
    """The CPU engine's stats say which route runs; YOLO_LOADER_JPEG=opencv chooses OpenCV's, with a warning."""
    route, err = engine_route("jpeg_decoder", YOLO_LOADER_JPEG=env)
    if env:
        assert route == "opencv: YOLO_LOADER_JPEG=opencv" and "decode through cv2.imdecode" in err, (route, err)
    else:
        assert route == "native" and "decode through cv2.imdecode" not in err, (route, err)
