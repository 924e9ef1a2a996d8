"""Painters: execute plans on pixels. ``cpu`` (OpenCV threads) and ``dali`` (GPU, or DALI CPU-only mode)."""
