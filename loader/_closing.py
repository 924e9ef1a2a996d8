"""Context-manager and finalizer behaviour for anything with an idempotent ``close()``."""

from __future__ import annotations


class Closing:
    """``with obj:`` closes on exit; garbage collection closes too (best effort, errors swallowed)."""

    def close(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
