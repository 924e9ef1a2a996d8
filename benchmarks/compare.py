"""Ours vs the stock Ultralytics loader: see ``integration/bench/`` (also ``yolo-loader bench``)."""

import sys

from integration.bench import main

if __name__ == "__main__":
    sys.exit(main())
