"""Finding the PDFs' font (IPAmj明朝): the installed file, the override, a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from jukicore.documents import fonts
from jukicore.errors import JukiError, MissingDependencyError, MissingFontError


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    fonts._find.cache_clear()


def test_the_installed_font_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(fonts.FONT_ENV, raising=False)
    path = fonts.find_mincho()
    assert path.name == "ipamjm.ttf" and path.is_file()
    # a TrueType file (what fpdf2 embeds), not a placeholder
    assert path.read_bytes()[:4] in (b"\x00\x01\x00\x00", b"true")


def test_the_environment_names_another_file(monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    copy = tmp_path / "ipamjm.ttf"
    copy.write_bytes(fonts.find_mincho().read_bytes()[:64])
    monkeypatch.setenv(fonts.FONT_ENV, str(copy))
    assert fonts.find_mincho() == copy


@pytest.mark.parametrize("bad", ["missing.ttf", "."])
def test_a_bad_override_is_an_error_that_says_how(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path, bad: str) -> None:
    monkeypatch.setenv(fonts.FONT_ENV, str(tmp_path / bad))
    with pytest.raises(MissingFontError) as err:
        fonts.find_mincho()
    assert isinstance(err.value, MissingDependencyError) and isinstance(err.value, JukiError)
    assert "fonts-ipamj-mincho" in str(err.value) and fonts.FONT_ENV in str(err.value)


def test_no_font_anywhere_is_an_error_never_a_fallback(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    monkeypatch.delenv(fonts.FONT_ENV, raising=False)
    monkeypatch.setattr(fonts, "_DIRS", (tmp_path,))
    monkeypatch.setenv("PATH", str(tmp_path))  # no fc-match either
    with pytest.raises(MissingFontError, match="IPAmj"):
        fonts.find_mincho()
