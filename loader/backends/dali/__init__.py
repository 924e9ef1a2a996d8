"""DALI stage: JPEG decode + resize to the Ultralytics load size, batched, on the GPU (nvJPEG, ``mixed``)
when CUDA is usable, else with DALI's CPU operators (``device_id=None``, the correctness path).

This is the first part of the DALI engine: plans are still painted by the CPU painter from the
decoded tiles. Composition on the GPU is the next step (see the README).
"""

from .decoder import DaliDecoder, dali_available

__all__ = ["DaliDecoder", "dali_available"]
