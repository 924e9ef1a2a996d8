"""Memory accounting: PSS of a process tree (RSS double counts shared pages; PSS splits them)."""

from __future__ import annotations

__all__ = ["tree_pss"]


def tree_pss(pid: int | None = None) -> int:
    """Bytes of PSS summed over process ``pid`` (default: this one) and all its children."""
    import psutil

    me = psutil.Process(pid)
    try:
        procs = [me] + me.children(recursive=True)
    except psutil.Error:
        procs = [me]
    total = 0
    for p in procs:
        try:
            total += p.memory_full_info().pss
        except psutil.Error:
            pass
    return total
