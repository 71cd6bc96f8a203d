"""Issuing certificates of residence from a register (SQLite and PostgreSQL): items by
request and right, the requester's identity and right, removed records, the fee, the
record of issuances and its audit; a refused request changes nothing."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from certkit import ADMIN, CLERK, NOW, counts, pdf_text, photo, requester
from regkit import TODAY, code_of, ev

from jukicore.access.actors import Actor
from jukicore.cards import Cards, create_pin_key
from jukicore.certificates import (
    ISSUANCE_SCHEMA,
    CardHolder,
    CardPin,
    Certificates,
    PhotoId,
    Requester,
)
from jukicore.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from jukicore.network.crypto import NodeKeys
from jukicore.register import Register

# tiny municipality: household 1 = persons 1 (鈴木太郎, head) and 2 (鈴木花子, 妻);
# household 2 = persons 3, 4, 5 (高橋); household 4 = person 10 (伊藤, alone)


def _audit(reg: Register, action: str) -> list[dict[str, object]]:
    return [r for r in reg.audit_log(actor=ADMIN).to_pylist() if r["action"] == action]


def test_own_certificate_shows_base_items_and_omits_the_rest(
        register: Register, certs: Certificates, tmp_path: Path) -> None:
    me = code_of(register, 1)
    issued = certs.issue(me, requester=requester(register, 1), actor=CLERK, now=NOW)
    text = pdf_text(issued.pdf, tmp_path)
    for shown in ("住民票の写し", "鈴木", "太郎", "スズキ", "タロウ", "世帯主", "住所",
                  "この写しは、住民票の原本と相違ないことを証明する。", "令和6年6月3日",
                  "2024年6月3日", "千代田区長", "山田", "東京都千代田区"):
        assert shown in text, shown
    # optional items not asked for: 「省略」, never their values
    assert text.count("省略") == 5  # 続柄, 本籍, 筆頭者, 住民票コード, 個人番号
    rec = register.resident(me, actor=ADMIN)
    assert rec["resident_code"] not in text
    assert rec["domicile"] not in text
    assert "花子" not in text  # the household's other member
    row = issued.record.to_pylist()[0]
    assert issued.record.schema == ISSUANCE_SCHEMA
    assert row["fee"] == 300 and row["right_kind"] == "self" and row["items"] == []
    assert row["member_codes"] == [me] and row["identity_kind"] == "photo_id"
    assert row["identity_ref"] == "driver_license:AB1234567"
    assert row["issued_at"] == NOW and row["key_id"] == certs.keys.signing_key_id
    assert certs.count() == 1
    entries = _audit(register, "certificate.issue")
    assert len(entries) == 1 and entries[0]["target"] == rec["resident_code"]
    assert row["issuance_id"] in str(entries[0]["detail"])
    reads = [r for r in _audit(register, "register.read")
             if row["issuance_id"] in str(r["detail"])]
    assert [r["target"] for r in reads] == [rec["resident_code"]]


def test_requested_items_are_shown(register: Register, certs: Certificates,
                                   tmp_path: Path) -> None:
    me = code_of(register, 1)
    register.notify(actor=ADMIN, today=TODAY, **ev("my_number", "mn1", resident_code=me,
                                                    my_number=_my_number()))
    issued = certs.issue(me, requester=requester(register, 1), actor=CLERK, now=NOW,
                         items=["relationship", "domicile", "resident_code", "my_number"])
    text = pdf_text(issued.pdf, tmp_path)
    rec = register.resident(me, actor=ADMIN)
    for value in (rec["resident_code"], rec["my_number"], rec["domicile"], "鈴木太郎"):
        assert value.replace("　", "") in text.replace(" ", "").replace("　", ""), value
    assert "省略" not in text
    assert issued.record.column("items").to_pylist()[0] == [
        "relationship", "domicile", "resident_code", "my_number"]


def _my_number(person_id: int = 0) -> int:
    from regkit import make_my_number

    return make_my_number(12345678901 + 1000 * person_id)


def _card_of(register: Register, person_id: int, tmp_path: Path, pin: str = "4321"
             ) -> tuple[Cards, str]:
    """The cards service of the register and an active My Number card of ``person_id``
    (given a My Number first), its PIN ``pin``."""
    code = code_of(register, person_id)
    register.notify(actor=ADMIN, today=TODAY, **ev("my_number", f"mn-{person_id}",
                                                    resident_code=code,
                                                    my_number=_my_number(person_id)))
    cards = Cards(register, create_pin_key(tmp_path / f"pin-{person_id}.key"))
    issued = cards.issue([{"resident_code": code, "kind": "mynumber"}], actor=CLERK,
                         today=TODAY)
    card_id = str(issued.column("card_id")[0].as_py())
    cards.activate(card_id, pin, actor=CLERK, today=TODAY)
    return cards, card_id


def test_whole_household_by_a_member_with_a_card(register: Register, keys: NodeKeys,
                                                 tmp_path: Path) -> None:
    wife = code_of(register, 2)
    cards, card_id = _card_of(register, 2, tmp_path)
    certs = Certificates(register, keys, cards=cards)
    card = Requester(CardPin(card_id, "4321"))
    issued = certs.issue(wife, household=True, requester=card, actor=CLERK, now=NOW,
                         items=["relationship"])
    text = pdf_text(issued.pdf, tmp_path)
    assert "世帯全員の住民票の写し" in text
    assert text.index("太郎") < text.index("花子")  # the head first
    assert "妻" in text and "（1／2）" in text and "（2／2）" in text
    row = issued.record.to_pylist()[0]
    assert row["scope"] == "household" and row["right_kind"] == "household"
    assert row["member_codes"] == [code_of(register, 1), wife]
    assert row["identity_ref"] == f"card:{card_id}" and row["requester_code"] == wife
    assert row["identity_kind"] == "card"
    assert "4321" not in repr(card)  # the PIN is never shown


def test_a_card_is_accepted_only_with_its_pin_checked_by_the_cards_service(
        register: Register, keys: NodeKeys, tmp_path: Path) -> None:
    """Card + PIN: a wrong PIN is refused before anything is read or issued (and counts:
    three lock the card, then even the right PIN is refused); a CardHolder handed in
    from outside, or a card without the cards service, is refused; another person's
    card gives no right to a third household's record."""
    wife = code_of(register, 2)
    cards, card_id = _card_of(register, 2, tmp_path)
    certs = Certificates(register, keys, cards=cards)
    before = counts(register)
    for bad in (Requester(CardHolder(card_id, wife)),):  # not verified here
        with pytest.raises(InvalidInputError, match="CardPin"):
            certs.issue(wife, requester=bad, actor=CLERK, now=NOW)
    with pytest.raises(InvalidInputError, match="cards service"):
        Certificates(register, keys).issue(wife, requester=Requester(CardPin(card_id, "4321")),
                                           actor=CLERK, now=NOW)
    assert counts(register) == before
    stranger = code_of(register, 10)  # another household: no right, even with a good PIN
    with pytest.raises(PermissionDeniedError):
        certs.issue(stranger, requester=Requester(CardPin(card_id, "4321")), actor=CLERK,
                    now=NOW)
    for _ in range(3):
        with pytest.raises(PermissionDeniedError):
            certs.issue(wife, requester=Requester(CardPin(card_id, "0000")), actor=CLERK,
                        now=NOW)
    with pytest.raises(PermissionDeniedError):  # locked: the right PIN no longer opens it
        certs.issue(wife, requester=Requester(CardPin(card_id, "4321")), actor=CLERK, now=NOW)
    assert certs.count() == 0
    assert cards.list(actor=ADMIN, resident_code=wife).column("state").to_pylist() == ["locked"]


