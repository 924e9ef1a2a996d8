"""Images at training size: one ``ImageSource`` per loader, with its stores (the bounded buffer, the packed
store of ``cache="ram"`` / ``cache="disk"``) behind it, and OpenCV decoding (``decode``)."""

from .decode import DecodeError, SourceReadError, decode_resized, read_bytes, reduction_for
from .lru import ImageCache
from .packed import PackedStore, StoreUnavailable
from .source import ImageSource, UnreadableImage

__all__ = ["ImageSource", "UnreadableImage", "ImageCache", "DecodeError", "SourceReadError", "decode_resized",
           "read_bytes", "reduction_for", "PackedStore", "StoreUnavailable"]
