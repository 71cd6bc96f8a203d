"""The font of every PDF jukicore writes: IPAmj明朝 (IPAmj Mincho).

Why this font: residents' names use characters far beyond JIS X 0208 (the 住基統一文字
and 戸籍統一文字 sets, characters outside the Basic Multilingual Plane such as 𠮷).
IPAmj明朝 was made by the Information-technology Promotion Agency for exactly these
sets (文字情報基盤, about 58,000 glyphs) and is free to embed (IPA Font License v1.0).
Debian packages it as ``fonts-ipamj-mincho``; ``make build`` installs it when it runs
as root on Debian, and says what to do otherwise.

Where it is looked for, first found wins:

1. the file named by the environment variable ``JUKICORE_MINCHO_FONT``
   (an error if it is set to something that is not a readable file);
2. the places Debian and a user's font directory put it;
3. ``fc-match`` (fontconfig), when installed.

When none has it, :func:`find_mincho` raises :class:`~jukicore.errors.MissingFontError`
saying how to install it: a certificate is never printed in a fallback font that would
drop or substitute characters of a name.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

from jukicore.errors import MissingFontError

__all__ = ["FONT_ENV", "MINCHO_FAMILY", "find_mincho"]

FONT_ENV = "JUKICORE_MINCHO_FONT"
MINCHO_FAMILY = "IPAmj Mincho"
_FILE_NAMES = ("ipamjm.ttf",)
_DIRS = (
    Path("/usr/share/fonts/truetype/ipamj"),
    Path("/usr/share/fonts/opentype/ipamj"),
    Path("/usr/local/share/fonts"),
    Path("~/.local/share/fonts").expanduser(),
    Path("~/.fonts").expanduser(),
)
_HOW = ("install it: on Debian or Ubuntu `apt-get install fonts-ipamj-mincho` (as root), "
        "or download IPAmj明朝 from https://moji.or.jp/mojikiban/font/ and set "
        f"{FONT_ENV} to its ipamjm.ttf")


def _fc_match() -> Path | None:
    exe = shutil.which("fc-match")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "-f", "%{file}", MINCHO_FAMILY], capture_output=True,
                             text=True, timeout=10, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    # fc-match always answers with some font: only the one asked for counts
    return Path(out) if out and Path(out).name in _FILE_NAMES else None


@lru_cache(maxsize=4)
def _find(env: str | None) -> Path:
    if env is not None:
        p = Path(env)
        if not p.is_file() or not os.access(p, os.R_OK):
            raise MissingFontError(f"{FONT_ENV}={env!r} is not a readable font file; {_HOW}")
        return p
    for d in _DIRS:
        for name in _FILE_NAMES:
            if (d / name).is_file():
                return d / name
    found = _fc_match()
    if found is not None:
        return found
    raise MissingFontError(f"the font {MINCHO_FAMILY} (IPAmj明朝) is not installed; {_HOW}")


def find_mincho() -> Path:
    """The path of IPAmj明朝's ``ipamjm.ttf`` (see the module's text for where it is
    looked for); :class:`MissingFontError` when it cannot be found."""
    return _find(os.environ.get(FONT_ENV) or None)
