"""Memory accounting: PSS of a process tree (RSS double counts shared pages; PSS splits them), and the tree's
CPU time, both over the same walk of the tree."""

from __future__ import annotations

__all__ = ["tree_processes", "tree_pss", "tree_pss_file", "tree_pss_parts", "tree_cpu_seconds", "tree_minor_faults"]


def tree_processes(pid: int | None = None) -> list:
    """psutil processes: ``pid`` (default: this one) and all its children."""
    import psutil

    me = psutil.Process(pid)
    try:
        return [me] + me.children(recursive=True)
    except psutil.Error:
        return [me]


def tree_pss_parts(pid: int | None = None) -> tuple[int, int]:
    """(bytes of PSS, of which file-backed: mapped files such as a mapped disk cache, clean page cache the kernel
    reclaims under pressure) summed over process ``pid`` (default: this one) and all its children. One read of
    each process's ``/proc/<pid>/smaps_rollup``: the kernel walks every mapping for it (~10 ms of CPU for a
    loader with 1.6 GiB mapped), so the bench's meter reads it once per sample, not once per figure. psutil's
    full smaps where the kernel has no rollup (file-backed part 0 then)."""
    import psutil

    pss = file = 0
    for p in tree_processes(pid):
        try:
            with open(f"/proc/{p.pid}/smaps_rollup") as f:
                fields = dict(line.split(":", 1) for line in f if line.startswith(("Pss:", "Pss_File:")))
            pss += int(fields["Pss"].split()[0]) * 1024
            file += int(fields.get("Pss_File", "0").split()[0]) * 1024
        except (OSError, KeyError, ValueError):
            try:
                pss += p.memory_full_info().pss
            except psutil.Error:
                pass
    return pss, file


def tree_pss(pid: int | None = None) -> int:
    """Bytes of PSS summed over process ``pid`` (default: this one) and all its children."""
    return tree_pss_parts(pid)[0]


def tree_pss_file(pid: int | None = None) -> int:
    """Bytes of file-backed PSS summed over the tree (see ``tree_pss_parts``)."""
    return tree_pss_parts(pid)[1]


def tree_minor_faults(pid: int | None = None, seen: dict[int, int] | None = None) -> int:
    """Minor page faults of the tree (``/proc/PID/stat``; 0 where there is none): what a fresh mapping per
    decoded frame costs. ``seen`` as in ``tree_cpu_seconds``."""
    seen = {} if seen is None else seen
    for p in tree_processes(pid):
        try:
            with open(f"/proc/{p.pid}/stat", "rb") as f:
                seen[p.pid] = int(f.read().rsplit(b")", 1)[1].split()[7])  # minflt, after the command's name
        except (OSError, IndexError, ValueError):
            pass
    return sum(seen.values())


def tree_cpu_seconds(pid: int | None = None, seen: dict[int, float] | None = None) -> float:
    """User + system CPU seconds of the tree. ``seen`` (pid -> last reading) keeps children that have exited
    counted by their last reading."""
    import psutil

    seen = {} if seen is None else seen
    for p in tree_processes(pid):
        try:
            t = p.cpu_times()
            seen[p.pid] = t.user + t.system
        except psutil.Error:
            pass
    return sum(seen.values())
