"""Feedback on long work (index builds, cache builds, sweeps): count, bytes, rate and ETA.

On a terminal, one line on stderr redrawn at most every 0.2 s, as Ultralytics shows its own caching. When
stderr is not a terminal (a log file, CI), no bar: an INFO line at most every 30 s, so a long build is
not silent for minutes either, and a last line when it ends. Work shorter than 2 s says nothing.
"""

from __future__ import annotations

import logging
import sys
import threading
import time

__all__ = ["Progress"]

LOG = logging.getLogger("loader")


def _human(n: float) -> str:
    for unit, f in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= f:
            return f"{n / f:.2f} {unit}"
    return f"{n:.0f} B"


class Progress:
    """``update(n, nbytes)`` as work is done (thread-safe); ``close()`` (or ``with``) when it is over."""

    def __init__(self, desc: str, total: int, unit: str = "images", stream=None, quiet_s: float = 2.0,
                 log_every_s: float = 30.0, redraw_s: float = 0.2):
        self.desc, self.total, self.unit = desc, int(total), unit
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.done = self.nbytes = 0
        self._t0 = self._last = time.perf_counter()
        self._logged = self._t0
        self.quiet_s, self.log_every_s, self.redraw_s = quiet_s, log_every_s, redraw_s
        self._shown = False
        self._lock = threading.Lock()

    def line(self) -> str:
        el = max(time.perf_counter() - self._t0, 1e-9)
        rate = self.done / el
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        pct = 100 * self.done / self.total if self.total else 100.0
        size = f", {_human(self.nbytes)}" if self.nbytes else ""
        eta_s = f"ETA {eta:.0f}s" if eta != float("inf") else "ETA ?"
        return f"{self.desc}: {self.done}/{self.total} {self.unit} ({pct:.0f}%){size}, {rate:.1f}/s, {eta_s}"

    def update(self, n: int = 1, nbytes: int = 0) -> None:
        with self._lock:
            self.done += n
            self.nbytes += nbytes
            now = time.perf_counter()
            if now - self._t0 < self.quiet_s:
                return
            if self.tty and now - self._last >= self.redraw_s:
                self._last = now
                self._shown = True
                self.stream.write("\r" + self.line() + "\033[K")
                self.stream.flush()
            elif not self.tty and now - self._logged >= self.log_every_s:
                self._logged = now
                self._shown = True
                LOG.info(self.line())

    def close(self) -> None:
        with self._lock:
            if not self._shown and time.perf_counter() - self._t0 < self.quiet_s:
                return
            if self.tty:
                self.stream.write("\r" + self.line() + " done\033[K\n")
                self.stream.flush()
            else:
                LOG.info(self.line() + " done")
            self._shown = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
