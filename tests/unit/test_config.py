"""LoaderConfig: defaults, one mapping of Ultralytics' spellings, refusals that name the key, frozen."""

from __future__ import annotations

import dataclasses

import pytest

from loader import LoaderConfig, UnsupportedHyp
from loader.config import cache_mode
from loader.plan import Hyp


def test_defaults_and_spellings():
    cfg = LoaderConfig.from_kwargs()
    assert cfg.imgsz == 896 and cfg.workers == "auto" and cfg.backend == "auto" and cfg.cache is None
    assert isinstance(cfg.hyp, Hyp) and cfg.split_name == "train"
    assert LoaderConfig.from_kwargs(augment=False).split_name == "val"
    assert LoaderConfig.from_kwargs(workers=None).workers == "auto"
    assert LoaderConfig.from_kwargs(hyp={"mixup": 0.2, "lr0": 0.01}).hyp.mixup == 0.2  # unrelated keys ignored
    for value, mode in [(True, "ram"), ("True", "ram"), ("ram", "ram"), ("disk", "disk"), (False, None),
                        (None, None), ("false", None)]:
        assert cache_mode(value) == mode and LoaderConfig.from_kwargs(cache=value).cache == mode


@pytest.mark.parametrize("kw,error,key", [
    ({"batch_size": 0}, ValueError, "batch_size"), ({"imgsz": 33}, ValueError, "imgsz"),
    ({"imgsz": 16}, ValueError, "imgsz"), ({"workers": 0}, ValueError, "workers"),
    ({"workers": "many"}, ValueError, "workers"), ({"backend": "tpu"}, ValueError, "backend"),
    ({"rect": True}, UnsupportedHyp, "rect"), ({"cache": "memory"}, UnsupportedHyp, "cache"),
    ({"prefetch": 0}, ValueError, "prefetch"), ({"rank": 2, "world_size": 2}, ValueError, "rank"),
    ({"world_size": 0}, ValueError, "world_size"), ({"max_bad_fraction": 1.5}, ValueError, "max_bad_fraction"),
    ({"hw_decoder_load": -0.1}, ValueError, "hw_decoder_load"), ({"dali_threads": 0}, ValueError, "dali_threads"),
    ({"pad": float("nan")}, ValueError, "pad"), ({"stride": 0}, ValueError, "stride"),
    ({"hyp": {"fliplr": 2.0}}, UnsupportedHyp, "fliplr"), ({"hyp": {"cutmix": 1.1}}, UnsupportedHyp, "cutmix"),
    ({"hyp": {"augmentations": [print]}}, UnsupportedHyp, "augmentations.*arbitrary per-sample"),
    ({"threads": 4}, TypeError, "threads"),
])
def test_bad_values_are_refused_by_name(kw, error, key):
    with pytest.raises(error, match=key):
        LoaderConfig.from_kwargs(**kw)


def test_frozen_and_revalidated_on_change():
    cfg = LoaderConfig.from_kwargs(batch_size=8)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.batch_size = 4
    assert cfg.replace(batch_size=4).batch_size == 4 and cfg.batch_size == 8
    with pytest.raises(ValueError, match="batch_size"):
        cfg.replace(batch_size=0)


def test_reduced_decode_modes_are_validated():
    assert LoaderConfig.from_kwargs().reduced_decode == "equivalent"
    for mode in (True, False, "equivalent"):
        assert LoaderConfig.from_kwargs(reduced_decode=mode).reduced_decode == mode
    with pytest.raises(ValueError, match="reduced_decode"):
        LoaderConfig.from_kwargs(reduced_decode="always")
