"""Distribution comparisons for the parity tests: tolerances from the samples' own standard errors."""

from __future__ import annotations

import math

import numpy as np


def _ks(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic."""
    a, b = np.sort(a), np.sort(b)
    x = np.concatenate([a, b])
    return float(np.max(np.abs(np.searchsorted(a, x, "right") / len(a) - np.searchsorted(b, x, "right") / len(b))))


def same_distribution(ours, theirs, name: str, k: float = 4.5) -> None:
    ours, theirs = np.asarray(ours, np.float64).ravel(), np.asarray(theirs, np.float64).ravel()
    assert len(ours) >= 500 and len(theirs) >= 500, f"{name}: too few samples ({len(ours)}, {len(theirs)})"
    m1, m2, s1, s2 = ours.mean(), theirs.mean(), ours.std(ddof=1), theirs.std(ddof=1)
    se_mean = math.hypot(s1 / math.sqrt(len(ours)), s2 / math.sqrt(len(theirs)))
    se_sd = math.hypot(s1 / math.sqrt(2 * (len(ours) - 1)), s2 / math.sqrt(2 * (len(theirs) - 1)))
    assert abs(m1 - m2) <= k * se_mean + 1e-12, f"{name}: mean {m1:.6g} vs Ultralytics {m2:.6g} (SE {se_mean:.3g})"
    assert abs(s1 - s2) <= k * se_sd + 1e-12, f"{name}: SD {s1:.6g} vs Ultralytics {s2:.6g} (SE {se_sd:.3g})"
    crit = math.sqrt(-math.log(1e-4 / 2) / 2) * math.sqrt((len(ours) + len(theirs)) / (len(ours) * len(theirs)))
    d = _ks(ours, theirs)
    assert d <= crit, f"{name}: Kolmogorov-Smirnov D={d:.4f} over the 1e-4 critical value {crit:.4f}"


def same_rate(ours, theirs, name: str, k: float = 4.5) -> None:
    ours, theirs = np.asarray(ours, bool), np.asarray(theirs, bool)
    assert len(ours) >= 500 and len(theirs) >= 500, f"{name}: too few samples"
    p1, p2 = ours.mean(), theirs.mean()
    p = (ours.sum() + theirs.sum()) / (len(ours) + len(theirs))
    se = math.sqrt(max(p * (1 - p), 1e-12) * (1 / len(ours) + 1 / len(theirs)))
    assert abs(p1 - p2) <= k * se + 1e-12, f"{name}: rate {p1:.4f} vs Ultralytics {p2:.4f} (SE {se:.4f})"
