"""Which images and labels a split serves, from Ultralytics' arguments: ``fraction``, ``classes``, ``single_cls``.

Ultralytics' own rules, taken from the installed version where it has them: ``get_split_fraction`` (a scalar
``fraction`` limits the train split only; a list gives [train, val, test]; an ``int`` is an image count), and a
data set marked ``complete`` (limited when it was downloaded) is not limited again."""

from __future__ import annotations

from loader.dataset import DatasetIndex, build_index

__all__ = ["split_fraction", "index_for"]


def split_fraction(args, data: dict, split: str):
    """The ratio or count of ``split`` that ``build_yolo_dataset`` would use."""
    if data.get("complete"):
        return 1.0
    try:
        from ultralytics.data.utils import get_split_fraction
    except ImportError:  # older Ultralytics: a scalar ratio, for training only
        return float(args.fraction) if split == "train" else 1.0
    return get_split_fraction(args.fraction, split)


def index_for(dataset_path, split: str, args, data: dict, mode: str) -> DatasetIndex:
    """The index of one split as the stock dataset of ``mode`` ("train" or "val") would hold it."""
    fraction = split_fraction(args, data, "train" if mode == "train" else getattr(args, "split", None) or "val")
    return build_index(dataset_path, split, names=data["names"], fraction=fraction, classes=args.classes,
                       single_cls=bool(args.single_cls))
