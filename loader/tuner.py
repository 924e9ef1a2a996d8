"""Worker-count tuning: pick by measurement, remember the pick for ``workers="auto"``.

``choose`` is the decision (a plain function, tested on synthetic cost models): among
configurations whose memory fits the budget, take the *smallest* one whose throughput is
within ``tolerance`` (default 5 %) of the best. ``save`` / ``recommendation`` keep the
result per (machine, data set, image size, batch size) in
``~/.cache/yolo-loader/tuner.json`` (``YOLO_LOADER_CACHE_DIR`` moves it).
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

from .paths import cache_root

__all__ = ["choose", "key_for", "save", "recommendation", "tuner_file", "parse_budget"]


def choose(rows: list[dict], ram_budget_bytes: float | None = None, tolerance: float = 0.05) -> dict:
    """``rows``: dicts with ``workers``, ``img_s``, ``pss_peak_bytes``. Returns the chosen row.

    Raises ValueError when no configuration fits the budget (the message names the smallest need).
    """
    ok = [r for r in rows if "error" not in r and r.get("img_s")]
    if not ok:
        raise ValueError("no configuration was measured successfully")
    fits = [r for r in ok if ram_budget_bytes is None or r["pss_peak_bytes"] <= ram_budget_bytes]
    if not fits:
        least = min(ok, key=lambda r: r["pss_peak_bytes"])
        raise ValueError(f"no configuration fits the RAM budget of {ram_budget_bytes / 2**30:.2f} GiB; the smallest "
                         f"needs {least['pss_peak_bytes'] / 2**30:.2f} GiB (workers={least['workers']})")
    best = max(r["img_s"] for r in fits)
    near = [r for r in fits if r["img_s"] >= (1 - tolerance) * best]
    return min(near, key=lambda r: (r["workers"], r["pss_peak_bytes"]))


def parse_budget(text: str, total_bytes: int) -> float:
    """``"50%"`` of ``total_bytes``, or ``"12GiB"`` / ``"800MiB"`` / plain bytes."""
    t = str(text).strip()
    units = {"gib": 2**30, "gb": 1e9, "mib": 2**20, "mb": 1e6}
    if t.endswith("%"):
        return total_bytes * float(t[:-1]) / 100
    for u, f in units.items():
        if t.lower().endswith(u):
            return float(t[: -len(u)]) * f
    return float(t)


def tuner_file() -> Path:
    return cache_root() / "tuner.json"


def key_for(data: str, imgsz: int, batch: int, backend: str = "cpu") -> str:
    machine = f"{platform.node()}|{os.cpu_count()}cpu"
    return json.dumps({"machine": machine, "data": os.path.abspath(str(data)), "imgsz": int(imgsz),
                       "batch": int(batch), "backend": backend}, sort_keys=True)


def save(key: str, choice: dict, sweep: list[dict]) -> Path:
    path = tuner_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        store = json.loads(path.read_text()) if path.exists() else {}
    except (OSError, ValueError):
        store = {}
    store[key] = {"workers": choice["workers"], "img_s": choice["img_s"], "sweep": sweep}
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(store, indent=1))
    os.replace(tmp, path)
    return path


def recommendation(key: str) -> int | None:
    """The saved worker count for this key, or None (no tuning yet, or an unreadable file)."""
    path = tuner_file()
    try:
        entry = json.loads(path.read_text()).get(key)
    except (OSError, ValueError):
        return None
    if not entry:
        return None
    w = entry.get("workers")
    return int(w) if isinstance(w, int) and w > 0 else None