def test_chosen_members(register: Register, certs: Certificates, tmp_path: Path) -> None:
    codes = [code_of(register, 5), code_of(register, 3)]
    issued = certs.issue(codes, requester=requester(register, 4), actor=CLERK, now=NOW)
    text = pdf_text(issued.pdf, tmp_path)
    assert "一郎" in text and "太郎" in text and "花子" not in text
    assert issued.record.column("scope")[0].as_py() == "members"
    with pytest.raises(InvalidInputError, match="same household"):
        certs.issue([code_of(register, 3), code_of(register, 1)],
                    requester=requester(register, 3), actor=CLERK, now=NOW)


def test_proxy_with_a_letter(register: Register, certs: Certificates, tmp_path: Path) -> None:
    principal = code_of(register, 10)
    proxy = Requester(PhotoId("passport", "TK1234567"), name="代理　人子",
                      proxy_for=principal, letter="委任状 2024-0601")
    issued = certs.issue(principal, requester=proxy, actor=CLERK, now=NOW,
                         items=["resident_code"])
    row = issued.record.to_pylist()[0]
    assert row["right_kind"] == "proxy:self" and row["letter"] == "委任状 2024-0601"
    assert row["principal_code"] == principal and row["requester_code"] is None
    assert str(principal).zfill(11) in pdf_text(issued.pdf, tmp_path)


