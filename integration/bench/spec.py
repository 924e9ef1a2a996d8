"""A typed run spec: what one bench child measures. The same spec drives ``bench``, ``tune`` and
``benchmarks/dali_knobs.py``; it travels to the child as JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

__all__ = ["RunSpec", "KINDS"]

KINDS = ("decode", "cached-ceiling", "stock", "ours", "dali", "train")


@dataclass(frozen=True)
class RunSpec:
    """``kind``: ``stock`` (Ultralytics' own loader), ``ours`` (the CPU engine), ``dali`` (the DALI engine) or
    ``decode`` (plain JPEG decoding: the ceiling without a pixel cache) or ``cached-ceiling`` (a held
    training-size tile warped, jittered and written into a batch per image: the ceiling of a cached regime). ``name``: the row's name.
    ``workers``: worker processes (stock) or painter threads (ours; 0 or "auto": auto). ``forced``: stock
    with exactly ``workers`` processes (Ultralytics' InfiniteDataLoader), not capped at the core count.
    ``batches``: timed batches; ``warmup``: batches before timing (None: until buffers are full).
    ``cache``: None, "ram" or "disk". ``delay``: seconds slept per timed batch (a deliberately slowed
    contender, for the gate tests). ``reduced_decode``: ours with this DCT-reduced decode mode (None: the
    loader's default). Training rows (kind ``train``): ``train`` (``stock``, ``cpu``, ``dali`` or
    ``synthetic``), ``model`` (a yaml: no weights), ``device`` (``cpu`` or a CUDA index); ``batches`` timed
    iterations after ``warmup``."""

    kind: str
    name: str
    data: str
    imgsz: int = 896
    batch: int = 32
    batches: int = 10
    workers: int | str = 0
    forced: bool = False
    cache: str | None = None
    warmup: int | None = None
    dali_threads: int | None = None
    hw_decoder_load: float | None = None
    delay: float = 0.0
    reduced_decode: bool | str | None = None
    train: str | None = None
    model: str = "yolo11n.yaml"
    device: str = "cpu"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> RunSpec:
        d = json.loads(text)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})
