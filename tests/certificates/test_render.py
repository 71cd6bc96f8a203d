"""Composing and rendering (no store): items by request, the Article 7 and foreign
residents' items, wide-area issuance, the calendar, names beyond the BMP and with
variation sequences in the PDF's text and glyphs, the payload's bounds."""

from __future__ import annotations

import datetime as dt
import zlib
from pathlib import Path
from typing import Any

import pytest
from certkit import NOW, pdf_png, pdf_text
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from regkit import make_code

from jukicore.certificates import Payload, compose, render_pdf, wareki
from jukicore.certificates.items import expand_items
from jukicore.certificates.payload import (
    MAGIC,
    SIG_LEN,
    decode_payload,
    encode_payload,
    qr_png,
    split_payload,
)
from jukicore.errors import InvalidInputError

YOSHI = "\U00020BB7"  # 𠮷 (つちよし), outside the BMP
#: 葛 with an Ideographic Variation Selector of the Moji_Joho collection that IPAmj明朝
#: maps to another glyph (mj022335) than plain 葛 (mj022336)
KATSU_IVS = "葛\U000E0102"
#: a sequence the font does not register for 葛: drawn as plain 葛, kept in the text
KATSU_UNKNOWN_IVS = "葛\U000E0100"


def record(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "person_id": 1, "resident_code": make_code(1_234_567_890), "my_number": None,
        "family_name": f"{YOSHI}田", "given_name": f"{KATSU_IVS}子",
        "family_name_kana": "ヨシダ", "given_name_kana": "カツコ",
        "birth_date": dt.date(1989, 1, 8), "sex": 2, "household_id": 1,
        "relationship": "世帯主", "domicile": "東京都千代田区丸の内一丁目1番地",
        "domicile_head": f"{YOSHI}田　太郎", "address": "東京都千代田区丸の内一丁目3番6号",
        "resident_since": dt.date(2005, 4, 1), "address_since": dt.date(2019, 5, 1),
        "move_in_notified": dt.date(2019, 5, 7), "previous_address": None,
        "status": "resident", "removal_reason": None, "removal_date": None,
        "move_out_destination": None,
    }
    base.update(kw)
    return base


def payload(c: Any, **kw: Any) -> Payload:
    args: dict[str, Any] = {"number": "131016-20240603-00000001", "node_id": "131016",
                            "key_id": "ab" * 16, "issued_at": NOW, "lg_code": "131016",
                            "municipality": "東京都千代田区", "certifier": "千代田区長",
                            "composition": c}
    args.update(kw)
    return Payload(**args)


@pytest.mark.parametrize(("day", "text"), [
    (dt.date(1989, 1, 7), "昭和64年1月7日"),
    (dt.date(1989, 1, 8), "平成元年1月8日"),
    (dt.date(2019, 4, 30), "平成31年4月30日"),
    (dt.date(2019, 5, 1), "令和元年5月1日"),
    (dt.date(2024, 2, 29), "令和6年2月29日"),
    (dt.date(1926, 12, 25), "昭和元年12月25日"),
    (dt.date(1912, 7, 30), "大正元年7月30日"),
    (dt.date(1900, 1, 1), "明治33年1月1日"),
    (dt.date(1850, 1, 1), "1850年1月1日"),
])
def test_japanese_calendar(day: dt.date, text: str) -> None:
    assert wareki(day) == text


def test_optional_items_only_on_request() -> None:
    c = compose([record(my_number=123456789018)])
    values = dict(zip(c.fields(), c.members[0], strict=True))
    for item in ("relationship", "domicile", "domicile_head", "resident_code", "my_number"):
        assert values[item] == "省略"
    assert "nationality" not in values and "electoral_roll" not in values
    c = compose([record(my_number=123456789018)], items={"my_number", "domicile"})
    values = dict(zip(c.fields(), c.members[0], strict=True))
    assert values["my_number"] == "123456789018"
    assert values["domicile_head"] == f"{YOSHI}田　太郎"
    assert values["resident_code"] == "省略"


