"""Dataset index: which images, their upright sizes and boxes, what was skipped and why."""

from .index import DatasetIndex, Skipped, build_index, default_cache_dir, fraction_count, select_labels
from .probe import REASONS
from .source import IMG_FORMATS, DatasetError, Source, img2label_path, load_data_yaml, resolve_source
from .strings import StringTable

__all__ = ["DatasetIndex", "Skipped", "build_index", "default_cache_dir", "fraction_count", "select_labels",
           "REASONS", "IMG_FORMATS", "DatasetError",
           "Source", "img2label_path", "load_data_yaml", "resolve_source", "StringTable"]
