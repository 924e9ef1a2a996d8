"""The engine's ``yolo-loader`` commands: demo data and dataset index checks (``integration.cli`` adds the rest)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

__all__ = ["main"]


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 1920x1080, got {text!r}") from None
    return w, h


def _cmd_demo_data(a) -> int:
    from .demo_data import make_demo_dataset

    t0 = time.perf_counter()
    y = make_demo_dataset(a.out, count=a.count, size=a.size, quality=a.quality, seed=a.seed, nasty=a.nasty,
                          val_count=a.val_count, flat=a.flat, polygons=a.polygons)
    print(f"wrote {y} ({a.count} train images, {a.size[0]}x{a.size[1]}, q{a.quality}"
          f"{', with bad inputs' if a.nasty else ''}) in {time.perf_counter() - t0:.1f}s")
    return 0


def _cmd_index(a) -> int:
    from .dataset import DatasetError, build_index

    try:
        ix = build_index(a.source, a.split, cache=not a.no_cache, verbose=not a.quiet)
    except DatasetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(ix.summary())
    info = dict(ix.build_info, cache_file=ix.cache_file, index_bytes=ix.nbytes())
    print(json.dumps(info) if a.json else " ".join(f"{k}={v}" for k, v in info.items()))
    return 0


DESCRIPTION = "Make demo detection data and check data sets for the fast YOLO data loader."


def build_parser(extend=None, description: str = DESCRIPTION, epilog: str | None = None) -> argparse.ArgumentParser:
    """The ``yolo-loader`` parser with the engine's commands; ``extend(subparsers)`` adds more."""
    p = argparse.ArgumentParser(prog="yolo-loader", description=description, epilog=epilog,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="cmd", required=True)

    d = sub.add_parser("demo-data", help="write a demo detection data set (JPEGs, labels, data.yaml), the same for the same seed")
    d.add_argument("--out", required=True, help="output folder")
    d.add_argument("--count", type=int, default=64, help="train images (default 64)")
    d.add_argument("--val-count", type=int, default=None, help="val images (default max(4, count/8))")
    d.add_argument("--size", type=_size, default=(1920, 1080), help="WxH (default 1920x1080)")
    d.add_argument("--quality", type=int, default=90, help="JPEG quality (default 90)")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--nasty", action="store_true", help="add every kind of bad input the index must handle")
    d.add_argument("--flat", action="store_true", help="grey background, one unique colour per rectangle (debugging)")
    d.add_argument("--polygons", action="store_true", help="label rows are the objects' outlines (polygons), not boxes")
    d.set_defaults(fn=_cmd_demo_data)

    i = sub.add_parser("index", help="check a data set: images, boxes, and every skipped file with its reason")
    i.add_argument("source", help="data.yaml, image folder, or .txt list of images")
    i.add_argument("--split", default="train")
    i.add_argument("--no-cache", action="store_true")
    i.add_argument("--json", action="store_true")
    i.add_argument("--quiet", action="store_true", help="do not name skipped files one by one")
    i.set_defaults(fn=_cmd_index)
    if extend is not None:
        extend(sub)
    return p


def main(argv=None, parser: argparse.ArgumentParser | None = None) -> int:
    a = (parser or build_parser()).parse_args(argv)
    if a.verbose:
        logging.getLogger("loader").setLevel(logging.DEBUG)
    return a.fn(a)


if __name__ == "__main__":
    sys.exit(main())
