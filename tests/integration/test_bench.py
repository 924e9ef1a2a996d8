"""The comparison bench, the ratio gate and the tuner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from integration.gates import check, describe
from loader import DetectionLoader, tuner

ROOT = Path(__file__).resolve().parents[2]
GiB = 2**30


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One `yolo-loader bench --quick --train` with cpu-w2 deliberately slowed (1 s per timed batch)."""
    cwd = tmp_path_factory.mktemp("bench")
    exe = Path(sys.executable).with_name("yolo-loader")
    env = dict(os.environ, YOLO_LOADER_BENCH_DELAY=json.dumps({"cpu-w2": 1.0}))
    r = subprocess.run([str(exe), "bench", "--quick", "--train", "--cache", "disk", "--json", str(cwd / "out.json")],
                       cwd=cwd, env=env,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:] + r.stdout[-2000:]
    return cwd, r.stdout


def test_quick_bench_writes_json_png_and_a_table(quick_run):
    cwd, out = quick_run
    rows = json.loads((cwd / "out.json").read_text())
    names = {r["name"] for r in rows}
    assert {"decode-only", "stock-w2", "cpu-w2", "cpu-auto"} <= names
    assert "dali (CPU-only mode)" in names or "dali" in names
    for r in rows:
        if r["name"] in ("stock-w2", "cpu-w2", "cpu-auto"):
            assert "error" not in r, r
            for key in ("name", "it_s", "img_s", "speedup", "pss_peak_gib", "cpu_s_per_img", "workers_effective"):
                assert key in r, (r["name"], key)
            assert r["img_s"] > 0 and r["pss_peak_gib"] > 0.05
    dali = next(r for r in rows if r["name"].startswith("dali"))
    assert "error" not in dali and dali["device"] in ("cpu", "cuda") and dali["img_s"] > 0
    assert dali["dali_fallbacks"] == 0 and dali["tile_buffer_device"] == dali["device"]
    assert (cwd / "out.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "x best stock" in out and "[####################]" in out
    assert "cpu-auto:" in out and "vs the best stock configuration" in out and "Stock as configured" in out
    for r in rows:
        if "img_s" in r and r["name"] != "decode-only":
            assert r["img_s_min"] <= r["img_s"] <= r["img_s_max"] and r["rounds"] == 1, r
    assert (cwd / ".demo" / "quick" / "data.yaml").exists()
    # the ceilings are measured warm (issue 23: a cold first pass read under half of it), with their own spread,
    # and every row is a fraction of its regime's: uncached rows of decode-only, cached rows of cached-ceiling
    by = {r["name"]: r for r in rows}
    for name in ("decode-only", "cached-ceiling"):
        c = by[name]
        assert c["warm"] and c["passes"] == 3 and c["img_s_min"] <= c["img_s"] <= c["img_s_max"] and c["threads"]
    assert by["decode-only"]["img_s_decode_resize"] > 0
    assert by["decode-only"]["img_s_opencv"] > 0 and by["decode-only"]["decoder"] == "native"
    assert by["cpu-auto"]["of_ceiling"] == pytest.approx(by["cpu-auto"]["img_s"] / by["decode-only"]["img_s"])
    assert by["cpu-w2-disk"]["of_ceiling"] == pytest.approx(by["cpu-w2-disk"]["img_s"] / by["cached-ceiling"]["img_s"])
    assert "Of the warm decode ceiling" in out and "Of the cached ceiling" in out


def test_cached_rows_report_build_bytes_and_faults(quick_run):
    """--cache disk: stock's full-resolution .npy files vs our one packed file, each with its first build time and
    bytes, ours with its store faults (none) and the file-backed part of its PSS."""
    cwd, out = quick_run
    rows = {r["name"]: r for r in json.loads((cwd / "out.json").read_text())}
    stock, ours = rows["stock-w2-disk"], rows["cpu-w2-disk"]
    assert "error" not in stock and "error" not in ours
    assert stock["cache"] == ours["cache"] == "disk" and stock["build_s_first"] > 0 and ours["build_s_first"] > 0
    assert ours["store_backing"] == "file" and ours["store_errors"] == 0 and ours["read_faults"] == 0
    # 48 images of 640x360: stock keeps them at full resolution, ours at training size (320x180) in one file
    assert stock["cache_bytes"] >= 48 * 640 * 360 * 3 and 48 * 320 * 180 * 3 <= ours["cache_bytes"] < stock["cache_bytes"]
    assert ours["pss_file_peak_gib"] >= 0
    assert "cpu-w2-disk: cache='disk' built in" in out and "(one packed store, backing file), 0 store faults" in out
    assert "stock-w2-disk: cache='disk' built in" in out and "full-resolution .npy per image" in out


def test_seed_preset_compares_the_reported_disk_cache_setting(demo_set):
    """The seed preset runs stock and ours with cache="disk" at 8 and 12 workers beside the uncached rows."""
    import argparse

    from integration.bench.main import _apply_preset, add_arguments, contenders

    ap = argparse.ArgumentParser()
    add_arguments(ap)
    a = ap.parse_args(["--preset", "seed", "--data", str(demo_set)])
    _apply_preset(a)
    specs = {s.name: s for s, _ in contenders(a)}
    for name in ("stock-w8-disk", "cpu-w8-disk", "cpu-w12-disk", "stock-w8", "cpu-w8", "cpu-w12"):
        assert name in specs, sorted(specs)
    assert specs["stock-w8-disk"].cache == specs["cpu-w12-disk"].cache == "disk"
    assert specs["cpu-w8-disk"].batch == 128 and specs["cpu-w8-disk"].imgsz == 896
    cores = len(os.sched_getaffinity(0))
    assert ("stock-w12-forced-disk" in specs) == (12 > cores)
    b = ap.parse_args(["--preset", "seed", "--data", str(demo_set), "--cache", "none"])
    _apply_preset(b)
    assert not [s for s, _ in contenders(b) if s.cache]


def test_only_naming_no_contender_is_said(demo_set, capsys):
    """``--only`` with rows this run does not have (a cached row without ``--cache``): said with the run's
    contenders; a selection of none stops the run (it once ran nothing and printed an empty table)."""
    import argparse

    from integration.bench.main import _apply_preset, add_arguments, contenders, select

    ap = argparse.ArgumentParser()
    add_arguments(ap)
    a = ap.parse_args(["--data", str(demo_set), "--cache", "none"])
    _apply_preset(a)
    specs = contenders(a)
    with pytest.raises(SystemExit, match=r"cpu-auto-disk not among this run's contenders \(cached rows .*--cache"):
        select(specs, "cached-ceiling,cpu-auto-disk")
    with pytest.raises(SystemExit, match="names no contender"):
        select(specs, ",")
    assert [s.name for s, _ in select(specs, "cpu-auto,cpu-auto-disk")] == ["cpu-auto"]
    assert "cpu-auto-disk not among this run's contenders" in capsys.readouterr().out
    assert [s.name for s, _ in select(specs, "cpu-auto,decode-only")] == ["decode-only", "cpu-auto"]
    assert select(specs, None) == specs


def test_training_rows_and_their_ceiling(quick_run):
    """Real Ultralytics iterations with the stock loader, ours, and pre-made batches on the device (the ceiling)."""
    cwd, out = quick_run
    rows = {r["name"]: r for r in json.loads((cwd / "out.json").read_text())}
    assert "it_s" in rows["train-synthetic"], ("the ceiling row has no result", rows["train-synthetic"])
    for name in ("train-stock", "train-cpu", "train-synthetic"):
        r = rows[name]
        assert "error" not in r, r
        assert r["kind"] == "train" and r["it_s"] > 0 and r["iterations_timed"] == 8 and r["pss_peak_gib"] > 0.1
        assert r["fraction_of_synthetic"] == pytest.approx(r["it_s"] / rows["train-synthetic"]["it_s"])
    assert rows["train-synthetic"]["fraction_of_synthetic"] == 1.0
    assert "of the synthetic ceiling" in out


def test_spreads_and_distinguishability():
    from integration.bench.report import distinguishable, summarize

    rounds = [[{"name": "stock-w8", "img_s": v, "workers_effective": 2, "workers_requested": 8},
               {"name": "cpu-auto", "img_s": u, "workers_effective": 2, "workers_requested": "auto"},
               {"name": "cpu-w8", "img_s": w, "workers_effective": 8, "workers_requested": 8}]
              for v, u, w in ((60.0, 90.0, 62.0), (70.0, 100.0, 75.0), (65.0, 95.0, 68.0))]
    table = {r["name"]: r for r in summarize(rounds)}
    assert table["cpu-auto"]["img_s_min"] == 90 and table["cpu-auto"]["img_s_max"] == 100
    assert table["cpu-auto"]["img_s"] == 95 and table["cpu-auto"]["rounds"] == 3
    assert table["cpu-auto"]["distinguishable_from_best_stock"] is True
    assert table["cpu-w8"]["distinguishable_from_best_stock"] is False  # 62-75 overlaps 60-70
    assert distinguishable({"rounds": 1}, {"rounds": 3}) is None


def test_rows_are_compared_with_stock_in_their_own_regime():
    """An uncached row against stock's uncached rows, a cached one against stock's rows with that cache: a stock
    disk row (no decode) is no yardstick for decoding loaders, nor the reverse."""
    from integration.bench.report import summarize

    def row(name, v, cache=None):
        return {"name": name, "img_s": v, "workers_effective": 2, "workers_requested": 8, "cache": cache}

    rounds = [[row("stock-w8", 100.0), row("stock-w8-disk", 170.0, "disk"), row("cpu-auto", 140.0),
               row("cpu-auto-disk", 430.0, "disk")]]
    table = {r["name"]: r for r in summarize(rounds)}
    assert table["cpu-auto"]["best_stock"] == "stock-w8" and table["cpu-auto"]["speedup_vs_best_stock"] == 1.4
    assert table["cpu-auto-disk"]["best_stock"] == "stock-w8-disk"
    assert table["cpu-auto-disk"]["speedup_vs_best_stock"] == pytest.approx(430 / 170)


def test_stock_uncached_rows_decode_even_where_npy_files_exist(demo_set, copy_of):
    """Ultralytics loads a *.npy beside an image in any cache mode once one exists (written by a cache="disk"
    row): the uncached stock contender must not, or it times .npy reads as if they were JPEG decodes."""
    import numpy as np

    from integration.bench.contenders import _stock
    from integration.bench.spec import RunSpec

    data = copy_of(demo_set)
    for jpg in (data.parent / "images" / "train").glob("*.jpg"):
        np.save(jpg.with_suffix(".npy"), np.zeros((4, 4, 3), np.uint8))  # a stale cache would show as 4x4 images
    c = _stock(RunSpec(kind="stock", name="stock-w0", data=str(data), imgsz=160, batch=2, workers=0))
    ds = c.loader.dataset
    assert not any(f.exists() for f in ds.npy_files)
    assert ds.load_image(0)[1] != (4, 4)  # the original size: the JPEG's, not the stale 4x4 .npy


def test_headline_words_for_training_only_and_unrun_rows():
    from integration.bench.report import headline, train_rows

    train = [{"name": n, "kind": "train", "it_s": v, "model": "yolo11n.yaml", "device": "cpu", "imgsz": 320,
              "batch": 8} for n, v in (("train-stock", 1.3), ("train-cpu", 1.6), ("train-synthetic", 1.625))]
    train_rows(train)
    lines = headline(train)
    assert lines == ["Training (yolo11n.yaml on cpu, 320 px, batch 8): train-stock 1.30 it/s = 0.80 of the "
                     "synthetic ceiling; train-cpu 1.60 it/s = 0.98 of the synthetic ceiling; train-synthetic "
                     "1.62 it/s = 1.00 of the synthetic ceiling."]
    best = dict(img_s=60.0, img_s_min=55.0, img_s_max=65.0, rounds=2, cpu_s_per_img=0.03, pss_peak_gib=5.0)
    rows = [dict(best, name="stock-w8", workers_effective=2, workers_requested=8),
            {"name": "stock-w12-forced", "workers_effective": 12, "workers_requested": 12,
             "not_run": "needs ~32.9 GiB (projected), 22.0 GiB available"},
            dict(best, name="cpu-auto", img_s=90.0, img_s_min=85.0, img_s_max=95.0, best_stock="stock-w8",
                 distinguishable_from_best_stock=True, workers_effective=2, workers_requested="auto")]
    text = "\n".join(headline(rows))
    assert "1.50x, the spreads do not overlap" in text
    assert "stock-w12-forced (12 processes) not run: needs ~32.9 GiB" in text
    assert "stock-w8 ran 2 processes, 5.00 GiB" in text


def test_ratio_gate_fails_a_slowed_contender_and_passes_otherwise(quick_run):
    cwd, _ = quick_run
    rows = json.loads((cwd / "out.json").read_text())
    rules = [{"ours": "cpu-w2", "stock": "stock-w2", "min": 0.5}, {"ours": "cpu-auto", "stock": "stock-w2", "min": 0.5}]
    slowed, normal = check(rows, rules)
    assert not slowed["ok"] and slowed["ratio"] < 0.5
    assert normal["ok"]
    cfg = cwd / "gates.json"
    cfg.write_text(json.dumps({"ratios": rules}))
    exe = Path(sys.executable).with_name("yolo-loader")
    r = subprocess.run([str(exe), "gate", "--json", str(cwd / "out.json"), "--config", str(cfg)],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "FAIL  cpu-w2 / stock-w2" in r.stdout and "PASS  cpu-auto / stock-w2" in r.stdout


def test_gate_logic_on_synthetic_rows():
    rows = [{"name": "stock-w8", "img_s": 100.0}, {"name": "cpu-auto", "img_s": 125.0},
            {"name": "dali", "error": "boom"}]
    ok, bad, missing = check(rows, [{"ours": "cpu-auto", "stock": "stock-w8", "min": 1.2},
                                    {"ours": "cpu-auto", "stock": "stock-w8", "min": 1.3},
                                    {"ours": "dali", "stock": "stock-w8", "min": 1.0}])
    assert ok["ok"] and ok["ratio"] == pytest.approx(1.25)
    assert not bad["ok"] and not missing["ok"] and missing["ratio"] is None
    rows[1]["cores_busy"] = 3.5
    within, over, absent = check(rows, [{"row": "cpu-auto", "metric": "cores_busy", "max": 4},
                                        {"row": "cpu-auto", "metric": "cores_busy", "max": 3},
                                        {"row": "dali", "metric": "cores_busy", "max": 4}])
    assert within["ok"] and not over["ok"] and not absent["ok"]
    assert describe(over) == "FAIL  cpu-auto cores_busy = 3.500 (max 3)"


def test_gate_files_are_checked(tmp_path):
    from integration.gates import DEFAULT_RULES, load_rules

    assert load_rules(DEFAULT_RULES) and load_rules(DEFAULT_RULES.with_name("gates_gpu.json"))
    bad = tmp_path / "g.json"
    bad.write_text(json.dumps({"limits": [{"row": "dali", "metric": "cores_busy"}]}))
    with pytest.raises(ValueError, match="min or max"):
        load_rules(bad)


def _cost_model(workers: int) -> dict:
    """Throughput saturates at 4 workers and then degrades; every worker costs 0.25 GiB."""
    img_s = 100 * min(workers, 4) * (1 - 0.02 * max(0, workers - 4))
    return {"workers": workers, "img_s": img_s, "pss_peak_bytes": (0.5 + 0.25 * workers) * GiB}


def test_tuner_picks_smallest_near_best_within_budget():
    rows = [_cost_model(w) for w in range(1, 9)] + [{"workers": 9, "error": "crashed"}]
    assert tuner.choose(rows)["workers"] == 4  # best; 3 workers is 25 % slower
    rows[4]["img_s"] = 395  # 5 workers nearly as good as 4: still take 4 (the smaller)
    assert tuner.choose(rows)["workers"] == 4
    rows[3]["img_s"] = 370  # 4 workers now more than 5 % below 5 workers' 395 (370 < 375.25): 5 wins
    assert tuner.choose(rows)["workers"] == 5
    assert tuner.choose(rows, ram_budget_bytes=1.3 * GiB)["workers"] == 3  # 4+ do not fit
    with pytest.raises(ValueError, match="smallest needs 0.75 GiB"):
        tuner.choose(rows, ram_budget_bytes=0.5 * GiB)
    assert tuner.parse_budget("50%", 10 * GiB) == 5 * GiB and tuner.parse_budget("2GiB", 0) == 2 * GiB


def test_tuner_recommendation_feeds_workers_auto(demo_set):
    key = tuner.key_for(str(demo_set), 128, 4)
    assert tuner.recommendation(key) is None
    tuner.save(key, {"workers": 3, "img_s": 10.0}, [])
    assert tuner.recommendation(key) == 3
    with DetectionLoader(str(demo_set), imgsz=128, batch_size=4) as dl:
        assert dl.num_workers == 3
    with DetectionLoader(str(demo_set), imgsz=128, batch_size=8) as dl:  # another batch size: not tuned
        assert dl.num_workers == len(os.sched_getaffinity(0))
    tuner.tuner_file().write_text("{ not json")
    assert tuner.recommendation(key) is None  # unreadable file: fall back, never crash


def test_tuner_recommendation_is_per_engine(demo_set):
    """A pick measured for the CPU engine is not the DALI engine's (its threads mean something else)."""
    tuner.save(tuner.key_for(str(demo_set), 160, 4, "cpu"), {"workers": 3, "img_s": 10.0}, [])
    with DetectionLoader(str(demo_set), imgsz=160, batch_size=4, backend="dali") as dl:
        assert dl.num_workers == len(os.sched_getaffinity(0)), "no DALI pick yet: one per core"
    tuner.save(tuner.key_for(str(demo_set), 160, 4, "dali"), {"workers": 1, "img_s": 5.0}, [])
    with DetectionLoader(str(demo_set), imgsz=160, batch_size=4, backend="dali") as dl:
        assert dl.num_workers == 1
    with DetectionLoader(str(demo_set), imgsz=160, batch_size=4, backend="cpu") as dl:
        assert dl.num_workers == 3


def test_a_forced_stock_row_that_cannot_fit_is_projected_not_run(demo_set):
    from integration.bench import RunSpec
    from integration.bench.main import memory_guard, projected_stock_ram

    huge = RunSpec(kind="stock", name="stock-w64-forced", data=str(demo_set), imgsz=896, batch=128, workers=64,
                   forced=True)
    row = memory_guard(huge)
    assert row["not_run"].startswith("needs ~") and row["pss_projected_gib"] > 64
    small = RunSpec(kind="stock", name="stock-w3-forced", data=str(demo_set), imgsz=160, batch=4, workers=3,
                    forced=True)
    assert memory_guard(small) is None and memory_guard(RunSpec(kind="ours", name="cpu-auto", data="x")) is None
    # 12 workers at batch 128, 896 px, 16:9 images: buffers of 1000 x 1.4 MB each plus 48 queued batches of 0.3 GB
    assert 30 < projected_stock_ram(12, 128, 896, 896 * 504 * 3) / 2**30 < 40


def test_warm_up_fills_our_image_cache_to_its_budget(demo_set):
    """Without a store our image cache fills to a byte budget sized for square tiles: on 16:9 images it holds ~1.8x
    the mosaic buffer's count, and a warm-up that stopped at that count timed the cache's first fill (page faults
    a large data set pays once)."""
    import math

    from integration.bench.child import warmup_batches
    from integration.bench.contenders import build
    from integration.bench.spec import RunSpec

    spec = RunSpec(kind="ours", name="cpu-auto", data=str(demo_set), imgsz=160, batch=1, workers=1)
    c = build(spec)
    try:
        st = c.loader.images.stats()
        tile = 160 * 90 * 3  # 1920x1080 at 160 px
        assert c.buffered_images == min(24, st["budget"] // tile) > c.loader.planner.buffer_len + 2 * spec.batch
        it = iter(c.loader)
        for _ in range(warmup_batches(spec, c)):
            next(it)
        st = c.loader.images.stats()
        assert st["bytes"] > st["budget"] - tile, st  # full: the timed batches decode into recycled memory
        assert math.isclose(st["bytes"] / tile, st["items"])
    finally:
        c.close()


def test_shares_of_the_ceiling_are_also_paired_by_round():
    """A row's share of its ceiling from the medians, and per round against the ceiling measured in that round (the
    machine's speed drifts between rounds: a slow round's pair stays together)."""
    from integration.bench.report import _ceiling_lines, summarize

    def row(name, v):
        return {"name": name, "img_s": v, "workers_effective": 2, "workers_requested": "auto"}

    rounds = [[{"name": "decode-only", "img_s": 300.0, "img_s_min": 290.0, "img_s_max": 310.0}, row("cpu-auto", 210.0)],
              [{"name": "decode-only", "img_s": 240.0, "img_s_min": 230.0, "img_s_max": 250.0}, row("cpu-auto", 168.0)],
              [row("cpu-auto", 190.0)]]  # a round without the ceiling (its rounds are fewer) is not paired
    table = summarize(rounds)
    cpu = next(r for r in table if r["name"] == "cpu-auto")
    assert cpu["of_ceiling"] == pytest.approx(190.0 / 270.0)
    assert cpu["of_ceiling_rounds"] == pytest.approx([0.7, 0.7])
    line = _ceiling_lines({r["name"]: r for r in table})[0]
    assert "cpu-auto 0.70 (in the same round: 0.70, 0.70)" in line, line
