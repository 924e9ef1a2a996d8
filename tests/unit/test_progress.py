"""Progress feedback: a live line on a terminal, sparse log lines otherwise, nothing for short work."""

from __future__ import annotations

import io
import logging

from loader.progress import Progress


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_a_terminal_gets_a_live_line_with_count_size_rate_and_eta():
    out = _Tty()
    with Progress("RAM cache", 10, stream=out, quiet_s=0, redraw_s=0) as bar:  # redraw on every update
        for _ in range(10):
            bar.update(1, 2_000_000)
    text = out.getvalue()
    assert "\r" in text and "RAM cache: 10/10 images (100%), 20.00 MB" in text and "/s, ETA" in text
    assert text.endswith("done\x1b[K\n")


def test_no_terminal_logs_sparse_lines_and_an_end(caplog):
    with caplog.at_level(logging.INFO, logger="loader"):
        with Progress("indexing train", 4, "files", stream=io.StringIO(), quiet_s=0, log_every_s=0) as bar:
            for _ in range(4):
                bar.update()
    lines = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("indexing train: 2/4 files (50%)") for m in lines)
    assert lines[-1].endswith("done") and "4/4 files" in lines[-1]


def test_short_work_says_nothing(caplog):
    out = _Tty()
    with caplog.at_level(logging.INFO, logger="loader"), Progress("quick", 3, stream=out) as bar:
        bar.update(3)
    assert out.getvalue() == "" and not caplog.records
