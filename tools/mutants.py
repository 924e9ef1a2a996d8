"""Planted bugs as a tool: apply each one-line bug to a scratch copy of the repository, run the suite, report
caught or survived. A test suite that lets one of these through has a hole; each entry names the tests
expected to catch it (run first, so a caught bug costs seconds), and a bug they miss is tried against the
whole suite (without the scale tier) before it is called survived.

    .venv/bin/python tools/mutants.py                 # every mutant
    .venv/bin/python tools/mutants.py flip-lr hsv     # some, by name
    .venv/bin/python tools/mutants.py --list

Exit status 1 when any mutant survives. The scratch copy is the working tree's tracked files (uncommitted
edits included) and the built kernels under a temporary folder (a mutated .c file is rebuilt there); the venv
is this repository's (``python -m pytest`` run in the copy imports the copy's ``loader`` and ``integration``,
which come first on ``sys.path``).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# name: (file, exact text, replacement, tests expected to catch it)
MUTANTS = {
    # the four of the test audit (shared/reviews/test_audit.md)
    "flip-lr-never": ("loader/plan/planner.py", "u[:, _FLIPLR] < hyp.fliplr", "u[:, _FLIPLR] < 0",
                      "tests/parity/test_draws.py"),
    "hsv-halved": ("loader/plan/planner.py", "hsv = (-1 + 2 * u[:, _HSV]) * [",
                   "hsv = 0.5 * (-1 + 2 * u[:, _HSV]) * [", "tests/parity/test_draws.py"),
    "buffer-without-8xbatch": ("loader/plan/planner.py", "min(n, batch_size * 8, 1000)", "min(n, 1000)",
                               "tests/parity/test_draws.py tests/unit/plan/test_planner.py"),
    "trainer-val-pad-0": ("integration/ultralytics/trainer.py", "stride=gs, pad=0.5,", "stride=gs, pad=0.0,",
                          "tests/parity/test_validator_exact.py"),
    # the planner's draws
    "mixup-beta-8": ("loader/plan/planner.py", "rng.beta(32.0, 32.0, CHUNK)", "rng.beta(8.0, 8.0, CHUNK)",
                     "tests/parity/test_draws.py"),
    "degrees-one-sided": ("loader/plan/planner.py", "deg = -hyp.degrees + 2 * hyp.degrees * a[:, 2]",
                          "deg = hyp.degrees * a[:, 2]", "tests/parity/test_draws.py"),
    "translate-one-sided": ("loader/plan/planner.py", "tr = (0.5 - hyp.translate) + 2 * hyp.translate * a[:, 6:8]",
                            "tr = 0.5 + hyp.translate * a[:, 6:8]", "tests/parity/test_draws.py"),
    "mosaic-centre-narrow": ("loader/plan/planner.py", "yc = (border + (2 * s - 2 * border) * u[:, 0])",
                             "yc = (border + (2 * s - 3 * border) * u[:, 0])", "tests/parity/test_draws.py"),
    "mosaic-rate-low": ("loader/plan/planner.py", "(hyp.mosaic > 0) & (u[:, _MOSAIC] <= hyp.mosaic)",
                        "(hyp.mosaic > 0) & (u[:, _MOSAIC] <= 0.9 * hyp.mosaic)", "tests/parity/test_draws.py"),
    # same distribution, wrong matrix: only the equal-uniforms comparison sees a swapped shear
    "shear-axes-swapped": ("loader/plan/planner.py", "S[:, 0, 1], S[:, 1, 0] = np.tan(shear[:, 0]",
                           "S[:, 1, 0], S[:, 0, 1] = np.tan(shear[:, 0]", "tests/parity/test_draws.py"),
    # geometry and boxes
    "area-thr-0.2": ("loader/plan/geometry.py", "area_thr: float = 0.1,", "area_thr: float = 0.2,",
                     "tests/unit/plan/test_geometry.py tests/parity/test_parity_ultralytics.py"),
    "boxes-unclipped": ("loader/plan/planner.py", "new = np.clip(new, 0, s)", "new = new",
                        "tests/parity/test_parity_ultralytics.py tests/parity/test_consistency.py"),
    # kernels
    "hue-mod-179": ("loader/kernels/hsv.py", "lut_hue = ((x + r[:, :1] * 180) % 180)",
                    "lut_hue = ((x + r[:, :1] * 180) % 179)", "tests/parity/test_parity_ultralytics.py"),
    # the HSV step's columns: which of them Ultralytics' full-frame OpenCV call converted in its vector code
    "hsv-flip-not-mirrored": ("loader/kernels/hsv.py", "return (frame_w - v, frame_w) if flip_lr else (0, v)",
                              "return (0, v)", "tests/unit/kernels/test_hsv_native.py"),
    "allocator-mmap-threshold-kept": ("loader/allocator.py", "((_M_MMAP_THRESHOLD, MMAP_THRESHOLD),\n",
                                      "((_M_MMAP_THRESHOLD, 128 << 10),\n", "tests/engine/test_allocator.py"),
    "allocator-no-top-pad": ("loader/allocator.py", "(_M_TRIM_THRESHOLD, TRIM_THRESHOLD), (_M_TOP_PAD, TOP_PAD))",
                             "(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))", "tests/engine/test_allocator.py"),
    "resize-ignores-row-step": ("loader/kernels/resize.py", "fn(im.ctypes.data, im.strides[0], im.shape[0]",
                                "fn(im.ctypes.data, im.shape[1] * cn, im.shape[0]",
                                "tests/unit/kernels/test_resize_native.py"),
    "hsv-opencv-box-not-widened": ("loader/kernels/hsv.py", "e = lo + -(-(e - lo) // b) * b", "e = e",
                                   "tests/unit/kernels/test_hsv_native.py"),
    # the JPEG decoder (a mutant of a .c file is rebuilt in the scratch copy before its tests run)
    "jpeg-ignores-orientation": ("loader/kernels/jpeg.c", "exif_orientation(m->data, m->data_length) != 1",
                                 "exif_orientation(m->data, m->data_length) == 0",
                                 "tests/unit/kernels/test_jpeg_native.py"),
    "jpeg-exif-little-endian-only": ("loader/kernels/jpeg.c", "int le = d[0] == 'I' && d[1] == 'I';", "int le = 1;",
                                     "tests/unit/kernels/test_jpeg_native.py"),
    "jpeg-keeps-warned-decodes": ("loader/kernels/jpeg.c", "status = err.pub.num_warnings ? DECLINED_WARNING : OK;",
                                  "status = OK;", "tests/unit/kernels/test_jpeg_native.py"),
    "jpeg-scale-ignored": ("loader/kernels/jpeg.py", "buf.size, int(scale), out.ctypes.data",
                           "buf.size, 1, out.ctypes.data", "tests/unit/kernels/test_jpeg_native.py"),
    # the mosaic warp from the tiles (C: rebuilt in the scratch copy)
    "hsv-sector-never-reduced": ("loader/kernels/hsv.c", "__m512i hm = hue180 ? H2 :", "__m512i hm = 1 ? H2 :",
                                 "tests/unit/kernels/test_hsv_native.py"),
    "hsv-sector-off-by-one": ("loader/kernels/hsv.c", "l2 = _mm512_cmplt_epu8_mask(hm, _mm512_set1_epi8(60));",
                              "l2 = _mm512_cmplt_epu8_mask(hm, _mm512_set1_epi8(61));",
                              "tests/unit/kernels/test_hsv_native.py"),
    "warp-float-coordinates": ("loader/kernels/warp.c", "double sx = fma_y ? fma(A[0], (double)x, A[2]) : A[0] * x + A[2];",
                               "double sx = (float)((float)A[0] * (float)x + (float)A[2]);",
                               "tests/unit/kernels/test_warp_native.py"),
    "warp-seam-window-not-grey": ("loader/kernels/warp.c", "memset(tmp, FILL, sizeof(tmp));", "memset(tmp, 0, sizeof(tmp));",
                                  "tests/unit/kernels/test_warp_native.py"),
    "warp-row-cache-overwrites": ("loader/kernels/warp.c", "hit = t == 1 ? 1 - slot[0] : have[0] == r + 1 ? 1 : 0;",
                                  "hit = t == 1 ? slot[0] : have[0] == r + 1 ? 1 : 0;",
                                  "tests/unit/kernels/test_warp_native.py"),
    "warp-box-last-row-skipped": ("loader/kernels/warp.c", "if (y < Y0 || y >= Y1) {", "if (y < Y0 || y >= Y1 - 1) {",
                                  "tests/unit/kernels/test_warp_native.py"),
    "warp-beside-box-outer": ("loader/kernels/warp.c", "int side = finish ? outer : FILL,", "int side = outer,",
                              "tests/unit/kernels/test_warp_native.py"),
    "warp-finish-last-band-dropped": ("loader/kernels/warp.c", "if (finish && (y + 1 - b0 == BAND || y + 1 == Y1)) {",
                                      "if (finish && y + 1 - b0 == BAND) {",
                                      "tests/unit/kernels/test_warp_native.py tests/unit/kernels/test_batch_geometry.py"),
    "warp-finish-beside-box-grey": ("loader/kernels/warp.c", "int side = finish ? outer : FILL,", "int side = FILL,",
                                    "tests/unit/kernels/test_warp_native.py tests/unit/kernels/test_batch_geometry.py"),
    "warp-stream-fill-short-tail": ("loader/kernels/warp.c", "memset(d + i, v, n - i);", "memset(d + i, v, n - i - 1);",
                                    "tests/unit/kernels/test_warp_native.py"),
    "hsv-block-past-row": ("loader/kernels/hsv.c", "if (x >= tlo && x + 64 <= thi && x + 64 <= n) {",
                           "if (x >= tlo && x + 64 <= thi) {", "tests/unit/kernels/test_hsv_native.py"),
    "painter-beside-box-left-grey": ("loader/kernels/opencv.py",
                                     "_fill_uncovered(out[Y0:Y1], [(0, Y1 - Y0, X0, X1)], fill)", "pass",
                                     "tests/unit/kernels/test_batch_geometry.py"),
    "resize-vrow-packs-unordered": ("loader/kernels/resize.c",
                                    "_mm512_permutexvar_epi32(order, _mm512_packus_epi16(m[0], m[1]))",
                                    "_mm512_packus_epi16(m[0], m[1])", "tests/unit/kernels/test_resize_native.py"),
    "warp-vrow-packs-unordered": ("loader/kernels/warp.c",
                                  "_mm512_storeu_si512(D + e, _mm512_permutexvar_epi32(order, out));",
                                  "_mm512_storeu_si512(D + e, out);", "tests/unit/kernels/test_warp_native.py"),
    "hsv-tail-block-short-copy": ("loader/kernels/hsv.c", "memcpy(dst + 3 * x, tmp, 3 * (size_t)(n - x));",
                                  "memcpy(dst + 3 * x, tmp, 3 * (size_t)(n - x - 1));",
                                  "tests/unit/kernels/test_hsv_native.py"),
    "jpeg-frames-aligned": ("loader/kernels/jpeg.py", "off = (8 - raw.ctypes.data) % 32",
                            "off = (0 - raw.ctypes.data) % 32", "tests/unit/kernels/test_jpeg_native.py"),
    # the batch ring: reuse a buffer only when no batch views it
    "ring-never-reuses": ("loader/batch.py", "sys.getrefcount(buf) > self._unused:",
                          "sys.getrefcount(buf) > self._unused - 1:", "tests/engine/test_loader.py"),
    "ring-reuses-held-batches": ("loader/batch.py", "sys.getrefcount(buf) > self._unused:",
                                 "sys.getrefcount(buf) > self._unused + 1:", "tests/engine/test_loader.py"),
    # batch assembly and the adapter
    "batch-idx-shifted": ("loader/batch.py", "batch_idx = np.repeat(np.arange(len(batch), dtype=np.float32), counts)",
                          "batch_idx = np.repeat(np.arange(1, len(batch) + 1, dtype=np.float32), counts)",
                          "tests/parity/test_parity_stock_loader.py tests/engine/test_loader.py"),
    "ratio-pad-dropped": ("loader/batch.py", "ratio_pad = tuple(((a, b), (int(c), int(d)))",
                          "ratio_pad = tuple(((a, b), (0, 0))", "tests/parity/test_validator_exact.py"),
    # CutMix
    "cutmix-partner-ioa-0.5": ("loader/plan/planner.py", "thr = np.float32(0.1)", "thr = np.float32(0.5)",
                               "tests/parity/test_parity_ultralytics.py tests/parity/test_draws.py"),
    "cutmix-area-may-touch-boxes": ("loader/plan/planner.py", "free = touched <= 0", "free = touched <= 0.3",
                                    "tests/parity/test_parity_ultralytics.py tests/parity/test_draws.py"),
    "cutmix-area-not-flipped": ("loader/plan/planner.py", "cut_area[lr] = np.stack(", "cut_area[lr[:0]] = np.stack(",
                                "tests/parity/test_parity_ultralytics.py"),
    # polygon labels
    "polygons-ignored": ("loader/plan/planner.py", "new[has] = poly[has]", "new[has] = new[has]",
                         "tests/parity/test_polygons.py"),
    "polygon-area-thr-0.1": ("loader/plan/planner.py", "area_thr = np.where(has, 0.01, 0.1)",
                             "area_thr = np.where(has, 0.1, 0.1)", "tests/parity/test_polygons.py"),
    "polygon-not-clipped-to-mosaic": ("loader/plan/polygons.py", "= np.clip(pts, 0, limit)  # Instances.clip",
                                      "= pts  # Instances.clip", "tests/parity/test_polygons.py"),
    "polygon-clip-without-resample": ("loader/plan/polygons.py", "    dense = clip & leaves\n",
                                      "    dense = clip & leaves\n    placed = np.clip(placed, 0, limit)\n"
                                      "    dense = dense & False\n", "tests/parity/test_polygons.py"),
    "cutmix-polygon-ioa-0.1": ("loader/plan/planner.py", "np.float32(0.01), np.float32(0.1))[r2]",
                               "np.float32(0.1), np.float32(0.1))[r2]", "tests/parity/test_polygons.py"),
    # the CPU engine's per-batch geometry
    # the box of output pixels that can see a tile, drawn inside the tiles (a margin of 0 is no bug: within
    # Ultralytics' scales, <= 2x, the box's own +-1-2 output-pixel rounding covers the interpolation band)
    "batch-geometry-box-inside-tiles": ("loader/kernels/opencv.py", "(x0 - 2, y0 - 2, x1 + 2, y1 + 2)",
                                        "(x0 + 2, y0 + 2, x1 - 2, y1 - 2)", "tests/parity/test_parity_ultralytics.py"),
    # resume
    "resume-keeps-constructor-seed": ("loader/loader.py", "        self.planner.seed = self.sampler.seed\n", "",
                                      "tests/engine/test_resume.py"),
    # the pool: the consumer waits for a whole group, and a failure is raised as it happens
    "pool-waits-per-task": ("loader/pool.py", "            wait(futures, timeout, FIRST_EXCEPTION)\n",
                            "            [f.exception(timeout) for f in futures]\n", "tests/unit/test_pool.py"),
    # the bench: our warm-up fills the image cache to its byte budget before timing
    "bench-warmup-stops-at-mosaic-count": ("integration/bench/contenders.py", "held = max(held, min(",
                                           "held = min(held, min(", "tests/integration/test_bench.py"),
    # the trainer's wiring
    "trainer-drops-hyp": ("integration/ultralytics/trainer.py", "hyp=vars(self.args)", "hyp=None",
                          "tests/integration/test_ultralytics_integration.py"),
}


def _copy_tree(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    for f in files:
        if not f:
            continue
        src = ROOT / f.decode()
        if src.is_file():
            (dest / f.decode()).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / f.decode())
    for built in ROOT.glob("loader/kernels/_*.so"):  # the compiled kernels (pip builds them in place; untracked)
        shutil.copy2(built, dest / built.relative_to(ROOT))


def _build(copy: Path) -> None:
    """Rebuild the compiled kernels in the scratch copy (after a .c file changed there)."""
    subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace", "--force"], cwd=copy, check=True,
                   capture_output=True)


def _pytest(copy: Path, args: list[str], timeout: int) -> tuple[bool, str, float]:
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-m", "not scale", *args]
    try:
        r = subprocess.run(cmd, cwd=copy, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return True, "timed out (counted as caught: the suite did not pass)", time.perf_counter() - t0
    lines = r.stdout.strip().splitlines()
    if r.returncode in (4, 5):  # a test file that is not there (untracked: not copied) or no test collected
        return False, f"pytest exit {r.returncode}, nothing ran: {lines[-1] if lines else r.stderr.strip()[-200:]}", \
            time.perf_counter() - t0
    failed = [ln.split(" - ")[0].removeprefix("FAILED ") for ln in lines if ln.startswith(("FAILED", "ERROR"))]
    return r.returncode != 0, failed[0] if failed else (lines[-1] if lines else ""), time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help="mutants to run (default: all)")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--timeout", type=int, default=1500, help="seconds per pytest run")
    a = ap.parse_args(argv)
    if a.list:
        for k, (f, old, new, tests) in MUTANTS.items():
            print(f"{k:32} {f}: {old!r} -> {new!r}  [{tests}]")
        return 0
    names = a.names or list(MUTANTS)
    unknown = [n for n in names if n not in MUTANTS]
    if unknown:
        ap.error(f"unknown mutants {unknown}; --list shows them")
    t_all = time.perf_counter()
    survived = []
    with tempfile.TemporaryDirectory(prefix="mutants-") as tmp:
        copy = Path(tmp)
        _copy_tree(copy)
        print(f"{'mutant':32} {'result':9} {'s':>6}  caught by")
        for name in names:
            rel, old, new, tests = MUTANTS[name]
            path = copy / rel
            text = path.read_text()
            if text.count(old) != 1:
                print(f"{name:32} {'STALE':9} {'':>6}  {rel} holds {text.count(old)} copies of the text to mutate")
                survived.append(name)
                continue
            path.write_text(text.replace(old, new))
            try:
                if rel.endswith(".c"):
                    _build(copy)
                caught, why, secs = _pytest(copy, tests.split(), a.timeout)
                if not caught:  # not by the tests meant for it: the rest of the suite
                    caught, why, more = _pytest(copy, [], a.timeout)
                    secs += more
            finally:
                path.write_text(text)
                if rel.endswith(".c"):
                    _build(copy)
            print(f"{name:32} {'caught' if caught else 'SURVIVED':9} {secs:6.1f}  {why}", flush=True)
            if not caught:
                survived.append(name)
    print(f"{len(names) - len(survived)}/{len(names)} caught in {time.perf_counter() - t_all:.0f} s"
          + (f"; survived: {', '.join(survived)}" if survived else ""))
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
