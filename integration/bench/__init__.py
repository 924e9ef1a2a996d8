"""``yolo-loader bench``: ours vs the stock Ultralytics loader, each contender in its own process.

``spec`` (what a child measures), ``contenders`` (the loaders it builds), ``child`` (the measurement, in
the child process), ``report`` (summary, table, chart), ``main`` (the command: contender matrix, rounds).
"""

from .main import DEMO_DIR, ROOT, add_arguments, contenders, main, run, run_child
from .spec import RunSpec

__all__ = ["RunSpec", "DEMO_DIR", "ROOT", "add_arguments", "contenders", "main", "run", "run_child"]
