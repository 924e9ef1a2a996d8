"""Ultralytics adapter. Importing it checks the installed Ultralytics version first.

The trainer subclass and the CLI's ``train`` command build on this package.
"""

from .._version import UnsupportedUltralytics, check_ultralytics_version

ULTRALYTICS_VERSION = check_ultralytics_version()

__all__ = ["ULTRALYTICS_VERSION", "UnsupportedUltralytics", "check_ultralytics_version"]
