"""jukicore: the core of Japan's Basic Resident Registration Network (Juki-net).

Modules:

- :mod:`jukicore.codes` -- check digits, resident-code allocation, code blocks, My Numbers
- :mod:`jukicore.synth` -- synthetic municipalities (needs the ``synth`` extra)
- :mod:`jukicore.errors` -- the one exception hierarchy, rooted at :class:`JukiError`
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from . import codes, errors
from .errors import InvalidInputError, JukiError

try:
    __version__ = version("jukicore")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = ["InvalidInputError", "JukiError", "__version__", "codes", "errors"]
