"""The ``loader`` logger prints to stderr unless the application configured logging itself."""

from __future__ import annotations

import logging
import sys

LOGGER = logging.getLogger("loader")


def setup_default_logging(level: int = logging.INFO) -> None:
    if LOGGER.handlers or logging.getLogger().handlers:
        return
    h = logging.StreamHandler(sys.stderr)
    h.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    LOGGER.addHandler(h)
    LOGGER.setLevel(level)
