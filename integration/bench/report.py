"""The bench's report: rows of several rounds summarized (medians), the table, the PNG chart."""

from __future__ import annotations

import statistics
from pathlib import Path

__all__ = ["summarize", "print_table", "plot"]


def summarize(rounds: list[list[dict]], reference: str | None = None) -> list[dict]:
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
        row["rounds"] = len(ok)
        table.append(row)
    stock = [r for r in table if r["name"].startswith("stock") and "error" not in r]
    best = max(stock, key=lambda r: r["img_s"]) if stock else None
    ref = next((r for r in table if r["name"] == reference and "error" not in r), None)
    for r in table:
        if "img_s" not in r or r["name"] == "decode-only":
            continue
        if best:
            r["speedup_vs_best_stock"] = r["img_s"] / best["img_s"]
            r["best_stock"] = best["name"]
        if ref:
            r["speedup"], r["speedup_reference"] = r["img_s"] / ref["img_s"], ref["name"]
    return table


def print_table(table: list[dict]) -> None:
    cols = ("name", "workers", "img/s", "it/s", "x reference", "CPU s/img", "cores busy", "PSS peak GiB",
            "PSS steady GiB")
    print(" | ".join(f"{c:>14s}" for c in cols))
    for r in table:
        if "error" in r:
            print(f"{r['name']:>14s} | ERROR {r['error'].splitlines()[-1] if r['error'] else ''}")
            continue
        if r["name"] == "decode-only":
            print(f"{r['name']:>14s} | {r['threads']:>14} | {r['img_s']:14.1f} | {'':>14s} | {'':>14s} | "
                  f"(reduced 1/2 decode: {r['img_s_reduced']:.1f} img/s)")
            continue
        w = f"{r['workers_effective']}" + (f" (of {r['workers_requested']})"
                                            if str(r["workers_requested"]) != str(r["workers_effective"]) else "")
        print(f"{r['name']:>14s} | {w:>14s} | {r['img_s']:14.1f} | {r['it_s']:14.2f} | "
              f"{r.get('speedup', 0):14.2f} | {r['cpu_s_per_img']:14.4f} | {r.get('cores_busy', 0):14.2f} | "
              f"{r['pss_peak_gib']:14.2f} | "
              f"{r['pss_steady_gib']:14.2f}")


def plot(table: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in table if "error" not in r and r["name"] != "decode-only"]
    names = [r["name"] for r in rows]
    colors = ["tab:gray" if n.startswith("stock") else "tab:green" for n in names]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    a1.barh(names, [r["it_s"] for r in rows], color=colors)
    a1.set_xlabel("it/s (higher is better)")
    a2.barh(names, [r["pss_peak_gib"] for r in rows], color=colors)
    a2.set_xlabel("peak PSS of the process tree, GiB (lower is better)")
    a2.set_yticklabels([])
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
