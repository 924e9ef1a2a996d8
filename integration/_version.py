"""The Ultralytics releases whose trainer contract this adapter is written against."""

from __future__ import annotations

import re

__all__ = ["SUPPORTED", "UnsupportedUltralytics", "check_ultralytics_version", "parse_version"]

SUPPORTED = ((8, 4, 150), (8, 5, 0))  # [low, high): the contract in shared/design.md section 3


class UnsupportedUltralytics(ImportError):
    pass


def parse_version(text: str) -> tuple[int, int, int]:
    m = re.match(r"^\s*(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    if not m:
        raise UnsupportedUltralytics(f"cannot read the Ultralytics version {text!r}")
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def check_ultralytics_version(version: str | None = None) -> str:
    """Return the installed version, or raise :class:`UnsupportedUltralytics` saying what to install."""
    if version is None:
        from importlib import metadata

        try:
            version = metadata.version("ultralytics")
        except metadata.PackageNotFoundError:
            raise UnsupportedUltralytics(
                "integration.ultralytics needs the ultralytics package: pip install 'ultralytics>=8.4.150,<8.5'"
            ) from None
    v = parse_version(version)
    lo, hi = SUPPORTED
    if not lo <= v < hi:
        raise UnsupportedUltralytics(
            f"ultralytics {version} is installed, but integration.ultralytics supports "
            f">={'.'.join(map(str, lo))},<{'.'.join(map(str, hi[:2]))} (its trainer and batch contract changes "
            f"between minor releases); install a supported release: pip install 'ultralytics>=8.4.150,<8.5'")
    return version
