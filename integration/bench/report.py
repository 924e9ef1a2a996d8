"""The bench's report: rows of several rounds summarized (median and min-max spread), which differences the spreads
can tell apart, a plain-words headline, the table and the PNG chart."""

from __future__ import annotations

import statistics
from pathlib import Path

__all__ = ["summarize", "distinguishable", "headline", "train_rows", "print_table", "plot", "cache_lines"]


def summarize(rounds: list[list[dict]], reference: str | None = None) -> list[dict]:
    """One row per contender: medians over its rounds, ``img_s_min`` / ``img_s_max`` (and ``it_s_*``), ``rounds``;
    ``speedup_vs_best_stock`` against the stock row with the best median among those Ultralytics' own
    ``build_dataloader`` builds in the same regime (no cache / ``ram`` / ``disk``: ``best_stock``; not the forced
    rows), ``speedup`` against ``reference``;
    ``distinguishable_from_best_stock``: whether the two rows' min-max spreads do not overlap."""
    by_name: dict[str, list[dict]] = {}
    for rows in rounds:
        for r in rows:
            by_name.setdefault(r["name"], []).append(r)
    table = []
    for name, rs in by_name.items():
        ok = [r for r in rs if "error" not in r]
        if not ok:
            table.append(rs[0])
            continue
        row = dict(ok[0])
        for k, v in ok[0].items():
            if isinstance(v, float):
                row[k] = statistics.median(r[k] for r in ok)
        for k in ("img_s", "it_s"):  # a row that measured its own spread (decode-only's passes) keeps it
            if k in row:
                row[f"{k}_min"] = min(r.get(f"{k}_min", r[k]) for r in ok)
                row[f"{k}_max"] = max(r.get(f"{k}_max", r[k]) for r in ok)
        row["rounds"] = len(ok)
        row["timed_across_epochs"] = any(r.get("timed_across_epochs") for r in ok)
        if "build_s" in ok[0]:
            row["build_s_first"] = ok[0]["build_s"]  # the round that found no cache: what building it cost
        if len(ok) < len(rs):
            row["failed_rounds"] = len(rs) - len(ok)
        table.append(row)
    # the best stock configuration: the best of what Ultralytics' own build_dataloader builds on this machine
    # (forced rows reproduce a many-core machine's 8/12 processes for their RAM; they are shown, not the yardstick)
    stock = [r for r in table if r["name"].startswith("stock") and "img_s" in r and not r.get("forced")]
    best_of = {}  # per regime: a cached row is compared with stock's cached rows, an uncached one with uncached
    for r in stock:
        k = r.get("cache") or None
        if k not in best_of or r["img_s"] > best_of[k]["img_s"]:
            best_of[k] = r
    ref = next((r for r in table if r["name"] == reference and "error" not in r), None)
    for r in table:
        if "img_s" not in r or r["name"] in CEILINGS or "workers_effective" not in r:
            continue
        best = best_of.get(r.get("cache") or None)
        if best:
            r["speedup_vs_best_stock"] = r["img_s"] / best["img_s"]
            r["best_stock"] = best["name"]
            if r is not best:
                r["distinguishable_from_best_stock"] = distinguishable(r, best)
        if ref:
            r["speedup"], r["speedup_reference"] = r["img_s"] / ref["img_s"], ref["name"]
    ceilings = {k: next((r for r in table if r["name"] == n and "img_s" in r), None)
                for k, n in ((False, "decode-only"), (True, "cached-ceiling"))}
    for r in table:  # each row against its regime's warm ceiling measured in the same run
        c = ceilings[bool(r.get("cache"))]
        if c and "img_s" in r and r["name"] not in CEILINGS and r.get("kind") != "train":
            r["of_ceiling"] = r["img_s"] / c["img_s"]
            r["of_ceiling_rounds"] = paired_shares(rounds, r["name"], c["name"])
    return table