def test_my_number_refused_to_a_proxy_and_nothing_changes(
        register: Register, certs: Certificates) -> None:
    principal = code_of(register, 10)
    proxy = Requester(PhotoId("passport", "TK1234567"), name="代理　人子",
                      proxy_for=principal, letter="委任状")
    before = counts(register)
    denied = len(_audit(register, "access.denied"))
    with pytest.raises(PermissionDeniedError, match="never to a proxy"):
        certs.issue(principal, requester=proxy, actor=CLERK, now=NOW, items=["my_number"])
    assert counts(register) == before
    assert len(_audit(register, "access.denied")) == denied + 1


@pytest.mark.parametrize("who", ["other_household", "stranger", "proxy_no_right"])
def test_no_right_is_refused_and_nothing_changes(register: Register, certs: Certificates,
                                                 who: str) -> None:
    target = code_of(register, 1)
    req = {
        "other_household": requester(register, 3),
        # a resident code that is in no record of this register
        "stranger": Requester(photo(), name="他人", resident_code=_foreign_code(register)),
        "proxy_no_right": Requester(photo(), name="代理", proxy_for=code_of(register, 10),
                                    letter="委任状"),
    }[who]
    before = counts(register)
    with pytest.raises(PermissionDeniedError):
        certs.issue(target, requester=req, actor=CLERK, now=NOW)
    with pytest.raises(PermissionDeniedError):  # not for My Number either
        certs.issue(target, requester=req, actor=CLERK, now=NOW, items=["my_number"])
    assert counts(register) == before
    assert certs.count() == 0


def _foreign_code(reg: Register) -> int:
    from regkit import make_code

    code = make_code(9_876_543_210)
    assert all(code != code_of(reg, p) for p in range(1, 16))
    return code


def test_my_number_refused_outside_the_household(register: Register,
                                                 certs: Certificates) -> None:
    before = counts(register)
    with pytest.raises(PermissionDeniedError):
        certs.issue(code_of(register, 1), requester=requester(register, 10), actor=CLERK,
                    now=NOW, items=["my_number"])
    assert counts(register) == before


def test_the_photo_id_must_name_the_requester(register: Register,
                                              certs: Certificates) -> None:
    me = code_of(register, 1)
    liar = Requester(photo(), name="高橋 太郎", resident_code=me)
    before = counts(register)
    with pytest.raises(PermissionDeniedError, match="name on the photo ID"):
        certs.issue(me, requester=liar, actor=CLERK, now=NOW)
    assert counts(register) == before


