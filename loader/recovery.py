"""The bad-data policy: an image unreadable at training time is replaced, deterministically, and counted; an
epoch in which too many samples needed a replacement stops with the files named (as SPDL budgets failures).

``attempt`` runs a painting step on a plan; when the step meets an unreadable image it asks ``replan`` for the
same sample without that image (the same random draws pick the replacement, so the result depends only on
which files are bad, never on timing or worker count) and tries again, up to ``MAX_TRIES`` times.
"""

from __future__ import annotations

import logging
import threading

from .images import UnreadableImage

__all__ = ["BadDataError", "BadDataPolicy"]

LOG = logging.getLogger("loader")


class BadDataError(RuntimeError):
    """Too many images failed to read during an epoch (or one failed in validation); names them."""


class BadDataPolicy:
    """Replacements of one epoch: ``attempt`` records them, ``check`` refuses more than ``max_bad_fraction``."""

    MAX_TRIES = 16

    def __init__(self, max_bad_fraction: float, im_files):
        self.max_bad_fraction, self.im_files = float(max_bad_fraction), im_files
        self._replaced: list[tuple[int, int]] = []  # (epoch position, unreadable index) this epoch
        self._lock = threading.Lock()

    def attempt(self, step, plan, replan, position: int, epoch: int):
        """``step(plan)``; on ``UnreadableImage``, ``plan = replan(exclude, error)`` and again. Returns the plan
        that succeeded. ``replan`` may raise (validation needs every image)."""
        exclude: set[int] = set()
        for _ in range(self.MAX_TRIES):
            try:
                step(plan)
                return plan
            except UnreadableImage as e:
                exclude.add(e.index)
                with self._lock:
                    self._replaced.append((position, e.index))
                plan = replan(frozenset(exclude), e)
        raise BadDataError(f"sample {position} of epoch {epoch}: {self.MAX_TRIES} unreadable images in a row "
                           f"({[self.im_files[i] for i in sorted(exclude)]})")

    def start_epoch(self) -> None:
        with self._lock:
            self._replaced.clear()

    @property
    def replaced(self) -> list[tuple[int, int]]:
        with self._lock:
            return list(self._replaced)

    def check(self, n_samples: int, epoch: int, final: bool = False) -> None:
        """Raise when more than ``max_bad_fraction`` of the epoch's ``n_samples`` needed a replacement; at the end
        of the epoch (``final``), log which files were replaced."""
        replaced = self.replaced
        if not replaced:
            return
        files = sorted({self.im_files[i] for _, i in replaced})
        # samples, not retries: one sample with two bad tiles, or replanned after a reset, counts once
        n_replaced = len({position for position, _ in replaced})
        if n_replaced > self.max_bad_fraction * n_samples:
            raise BadDataError(f"{n_replaced} samples of epoch {epoch} needed a replacement image, "
                               f"more than max_bad_fraction={self.max_bad_fraction} of {n_samples}; "
                               f"unreadable files: {files[:20]}{' ...' if len(files) > 20 else ''}")
        if final:
            LOG.warning("epoch %d: %d samples used a replacement for %d unreadable files: %s", epoch,
                        n_replaced, len(files), files[:20])