def paired_shares(rounds: list[list[dict]], name: str, ceiling: str) -> list[float]:
    """``name``'s rate over the ceiling's in each round that measured both: the machine's speed drifts within a
    run (the decode ceiling's own rounds have spread 17 % in one run here), and a round's two rows, minutes apart,
    share more of it than the medians of rounds far apart do."""
    out = []
    for rows in rounds:
        got = {r["name"]: r.get("img_s") for r in rows if "error" not in r}
        if got.get(name) and got.get(ceiling):
            out.append(got[name] / got[ceiling])
    return out


CEILINGS = ("decode-only", "cached-ceiling")


def distinguishable(a: dict, b: dict) -> bool | None:
    """Whether the images/s spreads (min-max over rounds) of two rows do not overlap; None with a single round
    on either side (no spread to compare)."""
    if a.get("rounds", 1) < 2 or b.get("rounds", 1) < 2:
        return None
    return a["img_s_min"] > b["img_s_max"] or b["img_s_min"] > a["img_s_max"]


def train_rows(table: list[dict]) -> None:
    """Each training row's ``fraction_of_synthetic``: its it/s over the pre-made-batches ceiling's."""
    syn = next((r for r in table if r["name"] == "train-synthetic" and "it_s" in r), None)
    for r in table:
        if r.get("kind") == "train" and "it_s" in r and syn:
            r["fraction_of_synthetic"] = r["it_s"] / syn["it_s"]


def _workers(r: dict) -> str:
    req = r.get("workers_requested")
    req = "auto" if req in (0, "0", None, "auto") else str(req)
    eff = str(r.get("workers_effective"))
    return eff if req == eff else f"{eff} (of {req})"


def headline(table: list[dict], ours: str = "cpu-auto") -> list[str]:
    """Plain words under the table: ours vs the best stock configuration, and what stock's workers really ran."""
    rows = {r["name"]: r for r in table if "error" not in r}
    names = {r["name"] for r in table}
    # the default row of each regime that ran (uncached, then cached) against that regime's best stock row
    out = _throughput_headline(rows, ours) if ours in names or not any(r.get("cache") for r in table) else []
    for mode in ("ram", "disk"):
        if f"{ours}-{mode}" in names:
            out += _throughput_headline(rows, f"{ours}-{mode}")
    out += _ceiling_lines(rows)
    train = [r for r in rows.values() if r.get("kind") == "train" and "fraction_of_synthetic" in r]
    if train:
        t = train[0]
        size = f", {t['imgsz']} px, batch {t['batch']}" if "imgsz" in t else ""
        out.append(f"Training ({t['model']} on {t['device']}{size}): " + "; ".join(
            f"{r['name']} {r['it_s']:.2f} it/s = {r['fraction_of_synthetic']:.2f} of the synthetic ceiling"
            for r in train) + ".")
    return out


def _ceiling_lines(rows: dict[str, dict]) -> list[str]:
    """Each regime's rows as fractions of its warm ceiling (decode-only: uncached; cached-ceiling: cached)."""
    out = []
    for name, cached, label in (("decode-only", False, "warm decode ceiling"), ("cached-ceiling", True,
                                                                               "cached ceiling")):
        c = rows.get(name)
        part = [r for r in rows.values() if "of_ceiling" in r and bool(r.get("cache")) == cached]
        if c is None or not part:
            continue
        extra = f"; decode + resize {c['img_s_decode_resize']:.1f}" if "img_s_decode_resize" in c else ""
        if "img_s_opencv" in c:
            extra += f"; cv2.imdecode alone {c['img_s_opencv']:.1f}"
        out.append(f"Of the {label} ({c['img_s']:.1f} img/s, {c['img_s_min']:.1f}-{c['img_s_max']:.1f}{extra}): "
                   + ", ".join(f"{r['name']} {r['of_ceiling']:.2f}{_paired(r)}" for r in part) + ".")
    return out


def _paired(r: dict) -> str:
    """The row's shares of the ceiling measured in the same round, where two or more rounds measured both."""
    v = r.get("of_ceiling_rounds") or []
    return f" (in the same round: {', '.join(f'{x:.2f}' for x in v)})" if len(v) > 1 else ""