def test_removed_record_of_a_deceased_for_the_family(
        register: Register, certs: Certificates, tmp_path: Path) -> None:
    wife = code_of(register, 2)
    register.notify(actor=ADMIN, today=TODAY, **ev("death", "d1", resident_code=wife,
                                                    event_date=TODAY - dt.timedelta(days=3)))
    with pytest.raises(NotFoundError):  # no current record any more
        certs.issue(wife, requester=requester(register, 1), actor=CLERK, now=NOW)
    issued = certs.issue(wife, removed=True, requester=requester(register, 1), actor=CLERK,
                         now=NOW, items=["relationship"])
    text = pdf_text(issued.pdf, tmp_path)
    assert "除票の写し" in text and "この写しは、除票の原本と相違ないことを証明する。" in text
    assert "死亡" in text and "令和6年5月31日" in text and "花子" in text
    assert issued.record.column("kind")[0].as_py() == "removed"


def test_removed_record_of_oneself_after_moving_out(register: Register,
                                                    certs: Certificates,
                                                    tmp_path: Path) -> None:
    me = code_of(register, 10)
    register.notify(actor=ADMIN, today=TODAY, **ev("move_out", "m1", resident_code=me,
                                                    destination="大阪府大阪市北区1番地"))
    issued = certs.issue(me, removed=True, requester=Requester(photo(), name="伊藤太郎",
                                                              resident_code=me),
                         actor=CLERK, now=NOW)
    text = pdf_text(issued.pdf, tmp_path)
    assert "転出" in text and "大阪府大阪市北区1番地" in text
    # a removed person has no household right to the current household any more
    with pytest.raises(NotFoundError):
        certs.issue(me, requester=Requester(photo(), name="伊藤太郎", resident_code=me),
                    actor=CLERK, now=NOW)


def test_removed_record_past_retention(register: Register, certs: Certificates) -> None:
    me = code_of(register, 10)
    register.notify(actor=ADMIN, today=TODAY, **ev("move_out", "m1", resident_code=me,
                                                    destination="大阪府"))
    later = NOW.replace(year=NOW.year + 150)
    with pytest.raises(NotFoundError, match="retention"):
        certs.issue(me, removed=True, actor=CLERK, now=later,
                    requester=Requester(photo(), name="伊藤太郎", resident_code=me))


def test_fee_per_municipality(register: Register, certs: Certificates) -> None:
    assert register.policy_settings()["fee.certificate"] == "300"
    with pytest.raises(PermissionDeniedError):
        register.set_policy("fee.certificate", "200", actor=CLERK, now=NOW)
    for bad in ("-1", "abc", "100001", "１００", "", "1e3"):
        with pytest.raises(InvalidInputError):
            register.set_policy("fee.certificate", bad, actor=ADMIN, now=NOW)
    with pytest.raises(InvalidInputError):
        register.set_policy("fee.nothing", "10", actor=ADMIN, now=NOW)
    assert register.set_policy("fee.certificate", " 350 ", actor=ADMIN, now=NOW) == "350"
    issued = certs.issue(code_of(register, 1), requester=requester(register, 1),
                         actor=CLERK, now=NOW)
    assert issued.record.column("fee")[0].as_py() == 350
    assert any("fee.certificate: default -> 350" in str(r["detail"])
               for r in _audit(register, "policy.configure"))


@pytest.mark.parametrize("case", [
    "unknown_item", "bad_code", "no_code", "twice", "household_of_many", "requester_type",
    "naive_now", "too_many", "code_type", "item_type",
])
def test_bad_input_changes_nothing(register: Register, certs: Certificates,
                                   case: str) -> None:
    me = code_of(register, 1)
    req = requester(register, 1)
    kwargs: dict[str, object] = {"requester": req, "actor": CLERK, "now": NOW}
    who: object = me
    if case == "unknown_item":
        kwargs["items"] = ["relationship", "blood_type"]
    elif case == "bad_code":
        who = me + 1
    elif case == "no_code":
        who = []
    elif case == "twice":
        who = [me, me]
    elif case == "household_of_many":
        who, kwargs["household"] = [me, code_of(register, 2)], True
    elif case == "requester_type":
        kwargs["requester"] = "鈴木太郎"
    elif case == "naive_now":
        kwargs["now"] = dt.datetime(2024, 6, 3, 10)
    elif case == "too_many":
        who = [me] * 21
    elif case == "code_type":
        who = 1.5
    elif case == "item_type":
        kwargs["items"] = [1]
    before = counts(register)
    with pytest.raises(InvalidInputError):
        certs.issue(who, **kwargs)  # type: ignore[arg-type]
    assert counts(register) == before


