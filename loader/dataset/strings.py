"""Many strings in two numpy arrays (one bytes blob, one offset table).

A list of 100k ``str`` objects is 100k refcounted objects: every forked worker that
touches them copies their pages (pytorch issue 13246). Two arrays are two objects.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["StringTable"]


class StringTable(Sequence):
    __slots__ = ("blob", "offsets")

    def __init__(self, blob: np.ndarray, offsets: np.ndarray):
        self.blob = np.asarray(blob, dtype=np.uint8)
        self.offsets = np.asarray(offsets, dtype=np.int64)

    @classmethod
    def from_list(cls, items) -> StringTable:
        encoded = [s.encode("utf-8", "surrogateescape") for s in items]
        offsets = np.zeros(len(encoded) + 1, np.int64)
        if encoded:
            np.cumsum([len(b) for b in encoded], out=offsets[1:])
        blob = np.frombuffer(b"".join(encoded), dtype=np.uint8).copy()
        return cls(blob, offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = len(self)
        i = int(i)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"index {i} out of range for {n} strings")
        return self.blob[self.offsets[i]:self.offsets[i + 1]].tobytes().decode("utf-8", "surrogateescape")

    def take(self, idx) -> StringTable:
        """A new table with the strings at ``idx`` (in that order)."""
        return StringTable.from_list([self[i] for i in np.asarray(idx).tolist()])

    def tolist(self) -> list[str]:
        data = self.blob.tobytes()
        o = self.offsets.tolist()
        return [data[o[k]:o[k + 1]].decode("utf-8", "surrogateescape") for k in range(len(o) - 1)]

    def equals(self, other: StringTable) -> bool:
        return np.array_equal(self.offsets, other.offsets) and np.array_equal(self.blob, other.blob)

    def __repr__(self) -> str:
        return f"StringTable({len(self)} strings, {self.blob.nbytes} bytes)"
