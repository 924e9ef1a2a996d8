"""Same-run ratio gates: ours / stock from one benchmark JSON, against checked-in minimums.

Absolute timings drift with the machine and the hour; the ratio of two contenders measured
in the same run (interleaved) holds on noisy machines. ``benchmarks/gates.json``::

    {"ratios": [{"ours": "cpu-auto", "stock": "stock-w8", "metric": "img_s", "min": 1.1}],
     "limits": [{"row": "dali", "metric": "cores_busy", "max": 4}]}

``limits`` bound one row's own figure (a budget such as CPU cores busy, not a speed).
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["check", "describe", "load_rules", "DEFAULT_RULES"]

DEFAULT_RULES = Path(__file__).resolve().parents[1] / "benchmarks" / "gates.json"


def load_rules(path: str | Path | None = None) -> list[dict]:
    path = Path(path) if path else DEFAULT_RULES
    cfg = json.loads(path.read_text())
    rules = cfg.get("ratios", []) + cfg.get("limits", [])
    for r in rules:
        need = {"row", "metric"} if "row" in r else {"ours", "stock", "min"}
        missing = need - set(r)
        if missing or ("row" in r and not {"min", "max"} & set(r)):
            raise ValueError(f"{path}: gate {r} lacks {sorted(missing) or 'min or max'}")
    return rules


def check(rows: list[dict], rules: list[dict]) -> list[dict]:
    """One result per rule: ``value`` (a ratio, or a row's figure for limits), ok. A contender missing or failed
    fails its gate."""
    by_name = {r["name"]: r for r in rows}
    out = []
    for rule in rules:
        metric = rule.get("metric", "img_s")
        if "row" in rule:
            a = by_name.get(rule["row"])
            if not a or "error" in a or a.get(metric) is None:
                out.append(dict(rule, value=None, ok=False, why="row missing or failed"))
                continue
            v = a[metric]
            ok = v >= rule.get("min", float("-inf")) and v <= rule.get("max", float("inf"))
            out.append(dict(rule, value=v, ok=ok, why=""))
            continue
        a, b = by_name.get(rule["ours"]), by_name.get(rule["stock"])
        if not a or not b or "error" in a or "error" in b or not b.get(metric):
            out.append(dict(rule, value=None, ratio=None, ok=False, why="contender missing or failed"))
            continue
        ratio = a[metric] / b[metric]
        out.append(dict(rule, value=ratio, ratio=ratio, ok=ratio >= rule["min"], why=""))
    return out


def describe(r: dict) -> str:
    """One line per gate result, as ``yolo-loader gate`` prints it."""
    v = "n/a" if r["value"] is None else f"{r['value']:.3f}"
    if "row" in r:
        bounds = " ".join(f"{k} {r[k]}" for k in ("min", "max") if k in r)
        what = f"{r['row']} {r['metric']} = {v} ({bounds})"
    else:
        what = f"{r['ours']} / {r['stock']} {r.get('metric', 'img_s')} = {v} (min {r['min']})"
    return f"{'PASS' if r['ok'] else 'FAIL'}  {what} {r['why']}".rstrip()
