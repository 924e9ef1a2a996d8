"""Engines: the seam between the loader's orchestration and what paints pixels (``base.Engine``).

``choose(backend)`` is the one place the engine is chosen, with its logged reason; ``build`` makes it.
"""

from __future__ import annotations

import logging

from .base import Engine

__all__ = ["Engine", "choose", "build"]

LOG = logging.getLogger("loader")


def _dali_available() -> tuple[bool, str]:
    from ..kernels.dali_decode import dali_available

    return dali_available()


def choose(backend: str) -> str:
    """``"cpu"``; ``"dali"`` (DALI's engine: on the GPU when usable, else its CPU-only mode; refused when DALI
    does not import); ``"auto"``: DALI only on a usable GPU. DALI is imported only when it may be used
    (importing it costs ~0.6 s)."""
    from ..device import cuda_usable

    if backend == "cpu":
        return "cpu"
    gpu, gwhy = cuda_usable()
    if backend == "auto" and not gpu:
        LOG.info("backend auto -> cpu (%s)", gwhy)
        return "cpu"
    ok, why = _dali_available()
    if backend == "dali":
        if not ok:
            raise RuntimeError(f"backend='dali' requested but {why}")
        LOG.info("backend dali: %s", "on the GPU" if gpu else f"CPU-only mode ({gwhy})")
        return "dali"
    if not ok:  # a GPU that the DALI engine would use, but DALI does not work: say so, loudly
        LOG.warning("backend auto -> cpu although %s: %s; the CPU engine feeds the GPU instead", gwhy, why)
        return "cpu"
    LOG.info("backend auto -> dali (%s; %s)", gwhy, why)
    return "dali"


def build(name: str, source, config, workers: int, hyp) -> Engine:
    """The engine ``name`` over ``source`` (an ``ImageSource``) for ``config`` (a ``LoaderConfig``);
    ``hyp()`` returns the current hyperparameters (they change at close_mosaic)."""
    if name == "cpu":
        from .cpu import CpuEngine

        return CpuEngine(source, workers)
    if name == "dali":
        from .dali import DaliEngine

        return DaliEngine(source, config.batch_size, workers, config.dali_threads, config.hw_decoder_load,
                          config.augment, hyp)
    raise ValueError(f"unknown engine {name!r}")
