"""The DALI engine: batched JPEG decode + resize to Ultralytics' load size (``decoder``), plans painted
by one DALI graph per batch (``painter``), and the per-loader resources that tie them (``engine``).
On the GPU when CUDA is usable (nvJPEG, tiles and batches stay there), else with DALI's CPU
operators (``device_id=None``, the correctness path). DALI itself is imported when a pipeline is built.
"""

from .decoder import DaliDecoder, dali_available
from .engine import DaliEngine
from .painter import DaliPainter, PainterConfig

__all__ = ["DaliDecoder", "DaliEngine", "DaliPainter", "PainterConfig", "dali_available"]
