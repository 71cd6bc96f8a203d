"""The published list of viewings: CSV (UTF-8) and PDF (A4, IPAmj明朝).

What the law has published (Art. 11 para. 3, Art. 11-2 para. 12 and the ministry's
ordinance): who asked (the body; the private party, and a corporation's representative),
the purpose (its summary), the day of the viewing and the range of residents viewed; and
here how many records were shown. Never a resident's data: the rows come from the
viewing tables only (:meth:`jukicore.viewing.Viewings.publication`).
"""

from __future__ import annotations

import csv
import datetime as dt
import io

import pyarrow as pa

from .rules import Period

__all__ = ["CSV_HEADER", "render_csv", "render_pdf"]

#: The CSV's and the PDF's column headings, in the order of PUBLICATION_SCHEMA.
CSV_HEADER: tuple[str, ...] = ("閲覧日", "区分", "請求者・申出者", "代表者", "利用目的",
                               "利用目的の概要", "閲覧に係る住民の範囲", "閲覧件数")
#: A cell a spreadsheet would take for a formula starts with one of these: it gets a
#: leading apostrophe (OWASP's advice against CSV injection).
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.date):
        return value.isoformat()
    text = str(value)
    return f"'{text}" if text.startswith(_FORMULA) else text


def render_csv(table: pa.Table) -> bytes:
    """The rows as CSV (RFC 4180: CRLF, quoted where needed), UTF-8 without a BOM, with
    :data:`CSV_HEADER`."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(CSV_HEADER)
    for r in table.to_pylist():
        w.writerow([_cell(r[n]) for n in table.column_names])
    return buf.getvalue().encode("utf-8")


def render_pdf(table: pa.Table, period: Period, municipality: str,
               published: dt.date) -> bytes:
    """The rows as an A4 document in IPAmj明朝 (landscape: eight columns stay readable at
    9 points); :class:`~jukicore.errors.MissingFontError` without the font."""
    from fpdf import FPDF
    from fpdf.fonts import FontFace, TTFFont

    from jukicore.documents import find_mincho

    font = find_mincho()
    pdf = FPDF(orientation="landscape", unit="mm", format="A4")
    pdf.set_title(f"住民基本台帳の一部の写しの閲覧の状況 {period.label}")
    pdf.set_creator("jukicore")
    # dated by the publication, not the clock: the same list makes the same file
    pdf.set_creation_date(dt.datetime.combine(published, dt.time(), dt.UTC))
    pdf.set_auto_page_break(True, margin=15)
    pdf.add_font("mincho", "", str(font))
    face = pdf.fonts["mincho"]
    covered: frozenset[int] = frozenset(face.cmap) if isinstance(face, TTFFont) else frozenset()
    replaced = False

    def shown(text: str) -> str:
        """``text`` with each character the font has no glyph for as 〓 (geta, the printer's
        mark of a missing character): never dropped silently. The CSV keeps the text."""
        nonlocal replaced
        out = "".join(c if ord(c) in covered else "〓" for c in text)
        replaced |= out != text
        return out

    pdf.add_page()
    pdf.set_font("mincho", size=15)
    pdf.cell(0, 10, "住民基本台帳の一部の写しの閲覧の状況の公表", align="C",
             new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("mincho", size=10)
    pdf.cell(0, 6, f"{shown(municipality)}　対象期間：{period.japanese}", align="C",
             new_x="LMARGIN", new_y="NEXT")
    pdf.cell(0, 6, f"公表日：{published.year}年{published.month}月{published.day}日"
             f"　閲覧 {table.num_rows} 件", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.set_font("mincho", size=9)
    if table.num_rows == 0:
        pdf.cell(0, 8, "この期間の閲覧はありませんでした。", align="C")
    else:
        head = FontFace(emphasis=None, fill_color=(225, 225, 225))
        with pdf.table(col_widths=(20, 12, 38, 24, 52, 52, 50, 16), headings_style=head,
                       line_height=5, text_align="LEFT") as t:
            row = t.row()
            for h in CSV_HEADER:
                row.cell(h)
            for r in table.to_pylist():
                row = t.row()
                for n in table.column_names:
                    v = r[n]
                    row.cell("" if v is None else v.isoformat() if isinstance(v, dt.date)
                             else f"{v:,}" if isinstance(v, int) else shown(str(v)))
    pdf.ln(4)
    pdf.set_font("mincho", size=8)
    pdf.multi_cell(0, 4, "区分：請求＝国又は地方公共団体の機関の請求（住民基本台帳法第11条）、"
                   "申出＝個人又は法人の申出（同法第11条の2）。閲覧できる事項は氏名・住所・"
                   "生年月日・性別の4項目に限られます。"
                   + ("〓は書体にない文字です（CSVには元の文字のまま記載しています）。"
                      if replaced else ""))
    return bytes(pdf.output())
