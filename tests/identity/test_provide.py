"""Identity confirmation for agencies: legal purposes, answers, provision records,
disclosure and embargo (jukicore.identity.provide), on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest

from jukicore.access.actors import Actor
from jukicore.codes import CodeRegistry
from jukicore.errors import InvalidInputError, NotFoundError, PermissionDeniedError
from jukicore.identity.provide import FourItems
from jukicore.identity.purposes import Purpose, default_purposes
from jukicore.identity.store import IDENTITY_SCHEMA, IdentityStore, create_identity_store

MUNI_A, MUNI_B = "131016", "131041"
D = dt.date(2024, 4, 1)
NOW = dt.datetime(2026, 12, 1, 3, 0, tzinfo=dt.UTC)
PENSION = Actor.agency("jps")
_codes = [int(c) for c in CodeRegistry().generate(50)]


def change(seq: int, i: int, **kw: Any) -> dict[str, Any]:
    row = {"seq": seq, "resident_code": _codes[i], "previous_resident_code": None,
           "family_name": "髙橋", "given_name": f"花子{i}", "birth_date": dt.date(1980, 1, 2),
           "sex": 2, "address": "東京都千代田区丸の内1丁目1番1号", "status": "resident",
           "change_date": D, "change_reason": "load"}
    row.update(kw)
    return row


def apply(st: IdentityStore, sender: str, pid: str, rows: list[dict[str, Any]]) -> None:
    st.apply_changes(sender=sender, packet_id=pid, first_seq=rows[0]["seq"],
                     last_seq=rows[-1]["seq"],
                     changes=pa.Table.from_pylist(rows, schema=IDENTITY_SCHEMA),
                     actor=st.node_id)


@pytest.fixture
def center(db_target: str) -> Iterator[IdentityStore]:
    st = create_identity_store(db_target, node_id="center", kind="center")
    apply(st, MUNI_A, "a1", [change(i + 1, i) for i in range(6)])
    # 1: moves to another address; 2: dies; 3: code change to code 10; 4: moves out abroad
    apply(st, MUNI_A, "a2", [
        change(7, 1, address="東京都千代田区丸の内2丁目1番1号", change_reason="move_within",
               change_date=dt.date(2025, 5, 1)),
        change(8, 2, status="removed", change_reason="death", change_date=dt.date(2025, 6, 1)),
        change(9, 10, previous_resident_code=_codes[3], given_name="花子3",
               change_reason="code_change", change_date=dt.date(2025, 7, 1)),
        change(10, 4, status="removed", change_reason="move_out",
               change_date=dt.date(2025, 8, 1)),
    ])
    yield st
    st.close()


def _provisions(st: IdentityStore) -> list[tuple[Any, ...]]:
    with st._b.session(write=False) as s:
        return s.query("SELECT resident_code, agency, purpose_id, answer, items, actor,"
                       " embargo_until FROM provision_detail ORDER BY request_no")


def _audit(st: IdentityStore, action: str) -> list[tuple[Any, ...]]:
    with st._b.session(write=False) as s:
        return s.query("SELECT actor, target, detail FROM audit WHERE action = ? ORDER BY id",
                       (action,))


def test_the_shipped_purposes_are_in_force_at_their_tier(db_target: str) -> None:
    with create_identity_store(db_target, node_id="center", kind="center") as st:
        ids = {p.purpose for p in st.purposes()}
    assert ids == {p.purpose for p in default_purposes() if "center" in p.tiers}
    assert "jps-pension-benefits" in ids and "psc-driving-licence" not in ids
    passport = next(p for p in default_purposes() if p.purpose == "mofa-passport")
    assert "resident_code" not in passport.items  # a purpose may get fewer than six


def test_an_answer_by_code_carries_only_the_purposes_items(center: IdentityStore) -> None:
    full = center.confirm(agency="jps", purpose="jps-pension-benefits", actor=PENSION,
                          code=_codes[0], now=NOW)
    assert full.num_rows == 1
    row = full.to_pylist()[0]
    assert row["answer"] == "found" and row["resident_code"] == _codes[0]
    assert row["family_name"] == "髙橋" and row["address"].startswith("東京都")
    passport = center.confirm(agency="mofa", purpose="mofa-passport",
                              actor=Actor.agency("mofa"), code=_codes[0], now=NOW)
    assert passport.column_names == ["answer", "status_date", "family_name", "given_name",
                                      "birth_date", "sex", "address"]
    arch = center.confirm(agency="mlit", purpose="mlit-architect-licence",
                          actor=Actor.agency("mlit"), code=_codes[0], now=NOW)
    assert "sex" not in arch.column_names and "resident_code" not in arch.column_names
    rows = _provisions(center)
    assert [r[:5] for r in rows] == [
        (_codes[0], "jps", "jps-pension-benefits", "found",
         "name,birth_date,sex,address,resident_code,changes"),
        (_codes[0], "mofa", "mofa-passport", "found", "name,birth_date,sex,address"),
        (_codes[0], "mlit", "mlit-architect-licence", "found", "name,birth_date,address"),
    ]
    assert rows[0][5] == "agency:jps"


def test_death_move_out_retired_and_unknown_codes(center: IdentityStore) -> None:
    def ask(code: int, purpose: str = "jps-pension-benefits", agency: str = "jps",
            **kw: Any) -> dict[str, Any]:
        t = center.confirm(agency=agency, purpose=purpose, actor=Actor.agency(agency),
                           code=code, now=NOW, **kw)
        assert t.num_rows == 1
        return t.to_pylist()[0]

    died = ask(_codes[2])
    assert (died["answer"], died["status_date"]) == ("died", dt.date(2025, 6, 1))
    out = ask(_codes[4])
    assert (out["answer"], out["status_date"]) == ("moved_out", dt.date(2025, 8, 1))
    retired = ask(_codes[3])
    assert retired["answer"] == "retired" and retired["new_code"] == _codes[10]
    assert retired["status_date"] == dt.date(2025, 7, 1) and retired["family_name"] is None
    hidden = ask(_codes[3], "mofa-passport", "mofa")  # no new code for this purpose
    assert hidden["answer"] == "retired" and "new_code" not in hidden
    unknown = int(CodeRegistry().generate(1)[0])
    assert ask(unknown)["answer"] == "not_found"
    answers = [(r[0], r[3], r[4]) for r in _provisions(center)]
    assert answers == [(_codes[2], "died", "name,birth_date,sex,address,resident_code,changes"),
                       (_codes[4], "moved_out",
                        "name,birth_date,sex,address,resident_code,changes"),
                       (_codes[3], "retired", "new_code"), (_codes[3], "retired", ""),
                       (unknown, "not_found", "")]


def test_as_of_a_date_answers_the_record_then(center: IdentityStore) -> None:
    def ask(code: int, day: dt.date) -> dict[str, Any]:
        return center.confirm(agency="jps", purpose="jps-pension-benefits", actor=PENSION,
                              code=code, as_of=day, now=NOW).to_pylist()[0]

    assert ask(_codes[1], dt.date(2025, 4, 30))["address"] == "東京都千代田区丸の内1丁目1番1号"
    assert ask(_codes[1], dt.date(2025, 5, 1))["address"] == "東京都千代田区丸の内2丁目1番1号"
    assert ask(_codes[2], dt.date(2025, 5, 31))["answer"] == "found"
    assert ask(_codes[2], dt.date(2025, 6, 1))["answer"] == "died"
    assert ask(_codes[3], dt.date(2025, 6, 30))["answer"] == "found"  # not yet retired
    assert ask(_codes[3], dt.date(2025, 7, 1))["answer"] == "retired"
    assert ask(_codes[10], dt.date(2025, 6, 30))["answer"] == "not_found"
    assert ask(_codes[0], dt.date(2020, 1, 1))["answer"] == "not_found"


def test_changes_since_name_the_items_dates_and_reasons(center: IdentityStore) -> None:
    t = center.changes_since(agency="jps", purpose="jps-pension-benefits", actor=PENSION,
                             code=_codes[1], since=dt.date(2025, 1, 1), now=NOW)
    assert t.to_pylist() == [{"change_date": dt.date(2025, 5, 1),
                              "change_reason": "move_within", "items": ["address"]}]
    none = center.changes_since(agency="jps", purpose="jps-pension-benefits", actor=PENSION,
                                code=_codes[1], since=dt.date(2025, 5, 1), now=NOW)
    assert none.num_rows == 0
    retired = center.changes_since(agency="jps", purpose="jps-pension-benefits",
                                   actor=PENSION, code=_codes[3], since=dt.date(2025, 1, 1),
                                   now=NOW)
    assert retired.to_pylist() == [{"change_date": dt.date(2025, 7, 1),
                                    "change_reason": "code_change",
                                    "items": ["resident_code"]}]
    rows = _provisions(center)
    assert [(r[3], r[4]) for r in rows] == [("changed", "changes,address"), ("unchanged", ""),
                                            ("changed", "changes,resident_code")]
    with pytest.raises(PermissionDeniedError, match="change information"):
        center.changes_since(agency="mofa", purpose="mofa-passport",
                             actor=Actor.agency("mofa"), code=_codes[1],
                             since=dt.date(2025, 1, 1), now=NOW)
    assert len(_provisions(center)) == 3


@pytest.mark.parametrize(("actor", "agency", "purpose", "why"), [
    (Actor.private("bank"), "jps", "jps-pension-benefits", "private party"),
    (Actor.agency("mofa"), "jps", "jps-pension-benefits", "asks for itself only"),
    (Actor.agency("acme-bank"), "acme-bank", "jps-pension-benefits", "no agency of the"),
    (Actor.agency("mofa"), "mofa", "jps-pension-benefits", "is jps's, not mofa's"),
    (Actor.agency("jps"), "jps", "no-such-purpose", "no legal purpose"),
    (Actor.agency("pref-psc"), "pref-psc", "psc-driving-licence", "no agency of the"),
    (Actor.operator("clerk", None, "clerk", node_id="center"), "jps",
     "jps-pension-benefits", "identity.provide"),
    (Actor.operator("admin", None, "admin", node_id="center"), "jps",
     "jps-pension-benefits", "identity.provide"),
])
def test_refusals_answer_nothing_and_are_audited(center: IdentityStore, actor: Actor,
                                                   agency: str, purpose: str,
                                                   why: str) -> None:
    before = center.content_digest()
    with pytest.raises(PermissionDeniedError, match=why):
        center.confirm(agency=agency, purpose=purpose, actor=actor, code=_codes[0], now=NOW)
    assert center.content_digest() == before and _provisions(center) == []
    denied = _audit(center, "access.denied")
    assert len(denied) == 1 and denied[0][0] == str(actor)
    assert denied[0][2].startswith("identity.provide")
    assert _audit(center, "identity.provide") == []


def test_a_provider_operator_answers_for_a_listed_agency(center: IdentityStore) -> None:
    desk = Actor.operator("desk", None, "provider", node_id="center")
    t = center.confirm(agency="jps", purpose="jps-pension-benefits", actor=desk,
                       code=_codes[0], now=NOW)
    assert t.column("answer").to_pylist() == ["found"]
    assert _provisions(center)[0][5] == str(desk)
    assert _audit(center, "identity.provide")[0][1] == f"{_codes[0]:011d}"


@pytest.mark.parametrize(("kw", "why"), [
    ({"code": "12345678901"}, "not a valid resident code"),
    ({"code": None}, "one of them"),
    ({"code": _codes[0], "four": FourItems("a", "b", D, "c")}, "one of them"),
    ({"code": _codes[0], "as_of": "2024-01-01"}, "as_of is a date"),
    ({"code": _codes[0], "embargo_until": dt.date(2027, 1, 1)}, "allows no embargo"),
    ({"code": _codes[0], "request_id": "../x"}, "request id"),
])
def test_bad_requests_are_refused_and_change_nothing(center: IdentityStore, kw: dict[str, Any],
                                                     why: str) -> None:
    before = center.content_digest()
    with center._b.session(write=False) as s:
        entries = s.scalar("SELECT count(*) FROM audit")
    with pytest.raises(InvalidInputError, match=why):
        center.confirm(agency="jps", purpose="jps-pension-benefits", actor=PENSION, now=NOW,
                       **kw)
    assert center.content_digest() == before
    with center._b.session(write=False) as s:
        assert s.scalar("SELECT count(*) FROM audit") == entries


@pytest.mark.parametrize("bad", [
    {"family_name": ""}, {"given_name": " 花子"}, {"address": "x\u202e"},
    {"birth_date": "1980-01-02"}, {"sex": 3}, {"sex": True}, {"family_name": 5},
])
def test_four_items_are_checked(bad: dict[str, Any]) -> None:
    args: dict[str, Any] = {"family_name": "髙橋", "given_name": "花子", "birth_date": D,
                            "address": "東京都", "sex": 2}
    with pytest.raises(InvalidInputError):
        FourItems(**{**args, **bad})


def test_disclosure_lists_every_provision_and_hides_an_embargo_until_its_date(
        db_target: str) -> None:
    st = create_identity_store(db_target, node_id="130001", kind="prefecture")
    try:
        apply(st, MUNI_A, "a1", [change(1, 0), change(2, 1)])
        psc = Actor.agency("pref-psc")
        st.confirm(agency="pref-psc", purpose="psc-driving-licence", actor=psc, code=_codes[0],
                   now=NOW)
        st.confirm(agency="pref-psc", purpose="psc-investigation", actor=psc, code=_codes[0],
                   embargo_until=dt.date(2027, 3, 1), now=NOW)
        st.confirm(agency="pref-psc", purpose="psc-driving-licence", actor=psc, code=_codes[1],
                   now=NOW)
        with pytest.raises(InvalidInputError, match="at most 365 days"):
            st.confirm(agency="pref-psc", purpose="psc-investigation", actor=psc,
                       code=_codes[0], embargo_until=dt.date(2028, 1, 1), now=NOW)
        clerk = Actor.operator("c", None, "clerk", node_id="130001")
        work = dt.datetime(2026, 12, 1, 1, 0, tzinfo=dt.UTC)  # 10:00 in Japan, a Tuesday
        shown = st.disclose(_codes[0], actor=clerk, now=work)
        assert shown.column("purpose").to_pylist() == ["psc-driving-licence"]
        assert shown.column("duty").to_pylist()[0].startswith("道路交通法")
        assert shown.column("items").to_pylist() == ["name,birth_date,address,changes"]
        later = dt.datetime(2027, 3, 1, 1, 0, tzinfo=dt.UTC)  # a Monday
        st.set_policy("hours.clerk", "always",
                      actor=Actor.operator("a", None, "admin", node_id="130001"))
        after = st.disclose(_codes[0], actor=clerk, now=later)
        assert after.column("purpose").to_pylist() == ["psc-driving-licence",
                                                       "psc-investigation"]
        details = [r[2] for r in _audit(st, "identity.disclose")]
        assert details == ["1 provisions disclosed, 1 under embargo", "2 provisions disclosed"]
        with pytest.raises(PermissionDeniedError, match=r"identity\.disclose"):
            st.disclose(_codes[0], actor=psc, now=work)
    finally:
        st.close()


def test_disclosure_follows_the_persons_former_codes(center: IdentityStore) -> None:
    center.confirm(agency="jps", purpose="jps-pension-benefits", actor=PENSION,
                   code=_codes[3], as_of=dt.date(2025, 1, 1), now=NOW)
    center.confirm(agency="jps", purpose="jps-pension-benefits", actor=PENSION,
                   code=_codes[10], now=NOW)
    admin = Actor.operator("a", None, "admin", node_id="center")
    t = center.disclose(_codes[10], actor=admin, now=NOW)
    assert t.column("resident_code").to_pylist() == [_codes[3], _codes[10]]


def test_purposes_change_by_version_only_by_admins(center: IdentityStore) -> None:
    admin = Actor.operator("a", None, "admin", node_id="center")
    p = next(p for p in center.purposes() if p.purpose == "mofa-passport")
    narrower = dataclasses.replace(p, items=("name", "birth_date"))
    with pytest.raises(PermissionDeniedError, match=r"identity\.purposes"):
        center.set_purpose(narrower, actor=Actor.operator("c", None, "clerk", node_id="center"),
                           now=NOW)
    with pytest.raises(PermissionDeniedError, match=r"identity\.purposes"):
        center.set_purpose(narrower, actor=Actor.agency("mofa"), now=NOW)
    v2 = center.set_purpose(narrower, actor=admin, now=NOW)
    assert v2.version == 2
    t = center.confirm(agency="mofa", purpose="mofa-passport", actor=Actor.agency("mofa"),
                       code=_codes[0], now=NOW)
    assert t.column_names == ["answer", "status_date", "family_name", "given_name",
                              "birth_date"]
    with center._b.session(write=False) as s:
        assert s.query("SELECT purpose_version, items FROM provision_detail") == [
            (2, "name,birth_date")]
    center.close_purpose("mofa-passport", actor=admin, now=NOW)
    with pytest.raises(PermissionDeniedError, match="no legal purpose"):
        center.confirm(agency="mofa", purpose="mofa-passport", actor=Actor.agency("mofa"),
                       code=_codes[0], now=NOW)
    with pytest.raises(NotFoundError):
        center.close_purpose("mofa-passport", actor=admin, now=NOW)
    assert [r[1] for r in _audit(center, "identity.purpose_set")] == ["mofa-passport"]
    with pytest.raises(InvalidInputError, match="items"):
        Purpose(**{**p.as_dict(), "items": ("name", "domicile")})
    with pytest.raises(InvalidInputError, match="not asked at a center"):
        center.set_purpose(dataclasses.replace(p, tiers=("prefecture",)), actor=admin, now=NOW)