def _throughput_headline(rows: dict[str, dict], ours: str) -> list[str]:
    o = rows.get(ours)
    if not any(r.get("kind") != "train" for r in rows.values()):
        return []
    if o is None or "best_stock" not in o:
        return [f"{ours} or every stock row failed: no comparison"]
    s = rows[o["best_stock"]]
    d = o.get("distinguishable_from_best_stock")
    verdict = {True: "the spreads do not overlap", False: "NOT distinguishable: the spreads overlap",
               None: "one round: no spread to tell them apart"}[d]
    out = [f"{ours}: {o['img_s']:.1f} img/s ({o['img_s_min']:.1f}-{o['img_s_max']:.1f} over {o['rounds']} rounds) vs "
           f"the best stock configuration Ultralytics builds here, {s['name']} ({_workers(s)} worker processes): "
           f"{s['img_s']:.1f} img/s "
           f"({s['img_s_min']:.1f}-{s['img_s_max']:.1f}): {o['img_s'] / s['img_s']:.2f}x, {verdict}.",
           f"CPU per image: {1000 * o['cpu_s_per_img']:.1f} ms vs {1000 * s['cpu_s_per_img']:.1f} ms; "
           f"peak RAM (PSS of the process tree): {o['pss_peak_gib']:.2f} vs {s['pss_peak_gib']:.2f} GiB."]
    red = rows.get(f"{ours}-reduced")
    if red is not None and "img_s" in red:
        out.append(f"With reduced_decode=True (faster, but not Ultralytics' images): {red['img_s']:.1f} img/s "
                   f"({red['img_s_min']:.1f}-{red['img_s_max']:.1f}), {red['img_s'] / s['img_s']:.2f}x the best stock.")
    stock = [r for r in rows.values() if r["name"].startswith("stock") and "workers_effective" in r]
    if stock:
        ran = "; ".join(f"{r['name']} ran {r['workers_effective']} processes, {r['pss_peak_gib']:.2f} GiB"
                        if "pss_peak_gib" in r else f"{r['name']} ({r['workers_effective']} processes) not run: "
                        f"{r['not_run']}" for r in sorted(stock, key=lambda r: r["name"]))
        out.append(f"Stock as configured: {ran}.")
    return out


