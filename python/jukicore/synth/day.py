"""A realistic, seeded day of notifications for a register (demo and benchmarks).

The mix follows Japan's yearly figures scaled to one day (moves dominate, then
deaths and births), and every generated row is valid against the register as it
stands: each person and household is touched at most once per day, heads that
leave a household name their successor, move-ins come as whole families, and the
codes and My Numbers people move in with are held by no current resident (nor twice
in the day).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pyarrow as pa

from jukicore.access.actors import Actor
from jukicore.codes import my_number_check_digit, resident_code_check_digit
from jukicore.register._schema import HEAD
from jukicore.register.events import EVENT_SCHEMA

__all__ = ["DEFAULT_MIX", "generate_day"]

#: Share of each kind in a generated day.
DEFAULT_MIX: dict[str, float] = {
    "move_in": 0.24,
    "move_out": 0.22,
    "move_within": 0.20,
    "death": 0.08,
    "birth": 0.06,
    "name_change": 0.07,
    "household_change": 0.05,
    "my_number": 0.05,
    "code_change": 0.02,
    "ex_officio_removal": 0.01,
}

_DESTINATIONS = ("東京都新宿区西新宿二丁目8番1号", "大阪府大阪市北区中之島一丁目3番20号",
                 "福岡県福岡市中央区天神一丁目8番1号", "北海道札幌市中央区北一条西二丁目",
                 "アメリカ合衆国", "愛知県名古屋市中区三の丸三丁目1番1号")
_FROM = ("神奈川県横浜市中区港町一丁目1番地", "埼玉県さいたま市浦和区常盤六丁目4番4号",
         "千葉県千葉市中央区千葉港1番1号", "京都府京都市中京区寺町通御池上る上本能寺前町488番地")


def _fresh_code(rng: np.random.Generator) -> int:
    """A plausible code for someone moving in: any body, with its check digit."""
    body = int(rng.integers(0, 10**10))
    return body * 10 + resident_code_check_digit(body)


def _fresh_my_number(rng: np.random.Generator) -> int:
    body = int(rng.integers(0, 10**11))
    return body * 10 + my_number_check_digit(body)


def generate_day(
    register: Any,
    *,
    actor: Actor,
    day: dt.date,
    n: int,
    seed: int = 0,
    mix: dict[str, float] | None = None,
) -> pa.Table:
    """``n`` valid notifications dated ``day`` for ``register`` (a :class:`Register`)."""
    res = register.residents(actor=actor)
    return generate_day_for(res, lg_prefix=register.lg_code, day=day, n=n, seed=seed, mix=mix)


def generate_day_for(
    res: pa.Table,
    *,
    lg_prefix: str,
    day: dt.date,
    n: int,
    seed: int = 0,
    mix: dict[str, float] | None = None,
) -> pa.Table:
    rng = np.random.default_rng(seed)
    mix = mix or DEFAULT_MIX
    kinds = list(mix)
    p = np.array([mix[k] for k in kinds], dtype=float)
    wanted = rng.choice(len(kinds), size=n, p=p / p.sum())
    m = res.num_rows
    if m == 0:
        raise ValueError("generate_day needs a register with residents")

    col = {name: res.column(name).to_numpy(zero_copy_only=False) for name in (
        "person_id", "resident_code", "household_id", "relationship", "sex", "family_name",
        "given_name", "family_name_kana", "given_name_kana", "postal_code", "town", "street",
        "address", "birth_date", "updated_on", "address_since", "my_number", "domicile",
        "domicile_head")}
    has_my_number = res.column("my_number").is_valid().to_numpy(zero_copy_only=False)
    # codes and numbers of the current residents: a move-in never brings one of them
    taken_codes = set(res.column("resident_code").drop_null().to_pylist())
    taken_numbers = set(res.column("my_number").drop_null().to_pylist())

    def fresh(draw: Any, taken: set[int]) -> int:
        while True:
            value = int(draw(rng))
            if value not in taken:
                taken.add(value)
                return value
    dday = np.datetime64(day, "D")

    def pdate(x: Any) -> dt.date:
        return np.datetime64(x, "D").astype(object)  # type: ignore[no-any-return]
    hh = col["household_id"].astype(np.int64)
    order = np.argsort(hh, kind="stable")
    hh_sorted = hh[order]
    starts = np.searchsorted(hh_sorted, hh, side="left")
    ends = np.searchsorted(hh_sorted, hh, side="right")
    is_head = col["relationship"] == HEAD

    upd = col["updated_on"].astype("datetime64[D]")
    grp_start = np.flatnonzero(np.r_[True, hh_sorted[1:] != hh_sorted[:-1]])
    latest_sorted = np.repeat(np.maximum.reduceat(upd[order], grp_start),
                              np.diff(np.r_[grp_start, len(order)]))
    latest = np.empty_like(latest_sorted)
    latest[order] = latest_sorted  # per person: the latest change in their household

    def members(i: int) -> np.ndarray[Any, Any]:
        return order[starts[i]:ends[i]]

    def head_of(i: int) -> int:
        ms = members(i)
        return int(ms[is_head[ms]][0])

    touched: set[int] = set()
    next_hid = int(hh.max()) + 1
    candidates = iter(rng.permutation(m))
    rows: list[dict[str, Any]] = []
    counter = 0
    seq = f"{lg_prefix}-{day.isoformat()}-{seed}"

    def nid() -> str:
        nonlocal counter
        counter += 1
        return f"{seq}-{counter:06d}"

    def pick() -> int | None:
        for i in candidates:
            if int(hh[i]) not in touched and latest[i] <= dday:
                touched.add(int(hh[i]))
                return int(i)
        return None

    def base(kind: str, i: int | None = None, ev: dt.date = day) -> dict[str, Any]:
        r: dict[str, Any] = {"notification_id": nid(), "kind": kind, "notified_date": day,
                             "event_date": ev}
        if i is not None:
            r["resident_code"] = int(col["resident_code"][i])
        return r

    def successor(i: int, leaving: set[int]) -> int | None:
        if not is_head[i]:
            return None
        rest = [int(j) for j in members(i) if int(j) not in leaving]
        return int(col["resident_code"][rest[0]]) if rest else None

    def new_address() -> dict[str, Any]:
        j = int(rng.integers(0, m))
        return {"postal_code": col["postal_code"][j], "town": col["town"][j],
                "street": f"{rng.integers(1, 9)}丁目{rng.integers(1, 40)}番{rng.integers(1, 30)}号",
                "building": None}

    produced = 0
    for k in wanted:
        if produced >= n:
            break
        kind = kinds[int(k)]
        if kind == "move_in":
            size = int(min(n - produced, rng.choice([1, 1, 2, 3, 4])))
            addr = new_address()
            hid = next_hid
            next_hid += 1
            abroad = bool(rng.random() < 0.05)
            fam = col["family_name"][int(rng.integers(0, m))]
            fam_kana = col["family_name_kana"][int(rng.integers(0, m))]
            for q in range(size):
                donor = int(rng.integers(0, m))
                r = base("move_in", ev=day - dt.timedelta(days=int(rng.integers(0, 10))))
                r.update(addr)
                r.update({
                    "resident_code": None if abroad else fresh(_fresh_code, taken_codes),
                    "family_name": fam, "given_name": col["given_name"][donor],
                    "family_name_kana": fam_kana,
                    "given_name_kana": col["given_name_kana"][donor],
                    "birth_date": pdate(col["birth_date"][donor]),
                    "sex": int(col["sex"][donor]), "household_id": hid,
                    "relationship": HEAD if q == 0 else ("妻" if q == 1 else "子"),
                    "previous_address": "アメリカ合衆国" if abroad else _FROM[q % len(_FROM)],
                    "from_abroad": abroad, "domicile": col["domicile"][donor],
                    "domicile_head": col["domicile_head"][donor],
                })
                if r["birth_date"] > r["event_date"]:
                    r["birth_date"] = r["event_date"] - dt.timedelta(days=365 * 20)
                rows.append(r)
                produced += 1
            continue
        i = pick()
        if i is None:
            break
        if kind in ("move_out", "death", "ex_officio_removal"):
            ev = day + dt.timedelta(days=int(rng.integers(0, 14))) if kind == "move_out" else day
            r = base(kind, i, ev)
            whole = kind == "move_out" and bool(is_head[i]) and rng.random() < 0.6
            if kind == "move_out":
                r["destination"] = _DESTINATIONS[int(rng.integers(0, len(_DESTINATIONS)))]
                r["whole_household"] = whole
            if not whole:
                r["new_head_code"] = successor(i, {i})
        elif kind == "move_within":
            r = base(kind, i)
            r.update(new_address())
            if is_head[i]:
                r["whole_household"] = True
            elif len(members(i)) > 1:
                r["household_id"] = next_hid  # moves alone: a new household at the new address
                next_hid += 1
        elif kind == "birth":
            h = head_of(i)
            ev = max(day - dt.timedelta(days=int(rng.integers(0, 14))),
                     pdate(col["address_since"][h]))
            donor = int(rng.integers(0, m))
            r = base(kind, None, ev)
            r.update({"household_id": int(hh[i]), "relationship": "子",
                      "family_name": col["family_name"][h],
                      "family_name_kana": col["family_name_kana"][h],
                      "given_name": col["given_name"][donor],
                      "given_name_kana": col["given_name_kana"][donor],
                      "sex": int(rng.integers(1, 3))})
        elif kind == "name_change":
            donor = int(rng.integers(0, m))
            r = base(kind, i)
            r.update({"family_name": col["family_name"][donor],
                      "family_name_kana": col["family_name_kana"][donor]})
            if r["family_name"] == col["family_name"][i]:
                r["family_name"] += "田"
        elif kind == "household_change":
            ms = members(i)
            if len(ms) < 2:
                r = base("name_change", i)
                r.update({"given_name": str(col["given_name"][i]) + "子"})
            elif is_head[i] or rng.random() < 0.5:
                j = int(next(int(x) for x in ms if not is_head[x]))
                h = head_of(i)
                r = base(kind, j)
                r.update({"household_action": "new_head",
                          "relationship": "夫" if col["relationship"][j] == "妻" else "同居人"})
                if dday < col["updated_on"][h] or dday < col["updated_on"][j]:
                    r = base("name_change", i)
                    r.update({"given_name": str(col["given_name"][i]) + "美"})
            else:
                r = base(kind, i)
                r.update({"household_action": "split", "household_id": next_hid})
                next_hid += 1
        elif kind == "my_number":
            if has_my_number[i]:
                r = base("code_change", i)
            else:
                r = base(kind, i)
                r["my_number"] = fresh(_fresh_my_number, taken_numbers)
        else:  # code_change
            r = base("code_change", i)
        rows.append(r)
        produced += 1
    full = [{name: row.get(name) for name in EVENT_SCHEMA.names} for row in rows]
    return pa.Table.from_pylist(full, schema=EVENT_SCHEMA)
