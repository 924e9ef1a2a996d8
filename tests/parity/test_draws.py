"""The planner's random draws against Ultralytics' own transforms, each sampled 10,240 times.

The parity tests hand Ultralytics *our* plan, so they check painting, never the draws. Here Ultralytics'
real training pipeline (``build_yolo_dataset`` + ``dataset[i]``, images read in order as an unshuffled
epoch does) runs with its random sources recorded: which transform drew what (the mosaic and mixup coins,
mosaic partners out of the buffer and the centre, the mixup partner and its Beta ratio, the HSV gains, the
flips) and the warp matrix and scale each ``RandomPerspective`` computed. The batched planner plans the same
positions (order ``arange(n)`` every epoch, as the sequential reads). Every rate and distribution is
compared with tolerances from the samples' own standard errors (means and SDs within 4.5 standard errors,
two-sample Kolmogorov-Smirnov under its 1e-4 critical value); seeds are fixed, so the outcome is repeatable.

Which planted bugs this catches: flips never drawn, HSV gains halved, the buffer without its 8 x batch term,
degrees/shear/perspective or translate mapped wrongly, the mixup ratio's Beta or rate, the mosaic centre.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

import ultralytics  # noqa: F401  (a dependency: missing fails, never skips)
from loader.dataset import build_index
from loader.demo_data import make_demo_dataset
from loader.plan import Planner
from distributions import same_distribution, same_rate
from ultralytics_chain import stock_boxes

pytestmark = pytest.mark.slow
N_IMAGES, BATCH, S, SAMPLES = 300, 16, 64, 10240  # buffer L = min(300, 8 x 16, 1000) = 128
SETTINGS = {
    "default": {},
    # rotation, shear, perspective, mixup and a mosaic coin, all at once
    "geometry-mixup-mosaic0.5": dict(degrees=10.0, shear=4.0, perspective=0.0005, translate=0.2, scale=0.3,
                                     mixup=0.4, mosaic=0.5, flipud=0.3),
}


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    return make_demo_dataset(tmp_path_factory.mktemp("draws"), count=N_IMAGES, val_count=4, size=(80, 60), seed=5)


# ---------------------------------------------------------------------------------------------- comparisons
# ---------------------------------------------------------------------------------------------- Ultralytics side
class _Recorder:
    """Ultralytics' random sources, logged per transform: ``augment.random`` (Python's) and ``np.random``'s
    ``uniform`` / ``beta``, tagged with the stack of transforms whose ``__call__`` is running."""

    def __init__(self, monkeypatch):
        from ultralytics.data import augment as A

        self.stack: list[str] = []
        self.events: list[tuple[tuple[str, ...], str, tuple, object]] = []
        self.matrices: list[tuple[tuple[str, ...], np.ndarray, float]] = []
        rec = self

        class LoggedRandom:
            def __getattr__(self, name):
                fn = getattr(random, name)

                def logged(*args, **kw):
                    out = fn(*args, **kw)
                    rec.events.append((tuple(rec.stack), name, args, out))
                    return out

                return logged

        monkeypatch.setattr(A, "random", LoggedRandom())
        for name in ("uniform", "beta"):
            fn = getattr(np.random, name)

            def logged(*args, _fn=fn, _name=name, **kw):
                out = _fn(*args, **kw)
                rec.events.append((tuple(rec.stack), "np." + _name, args, out))
                return out

            monkeypatch.setattr(np.random, name, logged)

        def tagged(cls, tag):
            call = cls.__call__

            def wrapper(self_, *a, **kw):
                rec.stack.append(tag(self_))
                try:
                    return call(self_, *a, **kw)
                finally:
                    rec.stack.pop()

            monkeypatch.setattr(cls, "__call__", wrapper)

        tagged(A.Mosaic, lambda t: "mosaic")
        tagged(A.MixUp, lambda t: "mixup")
        tagged(A.CutMix, lambda t: "cutmix")
        tagged(A.CopyPaste, lambda t: "copypaste")
        tagged(A.RandomHSV, lambda t: "hsv")
        tagged(A.RandomFlip, lambda t: "flip-" + t.direction)
        tagged(A.RandomPerspective, lambda t: "perspective")
        compute = A.RandomPerspective._compute_affine_matrix

        def matrix(self_, *a, **kw):
            M, s = compute(self_, *a, **kw)
            rec.matrices.append((tuple(rec.stack), np.array(M, np.float64), float(s)))
            return M, s

        monkeypatch.setattr(A.RandomPerspective, "_compute_affine_matrix", matrix)


def _ultralytics_draws(data_yaml, hyp: dict, monkeypatch) -> dict:
    from ultralytics.cfg import get_cfg
    from ultralytics.data import build_yolo_dataset
    from ultralytics.data.utils import check_det_dataset

    data = check_det_dataset(str(data_yaml))
    cfg = get_cfg(overrides={"imgsz": S, **hyp})
    ds = build_yolo_dataset(cfg, data["train"], BATCH, data, mode="train", stride=32)
    assert len(ds) == N_IMAGES and ds.max_buffer_length == min(N_IMAGES, 8 * BATCH, 1000)
    random.seed(0)
    np.random.seed(0)
    rec = _Recorder(monkeypatch)
    out = {k: [] for k in ("mosaic", "partner_age", "buffer_len", "yc", "xc", "mix", "mix_partner", "mix_r", "hsv",
                           "flipud", "fliplr", "M", "scale")}
    for j in range(SAMPLES):
        i = j % N_IMAGES
        rec.events.clear()
        rec.matrices.clear()
        ds[i]
        top = [e for e in rec.events if "mixup" not in e[0]]  # the primary's own draws (not the mixup partner's)
        mos = [e for e in top if e[0][-1:] == ("mosaic",)]
        applied = any(e[1] == "choices" for e in mos)  # after BaseMixTransform's coin: uniform(0, 1) > p skips
        out["mosaic"].append(applied)
        if applied:
            ch = next(e for e in mos if e[1] == "choices")
            out["buffer_len"].append(len(ch[2][0]))
            out["partner_age"] += [(i - p) % N_IMAGES for p in ch[3]]
            yc, xc = [e[3] for e in mos if e[1] == "uniform"][1:3]  # the coin, then the centre
            out["yc"].append(int(yc))
            out["xc"].append(int(xc))
        mix = [e for e in rec.events if e[0][:1] == ("mixup",)]
        on = any(e[1] == "randint" for e in mix)
        out["mix"].append(on)
        if on:
            out["mix_partner"].append(next(e[3] for e in mix if e[1] == "randint"))
            out["mix_r"].append(next(e[3] for e in mix if e[1] == "np.beta"))
        hsv = [e for e in rec.events if e[0][-1:] == ("hsv",) and e[1] == "np.uniform"]
        if hsv:  # RandomHSV: r = np.random.uniform(-1, 1, 3) * [hgain, sgain, vgain]
            out["hsv"].append(np.asarray(hsv[0][3]) * [cfg.hsv_h, cfg.hsv_s, cfg.hsv_v])
        for d, key, p in (("vertical", "flipud", cfg.flipud), ("horizontal", "fliplr", cfg.fliplr)):
            f = [e for e in rec.events if e[0][-1:] == ("flip-" + d,) and e[1] == "random"]
            out[key].append(bool(f) and f[0][3] < p)  # RandomFlip: random.random() < p
        primary_m = [m for m in rec.matrices if "mixup" not in m[0]]
        assert len(primary_m) == 1, "one warp of the primary canvas per sample"
        out["M"].append(primary_m[0][1])
        out["scale"].append(primary_m[0][2])
    return {k: np.asarray(v) for k, v in out.items()}


# ---------------------------------------------------------------------------------------------- our side
def _flips(ud: bool, lr: bool) -> np.ndarray:
    """The flip matrix the planner folds into M (pixel grid: x -> s - 1 - x); it is its own inverse."""
    F = np.eye(3)
    if lr:
        F[0, 0], F[0, 2] = -1, S - 1
    if ud:
        F[1, 1], F[1, 2] = -1, S - 1
    return F


def _our_draws(data_yaml, hyp: dict) -> dict:
    index = build_index(data_yaml, "train", verbose=False, cache=False)
    assert len(index) == N_IMAGES
    planner = Planner(index, S, hyp, batch_size=BATCH, seed=0)
    order = np.arange(N_IMAGES)
    out = {k: [] for k in ("mosaic", "partner_age", "buffer_len", "yc", "xc", "mix", "mix_partner", "mix_r", "hsv",
                           "flipud", "fliplr", "M", "scale")}
    for j0 in range(0, SAMPLES, 512):
        positions = np.arange(j0, min(j0 + 512, SAMPLES))
        for e in np.unique(positions // N_IMAGES):
            pos = positions[positions // N_IMAGES == e] % N_IMAGES
            b = planner.plan_batch(int(e), pos, order, prev_order=order if e else None)
            for r, p in enumerate(pos):
                t0, t1 = b.tile_off[r], b.tile_off[r + 1]
                out["mosaic"].append(bool(b.mosaic[r]))
                if b.mosaic[r]:
                    n_buf = min(p + 1, planner.buffer_len - 1) if e == 0 else planner.buffer_len - 1
                    out["buffer_len"].append(n_buf)
                    out["partner_age"] += [(p - q) % N_IMAGES for q in b.tile_index[t0 + 1:t1]]
                    out["xc"].append(int(b.tile_at[t0 + 1, 0]))
                    out["yc"].append(int(b.tile_at[t0 + 2, 1]))
                on = b.mix_r[r] > 0
                out["mix"].append(bool(on))
                if on:
                    out["mix_partner"].append(int(b.mix.index[r]))
                    out["mix_r"].append(float(b.mix_r[r]))
                if b.hsv is not None:
                    out["hsv"].append(b.hsv[r])
                ud, lr = b.flips[r]
                out["flipud"].append(bool(ud))
                out["fliplr"].append(bool(lr))
                out["M"].append(_flips(ud, lr) @ b.M[r])  # the warp before the flips the planner folds in
                out["scale"].append(float(b.scale[r]))
    return {k: np.asarray(v) for k, v in out.items()}


@pytest.mark.parametrize("setting", list(SETTINGS))
def test_draws_match_ultralytics_transforms(tiny_set, monkeypatch, setting):
    hyp = SETTINGS[setting]
    theirs = _ultralytics_draws(tiny_set, hyp, monkeypatch)
    monkeypatch.undo()
    ours = _our_draws(tiny_set, hyp)
    same_rate(ours["mosaic"], theirs["mosaic"], "mosaic rate")
    same_rate(ours["mix"], theirs["mix"], "mixup rate")
    same_rate(ours["flipud"], theirs["flipud"], "flip up-down rate")
    same_rate(ours["fliplr"], theirs["fliplr"], "flip left-right rate")
    for c, name in enumerate(("hue", "saturation", "value")):
        same_distribution(ours["hsv"][:, c], theirs["hsv"][:, c], f"HSV {name} gain")
    same_distribution(ours["xc"], theirs["xc"], "mosaic centre x")
    same_distribution(ours["yc"], theirs["yc"], "mosaic centre y")
    same_distribution(ours["scale"], theirs["scale"], "affine scale")
    # the warp: every entry of M over all primary canvases (rotation, scale, shear, perspective, translation)
    for r in range(3):
        for c in range(3):
            if r == 2 and (c == 2 or not hyp.get("perspective", 0)):
                continue
            same_distribution(ours["M"][:, r, c], theirs["M"][:, r, c], f"M[{r},{c}]")
    # mosaic partners: drawn from the buffer of the L - 1 most recent images (L = min(n, 8 x batch, 1000))
    assert theirs["buffer_len"].max() == ours["buffer_len"].max() == min(N_IMAGES, 8 * BATCH, 1000) - 1
    if not hyp.get("mixup", 0):
        same_distribution(ours["partner_age"], theirs["partner_age"], "mosaic partner age in the buffer")
    # With mixup on, stock's per-worker buffer also takes each mixup partner it loads (a random image), so its
    # mosaic partners are older on average (measured here: mean age 80 vs our 62 of 127); ours holds the recent
    # primaries only (README: "Differences by design"). Only the buffer length is compared then.
    if hyp.get("mixup", 0):
        same_distribution(ours["mix_r"], theirs["mix_r"], "mixup ratio (Beta(32, 32))")
        same_distribution(ours["mix_partner"], theirs["mix_partner"], "mixup partner (any image)")


def test_batched_matrices_equal_ultralytics_for_the_same_uniforms(tiny_set, monkeypatch):
    """The planner's batched ``_affine`` (through ``plan_batch``) against ``RandomPerspective`` fed the same
    uniforms through its own ``random.uniform``: 300 canvases, mosaic and single, rotation, shear,
    perspective. Bitwise equal in float32 (the same product order) where no flip is folded in."""
    from ultralytics.data import augment as A

    hyp = SETTINGS["geometry-mixup-mosaic0.5"]
    index = build_index(tiny_set, "train", verbose=False, cache=False)
    planner = Planner(index, S, hyp, batch_size=BATCH, seed=4)
    order = np.arange(N_IMAGES)
    b = planner.plan_batch(2, np.arange(N_IMAGES), order, prev_order=order)
    u, _ = planner.draws(2, np.arange(N_IMAGES))
    rp = A.RandomPerspective(degrees=hyp["degrees"], translate=hyp["translate"], scale=hyp["scale"],
                             shear=hyp["shear"], perspective=hyp["perspective"], size=(S, S))
    checked = 0
    for r in range(N_IMAGES):
        feed = iter(u[r, 6:14])  # the affine columns, in Ultralytics' order of draws
        monkeypatch.setattr(A.random, "uniform", lambda a, c: a + (c - a) * next(feed))
        h, w = b.canvas_hw[r]
        M_ul, s_ul = rp._compute_affine_matrix(np.zeros((h, w, 3), np.uint8), (S, S))
        monkeypatch.undo()
        F = _flips(*b.flips[r])
        # F @ F is the identity up to float64 rounding of the flipped rows (<= 1e-13 here)
        assert np.allclose(F @ b.M[r], M_ul.astype(np.float64), rtol=0, atol=1e-9) and b.scale[r] == s_ul, r
        if not b.flips[r].any():
            assert np.array_equal(b.M[r], M_ul.astype(np.float64)), r  # bitwise where nothing is folded in
        checked += 1
    assert checked == N_IMAGES and b.mosaic.any() and (~b.mosaic).any()


def test_cutmix_boxes_match_ultralytics_end_to_end(tiny_set):
    """CutMix (p 0.5, with mosaic and mixup 0.3): Ultralytics' training pipeline and the planner over 10,240 samples
    each: the same distribution of boxes per image and of box widths, heights and areas (the coin, the areas, the
    choice among free areas, the partner boxes kept and clipped, all at once). The exact rule on identical draws:
    ``tests/parity/test_parity_ultralytics.py::test_cutmix_same_draws_same_boxes_and_pixels``."""
    hyp = dict(cutmix=0.5, mixup=0.3)
    theirs_n, theirs_b = stock_boxes(tiny_set, S, hyp, BATCH, SAMPLES, seed=1)
    index = build_index(tiny_set, "train", verbose=False, cache=False)
    planner = Planner(index, S, hyp, batch_size=BATCH, seed=1)
    order = np.arange(N_IMAGES)
    ours_n, ours_b, cut_on = [], [], 0
    for e in range(-(-SAMPLES // N_IMAGES)):
        n = min(N_IMAGES, SAMPLES - e * N_IMAGES)
        b = planner.plan_batch(e, np.arange(n), order, prev_order=order if e else None)
        ours_n += np.diff(b.box_off).tolist()
        ours_b.append(b.boxes)
        cut_on += int(b.has_cut.sum())
    ours_b = np.concatenate(ours_b)
    assert 0.05 * SAMPLES < cut_on < 0.5 * SAMPLES, cut_on  # applied: the coin, then a free area with boxes
    same_distribution(ours_n, theirs_n, "boxes per image")
    same_distribution(ours_b[:, 2], theirs_b[:, 2], "box width")
    same_distribution(ours_b[:, 3], theirs_b[:, 3], "box height")
    same_distribution(ours_b[:, 2] * ours_b[:, 3], theirs_b[:, 2] * theirs_b[:, 3], "box area")
