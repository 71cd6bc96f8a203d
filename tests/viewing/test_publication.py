"""The half-year publication of viewings: its periods, the CSV read back, the PDF's text
(pdftotext) and page (pdfinfo, pdftoppm), the audit, and never a resident's data; on
SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from regkit import ADMIN
from viewkit import BOSS, CLERK, WORK, Unchanged, at, audit_rows, private_request, public_request

from jukicore.errors import InvalidInputError, MissingFontError, PermissionDeniedError
from jukicore.viewing import PUBLICATION_SCHEMA, Viewings
from jukicore.viewing.publication import CSV_HEADER

# poppler-utils (pdftotext, pdftoppm) are installed by tools/system-deps.sh (make build)
# and .ci/run: a missing one fails the tests that need it, it never skips them
_POPPLER = "poppler-utils is installed by tools/system-deps.sh (make build) and .ci/run"

JULY_1 = dt.date(2024, 7, 1)


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """The directory the publication goes to (empty; the store is beside it)."""
    d = tmp_path / "published"
    d.mkdir()
    return d


def _half_year(desk: Viewings) -> tuple[int, int]:
    """A public body's viewing on 3 June and 1 July, a university's on 3 June."""
    pub = public_request(desk)
    priv = private_request(desk)
    for rid in (pub, priv):
        desk.approve(rid, actor=BOSS, now=WORK)
    v = desk.record(priv, viewers={"山田太郎": "passport"}, actor=CLERK, now=WORK)
    desk.finish(v.session_id, actor=CLERK, now=WORK + dt.timedelta(minutes=50))
    desk.record(pub, viewers={"防衛次郎": "staff_id"}, actor=CLERK, now=at(WORK.date(), 14))
    desk.record(pub, viewers={"防衛次郎": "staff_id"}, actor=CLERK, now=at(JULY_1))
    return pub, priv


def _pdf_text(path: Path) -> str:
    assert shutil.which("pdftotext"), _POPPLER
    out = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True,
                         check=True, text=True).stdout
    return out


def _resident_strings(desk: Viewings) -> set[str]:
    """Every name, address and birth date of the register (removed records too)."""
    out: set[str] = set()
    for r in desk._reg.residents(actor=ADMIN, include_removed=True).to_pylist():
        out |= {f"{r['family_name']}{r['given_name']}", f"{r['family_name']}　{r['given_name']}",
                r["address"], r["street"], r["birth_date"].isoformat(),
                f"{r['birth_date'].year}年{r['birth_date'].month}月{r['birth_date'].day}日"}
    return out


def test_the_first_half_published_as_csv_and_pdf(desk: Viewings, out: Path) -> None:
    _half_year(desk)
    pub = desk.publish(2024, 1, out, actor=BOSS, today=JULY_1, now=at(JULY_1))
    assert pub.table.schema == PUBLICATION_SCHEMA
    assert (pub.csv.name, pub.pdf.name) == ("viewings-2024H1.csv", "viewings-2024H1.pdf")
    assert sorted(p.name for p in out.iterdir()) == [pub.csv.name, pub.pdf.name]
    # the CSV read back: a header, one row per viewing of the half-year (not 1 July's)
    raw = pub.csv.read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8"), newline="")))
    assert tuple(rows[0]) == CSV_HEADER
    body = [dict(zip(CSV_HEADER, r, strict=True)) for r in rows[1:]]
    assert [(r["閲覧日"], r["区分"], r["請求者・申出者"], r["閲覧件数"]) for r in body] == [
        ("2024-06-03", "申出", "東都大学社会学研究室", "11"),
        ("2024-06-03", "請求", "自衛隊東京地方協力本部", "3"),
    ]
    uni, sdf = body
    assert uni["代表者"] == "教授 東都一郎" and sdf["代表者"] == ""
    assert uni["利用目的"].startswith("統計調査、世論調査、学術研究")
    assert sdf["利用目的"] == "法令で定める事務の遂行"
    assert sdf["利用目的の概要"] == "自衛官の募集事務"
    assert uni["閲覧に係る住民の範囲"] == "丸の内・神田（全年齢）"
    assert sdf["閲覧に係る住民の範囲"] == \
        "全域（1999年1月1日から2004年12月31日までに生まれた者）"
    # the PDF: A4, its text the same rows
    info = subprocess.run(["pdfinfo", str(pub.pdf)], capture_output=True, text=True,
                          check=True).stdout
    assert "(A4)" in info and re.search(r"Pages:\s+1\n", info), info
    text = _pdf_text(pub.pdf)
    for want in ("住民基本台帳の一部の写しの閲覧の状況の公表", "東京都千代田区",
                 "2024年1月1日から2024年6月30日まで", "公表日：2024年7月1日", "閲覧 2 件",
                 "東都大学社会学研究室", "自衛隊東京地方協力本部", "自衛官の募集事務",
                 "2024-06-03", "丸の内・神田（全年齢）"):
        assert want in text, want
    assert "2024-07-01" not in text
    # never a resident's data, in either file
    csv_text = raw.decode("utf-8")
    flat = "".join(text.split())
    for s in _resident_strings(desk):
        assert s not in csv_text and "".join(s.split()) not in flat, s
    # the files' digests are in the audit entry
    entry = [e for e in audit_rows(desk._reg) if e["action"] == "viewing.publish"][-1]
    assert entry["actor"] == str(BOSS) and entry["target"] == "viewing publication 2024H1"
    assert hashlib.sha256(raw).hexdigest() == pub.csv_sha256 and pub.csv_sha256 in \
        entry["detail"]
    assert hashlib.sha256(pub.pdf.read_bytes()).hexdigest() in entry["detail"]
    assert entry["detail"].startswith("2 viewings, 14 records")


def test_the_pdf_renders_on_a4_landscape(desk: Viewings, out: Path) -> None:
    assert shutil.which("pdftoppm"), _POPPLER
    _half_year(desk)
    pub = desk.publish(2024, 1, out, actor=BOSS, today=JULY_1)
    subprocess.run(["pdftoppm", "-r", "30", "-png", "-singlefile", str(pub.pdf),
                    str(out / "page")], check=True)
    png = (out / "page.png").read_bytes()
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert abs(width / height - 297 / 210) < 0.01
    assert len(png) > 2000  # not a blank page


def test_the_second_half_and_an_empty_half(desk: Viewings, out: Path) -> None:
    _half_year(desk)
    pub = desk.publish(2024, 2, out, actor=BOSS, today=dt.date(2025, 1, 1))
    assert pub.table.column("viewed_on").to_pylist() == [JULY_1]
    assert pub.table.column("records").to_pylist() == [3]
    empty = desk.publish(2023, 2, out, actor=BOSS, today=JULY_1)
    assert empty.table.num_rows == 0
    assert "この期間の閲覧はありませんでした" in _pdf_text(empty.pdf)
    assert empty.csv.read_text(encoding="utf-8").splitlines() == [",".join(CSV_HEADER)]


@pytest.mark.parametrize(("year", "half", "today"), [
    (2024, 1, dt.date(2024, 6, 30)),      # the last day of the period: not over
    (2024, 2, dt.date(2024, 12, 31)),
    (2025, 1, JULY_1),                    # a period to come
    (2024, 3, JULY_1),
    (2024, 0, JULY_1),
    (2024, True, JULY_1),
    ("2024", 1, JULY_1),
    (1999, 1, JULY_1),
    (2024, 1, dt.datetime(2024, 7, 1, 10)),
    (2024, 1, "2024-07-01"),
])
def test_a_wrong_period_is_refused(desk: Viewings, out: Path, year: object,
                                   half: object, today: object) -> None:
    _half_year(desk)
    before = Unchanged(desk)
    with pytest.raises(InvalidInputError):
        desk.publish(year, half, out, actor=BOSS, today=today)  # type: ignore[arg-type]
    before.check(denied=0)
    assert list(out.iterdir()) == []


def test_publishing_is_a_supervisors(desk: Viewings, out: Path) -> None:
    _half_year(desk)
    before = Unchanged(desk)
    for actor in (CLERK, ADMIN):
        with pytest.raises(PermissionDeniedError, match=r"viewing\.publish"):
            desk.publish(2024, 1, out, actor=actor, today=JULY_1)
    before.check(denied=2)
    assert list(out.iterdir()) == []


def test_without_the_font_nothing_is_published(desk: Viewings, out: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    _half_year(desk)
    monkeypatch.setenv("JUKICORE_MINCHO_FONT", str(out.parent / "missing.ttf"))
    before = Unchanged(desk)
    with pytest.raises(MissingFontError):
        desk.publish(2024, 1, out, actor=BOSS, today=JULY_1)
    before.check(denied=0)
    assert list(out.iterdir()) == []


def test_a_second_publication_replaces_the_files_whole(desk: Viewings,
                                                       out: Path) -> None:
    _half_year(desk)
    a = desk.publish(2024, 1, out, actor=BOSS, today=JULY_1)
    b = desk.publish(2024, 1, out, actor=BOSS, today=JULY_1)
    assert (a.csv_sha256, a.pdf_sha256) == (b.csv_sha256, b.pdf_sha256)  # reproducible
    assert sorted(p.name for p in out.iterdir()) == [a.csv.name, a.pdf.name]
    with pytest.raises(InvalidInputError, match="not a directory"):
        desk.publish(2024, 1, a.csv, actor=BOSS, today=JULY_1)


def test_a_cell_a_spreadsheet_would_run_is_defused(desk: Viewings, out: Path) -> None:
    rid = private_request(desk, requester="=HYPERLINK(\"http://x\")", representative="@SUM(1)")
    desk.approve(rid, actor=BOSS, now=WORK)
    desk.record(rid, viewers={"山田太郎": "passport"}, actor=CLERK, now=WORK)
    pub = desk.publish(2024, 1, out, actor=BOSS, today=JULY_1)
    [_, row] = list(csv.reader(io.StringIO(pub.csv.read_text(encoding="utf-8"))))
    assert row[2] == "'=HYPERLINK(\"http://x\")" and row[3] == "'@SUM(1)"
    assert pub.table.column("requester").to_pylist() == ["=HYPERLINK(\"http://x\")"]


def test_a_character_the_font_lacks_is_marked_never_dropped(desk: Viewings,
                                                            out: Path) -> None:
    """𠮷 (outside the BMP) is printed; an emoji IPAmj明朝 has no glyph for becomes 〓 in
    the PDF, with a note; the CSV keeps the text as recorded."""
    rid = private_request(desk, requester="株式会社😀𠮷野調査")
    desk.approve(rid, actor=BOSS, now=WORK)
    desk.record(rid, viewers={"山田太郎": "passport"}, actor=CLERK, now=WORK)
    pub = desk.publish(2024, 1, out, actor=BOSS, today=JULY_1)
    assert "株式会社😀𠮷野調査" in pub.csv.read_bytes().decode("utf-8")
    text = _pdf_text(pub.pdf)
    assert "株式会社〓𠮷野調査" in text and "〓は書体にない文字" in "".join(text.split())
