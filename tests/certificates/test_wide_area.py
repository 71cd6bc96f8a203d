"""Wide-area certificates (広域交付, issue 14): municipality X issues a certificate of a
resident of Y, whose record Y answers over the network route (run here by
``call_local``, exactly as the server runs it), on SQLite and PostgreSQL.

Y is the tiny municipality (131016): household 1 = persons 1 (鈴木太郎, head) and 2
(鈴木花子, 妻); household 2 = persons 3, 4, 5 (高橋); household 4 = person 10 (伊藤)."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from certkit import ADMIN, CLERK, KEY_FROM, NOW, code_of, pdf_text, photo, requester
from regkit import LG, TODAY, ev

from jukicore.access.actors import Actor
from jukicore.cards import Cards, create_pin_key
from jukicore.certificates import CardPin, Certificates, Requester, verify_file
from jukicore.certificates.schema import (
    ISSUANCE_TABLE,
    WIDE_PROVISION_TABLE,
    WIDE_REQUEST_TABLE,
)
from jukicore.certificates.wide_area import (
    PATH,
    PIN_KEY_ENV,
    ROUTES,
    provide,
    provisions,
    request_body,
    requests,
)
from jukicore.errors import (
    ConflictError,
    InvalidInputError,
    JukiError,
    PermissionDeniedError,
)
from jukicore.network.crypto import NodeKeys, TrustStore
from jukicore.network.node import Node
from jukicore.network.service import Peer, ServeContext, call_local
from jukicore.register import Register, create_register

LG_X = "131041"  # 新宿区: the municipality where the resident asks
PREF = "130001"
ADMIN_X = Actor.operator("adminx", LG_X, "admin")
CLERK_X = Actor.operator("clerkx", LG_X, "clerk").with_override(
    Actor.operator("supx", LG_X, "supervisor"), "test: counter days replayed")
Y_CS = Actor.node(LG, LG, "cs")


@pytest.fixture
def x_register(db_target: str, tmp_path: Path,
               pg_databases: Callable[[str], str]) -> Iterator[Register]:
    target = str(tmp_path / "x.db") if "://" not in db_target else pg_databases("x")
    reg = create_register(target, lg_code=LG_X, prefecture="東京都", municipality="新宿区",
                          actor=ADMIN_X)
    yield reg
    reg.close()


@pytest.fixture
def x_keys() -> NodeKeys:
    return NodeKeys.generate(LG_X)


@pytest.fixture
def x_certs(x_register: Register, x_keys: NodeKeys) -> Certificates:
    return Certificates(x_register, x_keys, office="新宿区役所 戸籍住民課",
                        key_valid_from=KEY_FROM)


@pytest.fixture
def ctx_y(register: Register, store_target: str, tmp_path: Path) -> ServeContext:
    """Y's serving node (its register is the tiny municipality)."""
    return ServeContext(Node(tmp_path / "y", LG, "municipality", store_target),
                        NodeKeys.generate(LG))


