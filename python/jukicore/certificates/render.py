"""The certificate as a PDF people read: A4, the municipality's layout, IPAmj明朝.

Layout (the conventions of municipal 住民票の写し): the title; the issuance number; the
household's address and head; one table per member (label, value), the optional items
not asked for printed as 「省略」; 「以下余白」; the certification sentence
(「この写しは、住民票の原本と相違ないことを証明する。」, 除票 for a removed record); the
issue date in 和暦 and the Western calendar; the certifying office (the mayor's title
and name, configurable); the QR code of the signed payload; on every page's foot the
issuance number and the page.

The font: every glyph comes from IPAmj明朝 (:func:`jukicore.documents.find_mincho`).
The font is 46 MB with 58,000 glyphs: parsing and subsetting it with fpdf2 (fontTools)
costs about half a second per document, so each document first gets its own subset of
exactly the characters it prints, cut by HarfBuzz's subsetter (``uharfbuzz``, about a
millisecond), which fpdf2 then embeds. Text is shaped by HarfBuzz
(``set_text_shaping``, for the texts that hold a variation selector; fpdf2 draws the
others, characters beyond the BMP included, itself and several times faster): an
Ideographic Variation Sequence in a name (葛 + U+E0100)
selects the font's variant glyph, and the text extracted from the PDF keeps the
sequence. A character the font lacks refuses the document
(:class:`~jukicore.errors.InvalidInputError`): a name is never printed with a
substitute glyph.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from jukicore.errors import InvalidInputError, MissingDependencyError

from .compose import Composition
from .items import wareki, western
from .payload import Payload

__all__ = ["render_pdf", "text_strings"]

_JST_OFFSET_H = 9
_MARGIN = 15.0
_LABEL_W = 52.0
_QR_MM = 42.0
_SHAPING_FREE = frozenset(range(0x20, 0x7F))
#: Variation selectors: no glyph of their own (cmap format 14 selects the base's variant).
_SELECTORS = (range(0xFE00, 0xFE10), range(0xE0100, 0xE01F0))


def _hb() -> Any:
    try:
        import uharfbuzz
    except ImportError as exc:  # pragma: no cover - a dependency
        raise MissingDependencyError("certificates need the 'uharfbuzz' package") from exc
    return uharfbuzz


@lru_cache(maxsize=2)
def _face(path: str) -> tuple[Any, frozenset[int]]:
    hb = _hb()
    face = hb.Face(hb.Blob.from_file_path(path))
    return face, frozenset(face.unicodes)


def _is_selector(cp: int) -> bool:
    return any(cp in r for r in _SELECTORS)


def _subset_font(text: Iterable[str]) -> bytes:
    """IPAmj明朝 cut to the characters of ``text`` (and ASCII), by HarfBuzz."""
    from jukicore.documents import find_mincho

    hb = _hb()
    face, have = _face(str(find_mincho()))
    cps: set[int] = set(_SHAPING_FREE)
    for t in text:
        cps.update(ord(c) for c in t)
    missing = sorted(c for c in cps if c not in have and not _is_selector(c)
                     and c not in (0x0A, 0x0D))
    if missing:
        shown = ", ".join(f"U+{c:04X} ({chr(c)})" for c in missing[:5])
        raise InvalidInputError(f"IPAmj明朝 has no glyph for {shown}: the certificate cannot"
                                " show these characters")
    inp = hb.SubsetInput()
    inp.unicode_set.update(cps)
    return bytes(hb.subset(face, inp).blob.data)


def _issue_date(payload: Payload) -> tuple[str, str]:
    import datetime as dt

    local = payload.issued_at.astimezone(dt.timezone(dt.timedelta(hours=_JST_OFFSET_H)))
    return wareki(local.date()), western(local.date())


def text_strings(payload: Payload) -> list[str]:
    """Every text the certificate of ``payload`` prints, in order (what the verifier
    expects to read back)."""
    c = payload.composition
    out = [c.title, f"交付番号 {payload.number}", "住所", c.address, "世帯主", c.head]
    n = len(c.members)
    for i in range(n):
        out.append(f"（{i + 1}／{n}）")
        for label, value in c.rows(i):
            out += [label, value]
    jp, west = _issue_date(payload)
    out += ["以下余白", c.certification, f"{jp}（{west}）", payload.certifier]
    return out


def _fixed_strings(office: str | None) -> list[str]:
    return ["電子署名付き二次元コード", "jukicore certificate verify", office or "", "頁"]


def render_pdf(payload: Payload, qr_png: bytes | None = None, *,
               office: str | None = None) -> bytes:
    """The certificate of ``payload`` as PDF bytes (unsigned), with the QR code
    ``qr_png`` (:func:`jukicore.certificates.payload.qr_png`) when given. ``office``: a
    line under the certifier (e.g. the section that issued it)."""
    from fpdf import FPDF

    c = payload.composition
    strings = text_strings(payload)
    font = _subset_font([*strings, *_fixed_strings(office)])
    number = payload.number

    class _Pdf(FPDF):
        def footer(self) -> None:
            self.set_y(-12)
            self.set_font("mj", size=8)
            self.cell(0, 5, f"交付番号 {number}　{self.page_no()}頁", align="C")

    fd, tmp = tempfile.mkstemp(suffix=".ttf", prefix="jukicore-cert-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(font)
        pdf = _Pdf(orientation="portrait", unit="mm", format="A4")
        pdf.set_creation_date(payload.issued_at)
        pdf.set_title(c.title)
        pdf.set_author(payload.certifier)
        pdf.set_lang("ja")
        pdf.set_margins(_MARGIN, _MARGIN, _MARGIN)
        pdf.set_auto_page_break(True, margin=18)
        pdf.add_font("mj", fname=tmp)
        _draw(pdf, payload, c, qr_png, office)
        return bytes(pdf.output())
    finally:
        os.unlink(tmp)


def _shaped(pdf: Any, text: str) -> None:
    """Shape with HarfBuzz only text that holds a variation selector: elsewhere fpdf2's
    own layout draws the same glyphs (non-BMP included) several times faster."""
    pdf.set_text_shaping(any(_is_selector(ord(ch)) for ch in text))


def _table(pdf: Any, rows: list[tuple[str, str]]) -> None:
    """Rows of (label, value) in two bordered columns, the labels shaded; a long value
    wraps; a row never splits across pages."""
    line_h, pad = 5.0, 2.0
    value_w = pdf.epw - _LABEL_W
    for label, value in rows:
        _shaped(pdf, value)
        fits = pdf.get_string_width(value) <= value_w - 2 * pad
        lines = 1 if fits else len(pdf.multi_cell(value_w - 2 * pad, line_h, value,
                                                  dry_run=True, output="LINES"))
        h = line_h * lines + 0.8
        if pdf.get_y() + h > pdf.page_break_trigger:
            pdf.add_page()
        x, y = pdf.l_margin, pdf.get_y()
        pdf.set_fill_color(235, 235, 235)
        pdf.rect(x, y, _LABEL_W, h, style="DF")
        pdf.rect(x + _LABEL_W, y, value_w, h, style="D")
        _shaped(pdf, label)
        pdf.set_xy(x + pad, y + 0.4)
        pdf.cell(_LABEL_W - 2 * pad, line_h, label)
        _shaped(pdf, value)
        pdf.set_xy(x + _LABEL_W + pad, y + 0.4)
        if fits and not pdf.text_shaping:
            pdf.cell(value_w - 2 * pad, line_h, value)
        else:  # (fpdf2's cell() draws a shaped variation sequence with the base glyph)
            pdf.multi_cell(value_w - 2 * pad, line_h, value)
        pdf.set_xy(x, y + h)
    pdf.set_text_shaping(False)


def _draw(pdf: Any, payload: Payload, c: Composition, qr: bytes | None,
          office: str | None) -> None:
    pdf.add_page()
    pdf.set_font("mj", size=18)
    pdf.cell(0, 12, c.title, align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("mj", size=9)
    pdf.cell(0, 6, f"交付番号 {payload.number}", align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    pdf.set_font("mj", size=10)
    _table(pdf, [("住所", c.address), ("世帯主", c.head)])
    n = len(c.members)
    for i in range(n):
        pdf.ln(1.5)
        pdf.set_font("mj", size=9)
        pdf.cell(0, 5, f"（{i + 1}／{n}）", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("mj", size=10)
        _table(pdf, c.rows(i))
    pdf.ln(2)
    pdf.set_font("mj", size=10)
    pdf.cell(0, 6, "以下余白", align="R", new_x="LMARGIN", new_y="NEXT")
    # the certification, the date, the office, and the QR code beside them: kept together
    needed = max(_QR_MM + 12, 48)
    if pdf.get_y() + needed > pdf.h - 18:
        pdf.add_page()
    top = pdf.get_y() + 4
    text_w = pdf.epw - _QR_MM - 6
    jp, west = _issue_date(payload)
    pdf.set_xy(_MARGIN, top)
    pdf.set_font("mj", size=12)
    pdf.multi_cell(text_w, 7, c.certification, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.cell(text_w, 7, f"{jp}（{west}）", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.set_font("mj", size=14)
    _shaped(pdf, payload.certifier)
    pdf.multi_cell(text_w, 8, payload.certifier, align="R", new_x="LMARGIN", new_y="NEXT")
    if office:
        pdf.set_font("mj", size=9)
        _shaped(pdf, office)
        pdf.multi_cell(text_w, 5, office, align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_shaping(False)
    if qr is not None:
        import io

        x = pdf.w - _MARGIN - _QR_MM
        pdf.image(io.BytesIO(qr), x=x, y=top, w=_QR_MM, h=_QR_MM)
        pdf.set_xy(x - 4, top + _QR_MM)
        pdf.set_font("mj", size=6.5)
        pdf.multi_cell(_QR_MM + 8, 3.2,
                       "電子署名付き二次元コード\njukicore certificate verify", align="C")