def test_article7_and_foreign_items_when_the_register_has_them() -> None:
    with pytest.raises(InvalidInputError, match="not recorded by this register"):
        compose([record()], items=expand_items(["article7"]))
    foreign = record(nationality="ベトナム", foreign_status="中長期在留者",
                     residence_status="技術・人文知識・国際業務", period_of_stay="3年",
                     stay_expires_on=dt.date(2027, 2, 28), residence_card_number="AB12345678CD",
                     electoral_roll=None, nhi_since=dt.date(2024, 3, 1),
                     elderly_care_since=None, ltc_insurance_since=None, pension_kind="第1号",
                     pension_since=dt.date(2024, 3, 1), child_allowance_since=None)
    c = compose([foreign], items=expand_items("foreign"))
    values = dict(zip(c.fields(), c.members[0], strict=True))
    assert values["nationality"] == "ベトナム"
    assert values["stay_expires_on"] == "令和9年2月28日"
    assert "pension_kind" not in values
    c = compose([foreign], items=expand_items(["nhi_since", "pension_kind"]))
    values = dict(zip(c.fields(), c.members[0], strict=True))
    assert values["nhi_since"] == "令和6年3月1日" and values["pension_kind"] == "第1号"
    assert "nationality" not in values and "pension_since" not in values


def test_wide_area_never_shows_the_domicile() -> None:
    with pytest.raises(InvalidInputError, match="広域交付"):
        compose([record()], items={"domicile"}, wide_area=True)
    with pytest.raises(InvalidInputError, match="person or the whole household"):
        compose([record(), record(person_id=2, resident_code=make_code(1_234_567_891),
                                  relationship="子")], scope="members", wide_area=True)
    c = compose([record()], wide_area=True, items={"resident_code"})
    assert c.title == "住民票の写し（広域交付）"


@pytest.mark.parametrize("items", [["blood_type"], "relationship,,x", [None]])
def test_unknown_items(items: Any) -> None:
    with pytest.raises(InvalidInputError):
        expand_items(items)


def test_names_beyond_the_bmp_and_variation_sequences(tmp_path: Path) -> None:
    c = compose([record()], items={"domicile"})
    pdf = render_pdf(payload(c))
    text = pdf_text(pdf, tmp_path)
    assert f"{YOSHI}田" in text and KATSU_IVS in text  # the sequence kept in the text
    assert "₻" not in text  # the wrong glyph another library drew for 𠮷
    assert text.count(YOSHI) == 3  # name, head, domicile's head
    c = compose([record(given_name=f"{KATSU_UNKNOWN_IVS}子")])
    assert f"{KATSU_UNKNOWN_IVS}子" in pdf_text(render_pdf(payload(c)), tmp_path)


def _glyph_png(text: str, tmp: Path) -> bytes:
    c = compose([record(family_name=text, given_name="子", domicile_head=None)])
    import tempfile

    d = Path(tempfile.mkdtemp(dir=tmp))
    return pdf_png(render_pdf(payload(c)), d, dpi=150)[0].read_bytes()


def test_the_glyphs_drawn(tmp_path: Path) -> None:
    """𠮷 is drawn with its own glyph (not 吉's), and 葛 with an IVS with the variant."""
    assert _glyph_png(YOSHI, tmp_path) != _glyph_png("吉", tmp_path)
    plain = _glyph_png("葛", tmp_path)
    assert _glyph_png(KATSU_IVS, tmp_path) != plain
    assert _glyph_png(KATSU_UNKNOWN_IVS, tmp_path) == plain  # the base glyph
    assert _glyph_png("葛", tmp_path) == plain  # the rendering is stable


def test_a_character_the_font_lacks_is_refused() -> None:
    c = compose([record(given_name="\U0001F600")])  # an emoji: no glyph in IPAmj明朝
    with pytest.raises(InvalidInputError, match="no glyph"):
        render_pdf(payload(c))


def test_payload_round_trip_and_bounds() -> None:
    key = Ed25519PrivateKey.generate()
    p = payload(compose([record()]))
    data = encode_payload(p, key)
    assert decode_payload(data, key.public_key()) == p
    with pytest.raises(InvalidInputError):
        decode_payload(data, Ed25519PrivateKey.generate().public_key())
    bomb = MAGIC + zlib.compress(b"{" * (1 << 20)) + bytes(SIG_LEN)
    with pytest.raises(InvalidInputError, match="too large"):
        split_payload(bomb)
    for bad in (b"", MAGIC, MAGIC + b"x" * 100, b"JKC2" + data[4:]):
        with pytest.raises(InvalidInputError):
            split_payload(bad)
    with pytest.raises(InvalidInputError, match="does not fit"):
        qr_png(bytes(range(256)) * 12)