class Calls:
    """X's ``call`` to Y through the route, counting the calls."""

    def __init__(self, ctx: ServeContext, peer: Peer | None = None) -> None:
        self.ctx = ctx
        self.peer = peer or Peer("node", LG_X)
        self.n = 0

    def __call__(self, peer_id: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        assert peer_id == LG
        self.n += 1
        answer: dict[str, Any] = call_local(self.ctx, ROUTES, self.peer, path, body)
        return answer


@pytest.fixture
def call(ctx_y: ServeContext) -> Calls:
    return Calls(ctx_y)


def never(peer_id: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    raise AssertionError("Y must not be asked")


def y_state(reg: Register) -> tuple[Any, ...]:
    """Everything a refusal must leave at Y: the register's content, the provisions, and
    the audit but its denials (the count of which is returned apart)."""
    with reg._b.session(write=False) as s:
        provided = s.query(f"SELECT request_id, member_codes FROM {WIDE_PROVISION_TABLE.name}"
                           " ORDER BY request_id")
        others = int(s.scalar("SELECT count(*) FROM audit WHERE action <> 'access.denied'"))
        denied = int(s.scalar("SELECT count(*) FROM audit WHERE action = 'access.denied'"))
    return (reg.content_digest(), tuple(map(tuple, provided)), others), denied


def x_state(reg: Register) -> tuple[Any, ...]:
    with reg._b.session(write=False) as s:
        issued = int(s.scalar(f"SELECT count(*) FROM {ISSUANCE_TABLE.name}"))
        asked = int(s.scalar(f"SELECT count(*) FROM {WIDE_REQUEST_TABLE.name}"))
        changes = int(s.scalar("SELECT count(*) FROM audit WHERE action NOT IN"
                               " ('access.denied', 'access.override')"))
    return reg.content_digest(), issued, asked, changes


def body_of(reg: Register, person: int, by: int, *, rid: str = "131041-20240603-0001",
            household: bool = False, items: tuple[str, ...] = (),
            **changes: Any) -> dict[str, Any]:
    """A wide-area request body of ``person``'s record asked by ``by`` with a photo ID."""
    body = request_body(rid, code_of(reg, person), household=household, items=items,
                        requester=requester(reg, by).checked(), operator=CLERK_X)
    for k, v in changes.items():
        if k == "raw_items":
            body["items"] = v
        elif k.startswith("requester_"):
            body["requester"][k.removeprefix("requester_")] = v
        else:
            body[k] = v
    return body


def trust_x(keys: NodeKeys) -> TrustStore:
    t = TrustStore()
    t.add_record(keys.public_record("municipality", KEY_FROM))
    return t


# -- issuing at X --------------------------------------------------------------------------


def test_person_certificate_issued_at_x_from_y(register: Register, x_register: Register,
                                               x_certs: Certificates, call: Calls,
                                               tmp_path: Path) -> None:
    me = code_of(register, 1)
    rec = register.resident(me, actor=ADMIN)
    issued = x_certs.issue_wide_area(me, home=LG, call=call, requester=requester(register, 1),
                                     actor=CLERK_X, now=NOW)
    assert call.n == 1
    text = pdf_text(issued.pdf, tmp_path)
    for shown in ("住民票の写し（広域交付）", "鈴木", "太郎", "スズキ", "東京都千代田区",
                  "新宿区長", "新宿区役所"):
        assert shown in text, shown
    assert rec["domicile"] not in text and "本籍" in text  # the label, printed 省略
    assert rec["resident_code"] not in text  # not asked for
    assert "花子" not in text
    # the PDF verifies offline with X's key (X signed it)
    path = tmp_path / "wide.pdf"
    path.write_bytes(issued.pdf)
    verified = verify_file(path, trust_x(x_certs.keys), now=NOW)
    assert verified.payload.node_id == LG_X and verified.payload.composition.wide_area
    assert rec["domicile"] not in json.dumps(verified.to_json(), ensure_ascii=False)
    # X recorded its issuance, its fee and the request; Y its provision
    row = issued.record.to_pylist()[0]
    assert row["fee"] == 300 and row["right_kind"] == "self" and row["member_codes"] == [
        int(me)] and row["node_id"] == LG_X and row["identity_kind"] == "photo_id"
    with x_register._b.session(write=False) as s:
        asked = s.query(f"SELECT request_id, home_lg_code, issuance_id FROM"
                        f" {WIDE_REQUEST_TABLE.name}")
    assert len(asked) == 1 and asked[0][1] == LG and asked[0][2] == row["issuance_id"]
    made = requests(x_register, actor=ADMIN_X).to_pylist()
    assert made == [{"request_id": asked[0][0], "home_lg_code": LG,
                     "issuance_id": row["issuance_id"], "issued_at": NOW}]
    assert requests(x_register, actor=ADMIN_X, since=NOW + dt.timedelta(seconds=1)
                    ).num_rows == 0
    with pytest.raises(PermissionDeniedError):
        requests(x_register, actor=CLERK_X)  # supervisors and admins
    with pytest.raises(PermissionDeniedError):
        provisions(register, actor=CLERK)
    with pytest.raises(InvalidInputError, match="timezone"):
        provisions(register, actor=ADMIN, since=dt.datetime(2024, 1, 1))
    log_x = x_register.audit_log(actor=ADMIN_X).to_pylist()
    issue_entries = [e for e in log_x if e["action"] == "certificate.issue"]
    assert len(issue_entries) == 1 and LG in str(issue_entries[0]["detail"])
    prov = provisions(register, actor=ADMIN).to_pylist()
    assert len(prov) == 1 and prov[0]["requester_lg"] == LG_X
    assert prov[0]["request_id"] == asked[0][0] and prov[0]["member_codes"] == [int(me)]
    assert prov[0]["requester_actor"] == str(CLERK_X) and prov[0]["right_kind"] == "self"
    log_y = register.audit_log(actor=ADMIN).to_pylist()
    assert [e["target"] for e in log_y if e["action"] == "certificate.provide"] == [
        str(me).zfill(11)]
    reads = [e for e in log_y if e["action"] == "register.read" and e["actor_kind"] == "node"]
    assert [e["target"] for e in reads] == [str(me).zfill(11)] and LG_X in str(reads[0]["detail"])


def test_household_by_a_member_never_holds_the_domicile(
        register: Register, x_certs: Certificates, call: Calls, tmp_path: Path) -> None:
    head, wife = code_of(register, 1), code_of(register, 2)
    recs = [register.resident(c, actor=ADMIN) for c in (head, wife)]
    assert all(r["domicile"] for r in recs)  # the register has it
    issued = x_certs.issue_wide_area(wife, home=LG, call=call, household=True,
                                     items=["relationship", "resident_code"],
                                     requester=requester(register, 2), actor=CLERK_X, now=NOW)
    text = pdf_text(issued.pdf, tmp_path)
    assert "世帯全員の住民票の写し（広域交付）" in text
    assert text.index("太郎") < text.index("花子") and "妻" in text
    for r in recs:
        assert r["resident_code"] in text
        assert r["domicile"] not in text and r["domicile_head"] not in text.replace(" ", "")
    row = issued.record.to_pylist()[0]
    assert row["right_kind"] == "household" and sorted(row["member_codes"]) == sorted(
        [int(head), int(wife)]) and row["items"] == ["relationship", "resident_code"]
    # the answer itself, as it travels: no domicile, no My Number, no other item
    answer = call(LG, PATH, body_of(register, 1, 2, rid="131041-20240603-raw1",
                                    household=True, items=("relationship",)))
    text = json.dumps(answer, ensure_ascii=False)
    for r in recs:
        assert r["domicile"] not in text and r["domicile_head"] not in text
    for m in answer["members"]:
        assert set(m) == {"resident_code", "family_name", "given_name", "family_name_kana",
                          "given_name_kana", "birth_date", "sex", "address", "resident_since",
                          "address_since", "move_in_notified", "previous_address",
                          "relationship"}


def test_the_same_request_twice_answers_the_same_and_records_once(
        register: Register, call: Calls) -> None:
    body = body_of(register, 2, 1, household=True, items=("relationship",))
    first = call(LG, PATH, body)
    before = y_state(register)
    again = call(LG, PATH, body)
    assert again == first
    assert y_state(register) == before  # nothing recorded the second time
    # the same id with another request is a conflict, and changes nothing
    before = y_state(register)
    other = dict(body, items=[])
    with pytest.raises(ConflictError, match="another request"):
        call(LG, PATH, other)
    assert y_state(register) == before
    # the provision keeps no copy of the data: once the record changed, the same id is
    # refused (never different data under the same id); a new id gets the new record
    wife = code_of(register, 2)
    register.notify(actor=ADMIN, today=TODAY, **ev("name_change", "n1", resident_code=wife,
                                                    given_name="華子",
                                                    given_name_kana="ハナコ"))
    fresh = dict(body, request_id="131041-20240603-fresh")
    before = y_state(register)
    with pytest.raises(ConflictError, match="changed since"):
        call(LG, PATH, body)
    assert y_state(register) == before
    assert "華子" in json.dumps(call(LG, PATH, fresh), ensure_ascii=False)
    with register._b.session(write=False) as s:
        kept = json.dumps(s.query(f"SELECT * FROM {WIDE_PROVISION_TABLE.name}"),
                          ensure_ascii=False, default=str)
    assert "花子" not in kept and "華子" not in kept and "東京都" not in kept


def test_twin_requests_at_once_are_recorded_once(register: Register, call: Calls) -> None:
    body = body_of(register, 3, 4, household=True)
    answers: list[Any] = []
    errors: list[BaseException] = []

    def ask() -> None:
        try:
            answers.append(call(LG, PATH, body))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(answers) == 4 and all(a == answers[0] for a in answers)
    assert len(provisions(register, actor=ADMIN)) == 1
    log_y = register.audit_log(actor=ADMIN).to_pylist()
    assert len([e for e in log_y if e["action"] == "certificate.provide"]) == 1


def test_a_crash_between_y_and_x_is_resumed_with_the_request_id(
        register: Register, x_register: Register, x_certs: Certificates,
        call: Calls) -> None:
    me = code_of(register, 10)
    rid = "131041-20240603-crash"

    def crash_after_y(peer_id: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        call(peer_id, path, body)  # Y answered and recorded...
        raise JukiError("connection lost")  # ...and X never got the answer

    before_x = x_state(x_register)
    with pytest.raises(JukiError, match="connection lost"):
        x_certs.issue_wide_area(me, home=LG, call=crash_after_y, request_id=rid,
                                requester=requester(register, 10), actor=CLERK_X, now=NOW)
    assert x_state(x_register) == before_x
    assert len(provisions(register, actor=ADMIN)) == 1
    y_before = y_state(register)
    issued = x_certs.issue_wide_area(me, home=LG, call=call, request_id=rid,
                                     requester=requester(register, 10), actor=CLERK_X, now=NOW)
    assert y_state(register)[0][:2] == y_before[0][:2]  # Y: the same provision, no new one
    assert issued.record.column("member_codes").to_pylist() == [[int(me)]]
    # and once issued, the id is spent at X
    before_x = x_state(x_register)
    with pytest.raises(ConflictError, match="issued already"):
        x_certs.issue_wide_area(me, home=LG, call=call, request_id=rid,
                                requester=requester(register, 10), actor=CLERK_X, now=NOW)
    assert x_state(x_register) == before_x


# -- refusals at Y -------------------------------------------------------------------------


def _refused_at_y(register: Register, call: Calls, body: Any, error: type[Exception],
                  match: str, *, denied: bool) -> None:
    state, denials = y_state(register)
    with pytest.raises(error, match=match):
        call(LG, PATH, body)
    after, denials_after = y_state(register)
    assert after == state
    assert denials_after == denials + (1 if denied else 0)


def test_refusals_at_y_change_nothing(register: Register, call: Calls) -> None:
    wife = code_of(register, 2)
    cases: list[tuple[dict[str, Any], type[Exception], str, bool]] = [
        # a proxy, even with a letter
        (body_of(register, 1, 2, requester_proxy_for=str(wife).zfill(11)),
         PermissionDeniedError, "proxy", True),
        # someone outside the household (伊藤 of household 4 asks for 鈴木)
        (body_of(register, 1, 10), PermissionDeniedError, "neither the person", True),
        (body_of(register, 1, 10, household=True), PermissionDeniedError, "neither", True),
        # items a wide-area certificate never shows
        (body_of(register, 1, 1, items=("domicile",)), PermissionDeniedError, "domicile",
         True),
        (body_of(register, 1, 1, items=("my_number",)), PermissionDeniedError, "my_number",
         True),
        (body_of(register, 1, 1, items=("nhi_since",)), PermissionDeniedError, "nhi_since",
         True),
        (body_of(register, 1, 1, raw_items=["domicile_head"]), InvalidInputError, "unknown", False),
        (body_of(register, 1, 1, raw_items="relationship"), InvalidInputError, "list", False),
        # chosen members: only the person or the whole household
        (body_of(register, 1, 1, scope="members"), InvalidInputError, "scope", False),
        # a name on the photo ID that is not the requester's
        (body_of(register, 1, 1, requester_name="高橋 太郎"), PermissionDeniedError,
         "name on the photo ID", True),
        # the requester is not a resident of Y (an unknown code)
        (body_of(register, 1, 1, requester_resident_code="00000000000"),
         PermissionDeniedError, "requester is not in the register of 131016", True),
        (body_of(register, 1, 1, requester_resident_code="00000000001"), InvalidInputError,
         "resident code", False),
        # bad request ids
        (body_of(register, 1, 1, rid="131041-20240603-0001", request_id="short"),
         InvalidInputError, "request id", False),
        (body_of(register, 1, 1, request_id="../../etc/passwd"), InvalidInputError,
         "request id", False),
        (body_of(register, 1, 1, request_id="x" * 81), InvalidInputError, "request id", False),
        (body_of(register, 1, 1, request_id=12345678901), InvalidInputError, "request id",
         False),
        (body_of(register, 1, 1, request_id=None), InvalidInputError, "request id", False),
        # malformed bodies
        (dict(body_of(register, 1, 1), extra=1), InvalidInputError, "unknown", False),
        ({k: v for k, v in body_of(register, 1, 1).items() if k != "requester"},
         InvalidInputError, "missing", False),
        (body_of(register, 1, 1, resident_code="1234"), InvalidInputError, "resident_code",
         False),
        (body_of(register, 1, 1, requester_identity={"kind": "photo_id"}), InvalidInputError,
         "identity", False),
        (body_of(register, 1, 1, requester_identity={"kind": "magic", "card_id": "1",
                                                     "pin": "1"}),
         InvalidInputError, "identity", False),
    ]
    for i, (case, error, match, denied) in enumerate(cases):
        body = dict(case)
        if body.get("request_id") == "131041-20240603-0001":
            body["request_id"] = f"131041-20240603-r{i:03d}"
        _refused_at_y(register, call, body, error, match, denied=denied)


def test_a_person_not_resident_at_y_is_refused(register: Register, call: Calls) -> None:
    wife = code_of(register, 2)
    register.notify(actor=ADMIN, today=TODAY, **ev("death", "d1", resident_code=wife,
                                                    event_date=TODAY - dt.timedelta(days=3)))
    # her removed record (除票) is not issued by a wide-area request, to anyone
    _refused_at_y(register, call, body_of(register, 2, 1, rid="131041-20240603-dead"),
                  PermissionDeniedError, "not a current resident", denied=True)
    # a code no one holds at Y
    body = body_of(register, 1, 1, rid="131041-20240603-none")
    body["resident_code"] = str(code_of(register, 2) + 10).zfill(11)
    body["resident_code"] = _valid_unknown_code(register)
    _refused_at_y(register, call, body, PermissionDeniedError, "not a current resident",
                  denied=True)
    # the removed person asking for herself: she is not in the register as a resident
    with pytest.raises(PermissionDeniedError):
        call(LG, PATH, body_of(register, 1, 2, rid="131041-20240603-dead2"))


def _valid_unknown_code(register: Register) -> str:
    from regkit import make_code

    held = {int(c) for c in register.residents(actor=ADMIN, include_removed=True)
            .column("resident_code").to_pylist()}
    body = 1234567
    while make_code(body) in held:
        body += 1
    return str(make_code(body)).zfill(11)


@pytest.mark.parametrize("peer", [Peer("node", PREF), Peer("node", "center"),
                                  Peer("agency", "nenkin")])
def test_only_a_municipality_may_call_the_route(register: Register, ctx_y: ServeContext,
                                                peer: Peer) -> None:
    body = body_of(register, 1, 1)
    before = y_state(register)
    with pytest.raises(PermissionDeniedError, match="may not call"):
        call_local(ctx_y, ROUTES, peer, PATH, body)
    assert y_state(register) == before


def test_a_municipality_does_not_ask_itself(register: Register, ctx_y: ServeContext) -> None:
    body = body_of(register, 1, 1)
    before = y_state(register)
    with pytest.raises(InvalidInputError, match="own register"):
        call_local(ctx_y, ROUTES, Peer("node", LG), PATH, body)
    with pytest.raises(InvalidInputError):
        provide(register, "not-a-node", body)
    assert y_state(register) == before


def test_a_prefecture_does_not_serve_the_route(register: Register, store_target: str,
                                              tmp_path: Path) -> None:
    ctx = ServeContext(Node(tmp_path / "p", PREF, "prefecture", store_target),
                       NodeKeys.generate(PREF))
    with pytest.raises(JukiError, match="serves no"):
        call_local(ctx, ROUTES, Peer("node", LG_X), PATH, body_of(register, 1, 1))


# -- refusals at X -------------------------------------------------------------------------


def test_refusals_at_x_ask_no_one_and_change_nothing(register: Register,
                                                     x_register: Register,
                                                     x_certs: Certificates) -> None:
    me, wife = code_of(register, 1), code_of(register, 2)
    proxy = Requester(photo(), name="代理 人", proxy_for=me, letter="委任状2024-1")
    cases: list[tuple[dict[str, Any], type[Exception], str]] = [
        (dict(requester=proxy), PermissionDeniedError, "proxy"),
        (dict(items=["domicile"]), PermissionDeniedError, "domicile"),
        (dict(items=["my_number"]), PermissionDeniedError, "my_number"),
        (dict(items=["article7"]), PermissionDeniedError, "electoral_roll"),
        (dict(items=["本籍"]), InvalidInputError, "unknown"),
        (dict(who=[me, wife]), InvalidInputError, "one resident code"),
        (dict(home=LG_X), InvalidInputError, "its register"),
        (dict(home="130001"), InvalidInputError, "municipality"),
        (dict(home=131016), InvalidInputError, "municipality"),
        (dict(request_id="bad id"), InvalidInputError, "request id"),
        (dict(now=dt.datetime(2024, 6, 3, 10)), InvalidInputError, "timezone"),
        (dict(actor=Actor.operator("c", LG, "clerk")), PermissionDeniedError, "belong"),
        (dict(actor=Actor.operator("c", LG_X, "batch")), PermissionDeniedError, "grants"),
        # outside working hours without an override (Sunday)
        (dict(actor=Actor.operator("c", LG_X, "clerk"),
              now=dt.datetime(2024, 6, 2, 1, tzinfo=dt.UTC)), PermissionDeniedError,
         "business day"),
    ]
    for changes, error, match in cases:
        kw: dict[str, Any] = dict(who=me, home=LG, call=never,
                                  requester=requester(register, 1), actor=CLERK_X, now=NOW)
        kw.update(changes)
        before = x_state(x_register)
        with pytest.raises(error, match=match):
            x_certs.issue_wide_area(kw.pop("who"), **kw)
        assert x_state(x_register) == before, changes


def test_a_refusal_at_y_records_nothing_at_x(register: Register, x_register: Register,
                                             x_certs: Certificates, call: Calls) -> None:
    before = x_state(x_register)
    with pytest.raises(PermissionDeniedError, match="neither the person"):
        x_certs.issue_wide_area(code_of(register, 1), home=LG, call=call, household=True,
                                requester=requester(register, 10), actor=CLERK_X, now=NOW)
    assert call.n == 1 and x_state(x_register) == before


def test_a_malformed_answer_is_refused_at_x(register: Register, x_register: Register,
                                           x_certs: Certificates, call: Calls) -> None:
    me = code_of(register, 1)
    rec = register.resident(me, actor=ADMIN)

    def tampered(change: Callable[[dict[str, Any]], None]) -> Callable[..., dict[str, Any]]:
        def c(peer_id: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
            answer = call(peer_id, path, body)
            change(answer)
            return answer
        return c

    def add_domicile(a: dict[str, Any]) -> None:
        a["members"][0]["domicile"] = rec["domicile"]

    def other_person(a: dict[str, Any]) -> None:
        a["members"][0]["resident_code"] = str(code_of(register, 2)).zfill(11)

    def extra_member(a: dict[str, Any]) -> None:
        a["members"].append(dict(a["members"][0], resident_code=str(code_of(register, 3))
                                 .zfill(11)))

    def bad_date(a: dict[str, Any]) -> None:
        a["members"][0]["birth_date"] = "1970-02-30"

    def other_request(a: dict[str, Any]) -> None:
        a["request_id"] = "131041-20240603-zzzz"

    def not_an_object(a: dict[str, Any]) -> None:
        a.clear()

    for i, change in enumerate((add_domicile, other_person, extra_member, bad_date,
                                other_request, not_an_object)):
        before = x_state(x_register)
        with pytest.raises(InvalidInputError, match="not a wide-area record"):
            x_certs.issue_wide_area(me, home=LG, call=tampered(change),
                                    request_id=f"131041-20240603-t{i}",
                                    requester=requester(register, 1), actor=CLERK_X, now=NOW)
        assert x_state(x_register) == before, change.__name__


# -- card and PIN --------------------------------------------------------------------------


def _y_card(register: Register, person: int, tmp_path: Path, pin: str = "4321"
            ) -> tuple[Cards, str]:
    from regkit import make_my_number

    code = code_of(register, person)
    register.notify(actor=ADMIN, today=TODAY, **ev("my_number", f"mn-{person}",
                                                    resident_code=code,
                                                    my_number=make_my_number(
                                                        12345678901 + 1000 * person)))
    key_path = tmp_path / "y-pin.key"
    cards = Cards(register, create_pin_key(key_path))
    got = cards.issue([{"resident_code": code, "kind": "mynumber"}], actor=CLERK, today=TODAY)
    card_id = str(got.column("card_id")[0].as_py())
    cards.activate(card_id, pin, actor=CLERK, today=TODAY)
    return cards, str(key_path)


def test_card_and_pin_checked_by_y(register: Register, x_register: Register,
                                   x_certs: Certificates, call: Calls, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    cards, key_path = _y_card(register, 2, tmp_path)
    card_id = str(cards.list(actor=ADMIN).column("card_id")[0].as_py())
    wife = code_of(register, 2)
    # without Y's pin key the card cannot be checked there: refused, nothing recorded
    monkeypatch.delenv(PIN_KEY_ENV, raising=False)
    before_x = x_state(x_register)
    with pytest.raises(InvalidInputError, match="pin key"):
        x_certs.issue_wide_area(wife, home=LG, call=call, requester=Requester(
            CardPin(card_id, "4321")), actor=CLERK_X, now=NOW)
    assert x_state(x_register) == before_x
    monkeypatch.setenv(PIN_KEY_ENV, key_path)
    # a wrong PIN: refused by Y's cards service (the attempt counted there), nothing issued
    before_y = y_state(register)[0][1]
    with pytest.raises(PermissionDeniedError, match="PIN"):
        x_certs.issue_wide_area(wife, home=LG, call=call, household=True,
                                requester=Requester(CardPin(card_id, "0000")), actor=CLERK_X,
                                now=NOW)
    assert x_state(x_register) == before_x and y_state(register)[0][1] == before_y
    issued = x_certs.issue_wide_area(wife, home=LG, call=call, household=True,
                                     requester=Requester(CardPin(card_id, "4321")),
                                     actor=CLERK_X, now=NOW)
    row = issued.record.to_pylist()[0]
    assert row["identity_kind"] == "card" and row["identity_ref"] == f"card:{card_id}"
    assert row["requester_code"] == int(wife) and row["right_kind"] == "household"
    prov = provisions(register, actor=ADMIN).to_pylist()
    assert len(prov) == 1 and prov[0]["identity_kind"] == "card"
    with register._b.session(write=False) as s:  # the PIN is stored nowhere
        stored = s.query(f"SELECT * FROM {WIDE_PROVISION_TABLE.name}")
    assert "4321" not in json.dumps(stored, default=str)
    # a card whose code is not the requester's
    with pytest.raises(InvalidInputError, match="not the card's"):
        x_certs.issue_wide_area(wife, home=LG, call=call, requester=Requester(
            CardPin(card_id, "4321"), resident_code=code_of(register, 1)), actor=CLERK_X,
            now=NOW)


def test_odd_texts_in_a_request_are_refused(register: Register, call: Calls) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"operator": "clerk\nforged audit line"}, "control character"),
        ({"operator": "x" * 201}, "longer than"),
        ({"requester_name": "鈴木\u2028太郎"}, "control character"),
        ({"requester_name": " "}, "empty"),
        ({"requester_name": 42}, "must be text"),
        ({"resident_code": True}, "resident code"),
        ({"resident_code": 12.0}, "resident code"),
        ({"requester_resident_code": ["1"]}, "resident code"),
    ]
    for changes, match in cases:
        _refused_at_y(register, call, body_of(register, 1, 1, **changes), InvalidInputError,
                      match, denied=False)


def test_compose_wide_area_shows_only_its_items(register: Register) -> None:
    from jukicore.certificates import WIDE_AREA_ITEMS, compose

    rec = {**register.resident(code_of(register, 1), actor=ADMIN), "sex": 1, "person_id": 1}
    rec["resident_code"] = int(rec["resident_code"])
    assert set(WIDE_AREA_ITEMS) == {"relationship", "resident_code"}
    for item in ("domicile", "my_number", "electoral_roll", "nationality"):
        with pytest.raises(InvalidInputError, match="wide-area"):
            compose([rec], items={item}, wide_area=True)
    c = compose([rec], items=set(WIDE_AREA_ITEMS), wide_area=True)
    assert rec["domicile"] not in json.dumps(c.to_json(), ensure_ascii=False)
