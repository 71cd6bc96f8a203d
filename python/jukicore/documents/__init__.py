"""Documents people read: the counter's PDFs (certificates of residence, the published
list of register viewings) share one Japanese font, found by :mod:`.fonts`."""

from __future__ import annotations

from .fonts import FONT_ENV, MINCHO_FAMILY, find_mincho

__all__ = ["FONT_ENV", "MINCHO_FAMILY", "find_mincho"]
