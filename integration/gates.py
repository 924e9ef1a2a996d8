"""Same-run ratio gates: ours / stock from one benchmark JSON, against checked-in minimums.

Absolute timings drift with the machine and the hour; the ratio of two contenders measured
in the same run (interleaved) holds on noisy machines. ``benchmarks/gates.json``::

    {"ratios": [{"ours": "cpu-auto", "stock": "stock-w8", "metric": "img_s", "min": 1.1}]}
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["check", "load_rules", "DEFAULT_RULES"]

DEFAULT_RULES = Path(__file__).resolve().parents[1] / "benchmarks" / "gates.json"


def load_rules(path: str | Path | None = None) -> list[dict]:
    path = Path(path) if path else DEFAULT_RULES
    rules = json.loads(path.read_text())["ratios"]
    for r in rules:
        missing = {"ours", "stock", "min"} - set(r)
        if missing:
            raise ValueError(f"{path}: gate {r} lacks {sorted(missing)}")
    return rules


def check(rows: list[dict], rules: list[dict]) -> list[dict]:
    """One result per rule: ratio, minimum, ok. A contender missing or failed fails its gate."""
    by_name = {r["name"]: r for r in rows}
    out = []
    for rule in rules:
        metric = rule.get("metric", "img_s")
        a, b = by_name.get(rule["ours"]), by_name.get(rule["stock"])
        if not a or not b or "error" in a or "error" in b or not b.get(metric):
            out.append(dict(rule, ratio=None, ok=False, why="contender missing or failed"))
            continue
        ratio = a[metric] / b[metric]
        out.append(dict(rule, ratio=ratio, ok=ratio >= rule["min"], why=""))
    return out