def print_table(table: list[dict]) -> None:
    cols = ("name", "workers", "img/s (median)", "min-max", "it/s", "x best stock", "CPU ms/img", "cores busy",
            "PSS peak GiB", "PSS steady GiB", "rounds", "faults/img")
    print(" | ".join(f"{c:>14s}" for c in cols))
    for r in table:
        if "error" in r:
            print(f"{r['name']:>14s} | ERROR {r['error'].strip().splitlines()[-1] if r['error'].strip() else ''}")
            continue
        if r["name"] == "cached-ceiling":
            print(f"{r['name']:>14s} | {r['threads']:>14} | {r['img_s']:14.1f} | "
                  f"{r['img_s_min']:6.1f}-{r['img_s_max']:<7.1f} | {'':>14s} | warm ceiling of the cached rows: "
                  f"a held tile warped, jittered, written")
            continue
        if r["name"] == "decode-only":
            spread = f"{r['img_s_min']:6.1f}-{r['img_s_max']:<7.1f}" if "img_s_min" in r else ""
            print(f"{r['name']:>14s} | {r['threads']:>14} | {r['img_s']:14.1f} | {spread:>14s} | {'':>14s} | "
                  f"warm ceiling ({'native' if r.get('decoder') == 'native' else 'OpenCV'} decoder; cv2.imdecode "
                  f"{r.get('img_s_opencv', float('nan')):.1f}); decode + resize "
                  f"{r.get('img_s_decode_resize', float('nan')):.1f} img/s, reduced 1/2 decode "
                  f"{r['img_s_reduced']:.1f} img/s")
            continue
        if "not_run" in r:
            print(f"{r['name']:>14s} | {_workers(r):>14s} | not run: {r['not_run']}")
            continue
        if r.get("kind") == "train":
            f = r.get("fraction_of_synthetic")
            print(f"{r['name']:>14s} | {r['trainer']:>14s} | {r['img_s']:14.1f} | "
                  f"{r['img_s_min']:6.1f}-{r['img_s_max']:<7.1f} | {r['it_s']:14.2f} | "
                  f"{'' if f is None else f'{f:.2f} of synth':>14s} | {'':>14s} | {'':>14s} | "
                  f"{r['pss_peak_gib']:14.2f} | {'':>14s} | {r.get('rounds', 1):>14}")
            continue
        d = r.get("distinguishable_from_best_stock")
        x = f"{r.get('speedup_vs_best_stock', 0):.2f}" + ("" if d is None or d else " ~")
        print(f"{r['name']:>14s} | {_workers(r):>14s} | {r['img_s']:14.1f} | "
              f"{r['img_s_min']:6.1f}-{r['img_s_max']:<7.1f} | {r['it_s']:14.2f} | {x:>14s} | "
              f"{1000 * r['cpu_s_per_img']:14.1f} | {r.get('cores_busy', 0):14.2f} | {r['pss_peak_gib']:14.2f} | "
              f"{r['pss_steady_gib']:14.2f} | {r.get('rounds', 1):>14} | {r.get('faults_per_img', float('nan')):14.0f}")
    if any(r.get("distinguishable_from_best_stock") is False for r in table):
        print("(~: not distinguishable from the best stock row: their min-max spreads overlap)")
    across = [r["name"] for r in table if r.get("timed_across_epochs")]
    if across:
        print(f"(timed batches crossed an epoch boundary in {', '.join(across)}: the data set is short for the warm-up "
              f"plus the timed batches; an epoch's first batches run faster for ours, whose image cache still holds "
              f"part of the last epoch's images)")
    for line in cache_lines(table):
        print(line)


def cache_lines(table: list[dict]) -> list[str]:
    """Under the table, per cached row: its first build (seconds, with the data set's index), the cache's bytes, the
    faults it met, and the file-backed part of its PSS (a mapped disk cache: clean page cache the kernel reclaims)."""
    out = []
    for r in table:
        if not r.get("cache") or "img_s" not in r:
            continue
        what = ("full-resolution .npy per image" if r["cache"] == "disk" else "decoded arrays per process") \
            if r["kind"] == "stock" else f"one packed store, backing {r.get('store_backing')}"
        faults = "" if r["kind"] == "stock" else f", {r.get('store_errors', 0)} store faults"
        built = "found built by an earlier row, opened" if r.get("store_built_here") is False else "built"
        out.append(f"{r['name']}: cache={r['cache']!r} {built} in {r.get('build_s_first', r.get('build_s', 0)):.1f} s, "
                   f"{r.get('cache_bytes', 0) / 1e9:.2f} GB ({what}){faults}; PSS peak {r['pss_peak_gib']:.2f} GiB, of "
                   f"which file-backed {r.get('pss_file_peak_gib', 0):.2f} GiB")
    return out


def plot(table: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in table if "error" not in r and r["name"] != "decode-only" and "it_s" in r
            and r.get("kind") != "train"]
    names = [r["name"] for r in rows]
    colors = ["tab:gray" if n.startswith("stock") else "tab:green" for n in names]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    err = [[r["it_s"] - r.get("it_s_min", r["it_s"]) for r in rows], [r.get("it_s_max", r["it_s"]) - r["it_s"]
                                                                       for r in rows]]
    a1.barh(names, [r["it_s"] for r in rows], color=colors, xerr=err)
    a1.set_xlabel("it/s, median and min-max over rounds (higher is better)")
    a2.barh(names, [r["pss_peak_gib"] for r in rows], color=colors)
    a2.set_xlabel("peak PSS of the process tree, GiB (lower is better)")
    a2.set_yticklabels([])
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