@pytest.mark.parametrize("make", [
    lambda: PhotoId("library_card", "123"),
    lambda: PhotoId("passport", ""),
    lambda: PhotoId("passport", "TK 123"),
    lambda: PhotoId("passport", "x" * 33),
    lambda: CardHolder("", 1),
    lambda: CardHolder("card", 12345),  # not a resident code
])
def test_identities_are_checked(make: object) -> None:
    with pytest.raises(InvalidInputError):
        make()  # type: ignore[operator]


@pytest.mark.parametrize("kw", [
    {"name": None, "resident_code": None},           # a photo ID needs a name
    {"name": "鈴木太郎", "resident_code": None},        # neither own code nor a proxy
    {"name": "代理", "proxy_for": None, "letter": "委任状"},  # a letter without principal
    {"name": "代理", "letter": None, "proxy": True},   # a proxy without a letter
    {"name": "鈴木\x00太郎", "resident_code": "self"},  # a control character
    {"name": "鈴" * 101, "resident_code": "self"},
])
def test_requesters_are_checked(register: Register, certs: Certificates,
                                kw: dict[str, object]) -> None:
    me = code_of(register, 1)
    args = dict(kw)
    if args.pop("proxy", False):
        args["proxy_for"] = me
    if args.get("resident_code") == "self":
        args["resident_code"] = me
    before = counts(register)
    with pytest.raises(InvalidInputError):
        certs.issue(me, requester=Requester(photo(), **args),  # type: ignore[arg-type]
                    actor=CLERK, now=NOW)
    assert counts(register) == before


def test_the_policy_decides_who_issues(register: Register, certs: Certificates) -> None:
    me = code_of(register, 1)
    before = counts(register)
    for actor in (Actor.node("cs", register.lg_code, "cs"), Actor.private("shop"),
                  Actor.operator("clerk9", "011002", "clerk"),
                  Actor.operator("night", register.lg_code, "clerk")):
        with pytest.raises(PermissionDeniedError):
            certs.issue(me, requester=requester(register, 1), actor=actor,
                        now=dt.datetime(2024, 6, 3, 22, tzinfo=dt.timezone(
                            dt.timedelta(hours=9))))
    assert counts(register) == before
    # the record of issuances: supervisors and admins, audited
    with pytest.raises(PermissionDeniedError):
        certs.issuances(actor=CLERK, now=NOW)
    certs.issue(me, requester=requester(register, 1), actor=CLERK, now=NOW)
    table = certs.issuances(actor=ADMIN, now=NOW)
    assert table.num_rows == 1 and table.schema == ISSUANCE_SCHEMA
    assert certs.issuances(actor=ADMIN, since=NOW + dt.timedelta(seconds=1)).num_rows == 0


def test_keys_must_be_the_registers(register: Register) -> None:
    with pytest.raises(ConflictError):
        Certificates(register, NodeKeys.generate("011002"))


def test_unknown_subject(register: Register, certs: Certificates) -> None:
    before = counts(register)
    with pytest.raises(NotFoundError):
        certs.issue(_foreign_code(register), requester=requester(register, 1), actor=CLERK,
                    now=NOW)
    with pytest.raises(NotFoundError):
        certs.issue(code_of(register, 1), removed=True, requester=requester(register, 1),
                    actor=CLERK, now=NOW)
    assert counts(register) == before
