"""Images at training size: one ``ImageSource`` per loader, with its stores (the bounded buffer, the shared
RAM arena, the disk cache) behind it, and OpenCV decoding (``decode``)."""

from .decode import DecodeError, decode_resized, read_bytes, reduction_for
from .lru import ImageCache
from .source import ImageSource, UnreadableImage

__all__ = ["ImageSource", "UnreadableImage", "ImageCache", "DecodeError", "decode_resized", "read_bytes",
           "reduction_for"]
