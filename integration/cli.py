"""``yolo-loader``: the engine's commands (``loader.cli``) plus ``train`` through Ultralytics."""

from __future__ import annotations

import sys

import yaml

from loader.cli import build_parser as _engine_parser

__all__ = ["main", "parse_key_values"]


def parse_key_values(items: list[str]) -> dict:
    """``["imgsz=896", "batch=128", "amp=False"]`` -> typed dict, as ``yolo train`` reads them."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"error: expected key=value, got {item!r}")
        out[key.strip()] = yaml.safe_load(value) if value != "" else None
    return out


def _cmd_train(a) -> int:
    from ultralytics import YOLO

    from integration.ultralytics import fast_trainer

    kv = parse_key_values(a.args)
    model = kv.pop("model", "yolo11n.yaml")
    trainer = fast_trainer(backend=a.backend, workers=a.workers, prefetch=a.prefetch)
    YOLO(model).train(trainer=trainer, **kv)
    return 0


def _cmd_bench(a) -> int:
    from integration.bench import run

    return run(a)


def build_parser():
    p = _engine_parser()
    sub = next(x for x in p._actions if x.dest == "cmd")
    # the engine's placeholder `bench` is replaced by the comparison against stock Ultralytics
    sub.choices.pop("bench", None)
    sub._choices_actions = [c for c in sub._choices_actions if c.dest != "bench"]
    from integration.bench import add_arguments

    b = sub.add_parser("bench", help="compare our loader with the stock Ultralytics loader (default: demo set)")
    add_arguments(b)
    b.set_defaults(fn=_cmd_bench)
    t = sub.add_parser("train", help="train with Ultralytics, fed by this loader (same key=value args as `yolo train`)")
    t.add_argument("args", nargs="*", help="model=yolo11n.yaml data=data.yaml imgsz=896 batch=128 epochs=100 ...")
    t.add_argument("--backend", default=None, help="auto | cpu | dali (default: auto)")
    t.add_argument("--workers", default=None, help="painter threads, or auto (default)")
    t.add_argument("--prefetch", type=int, default=None, help="batches prepared ahead (default 2)")
    t.set_defaults(fn=_cmd_train)
    return p


def main(argv=None) -> int:
    import logging

    a = build_parser().parse_args(argv)
    if a.verbose:
        logging.getLogger("loader").setLevel(logging.DEBUG)
    if getattr(a, "workers", None) not in (None, "auto"):
        a.workers = int(a.workers)
    return a.fn(a)


if __name__ == "__main__":
    sys.exit(main())
