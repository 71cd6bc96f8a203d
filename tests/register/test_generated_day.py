"""A generated day is valid against the register: a move-in never brings a code or a My
Number a current resident holds (a 1,000,000-resident register drew two such codes in
10,000 rows, and the register rightly refused them)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from regkit import ADMIN, CLERK, TODAY, code_of, ev, make_my_number

from jukicore.register import Register
from jukicore.synth.day import generate_day_for

MIX = {"move_in": 0.7, "my_number": 0.3}


def _moved_in(day: pa.Table, column: str) -> list[int]:
    kind = "move_in" if column == "resident_code" else "my_number"
    rows = day.filter(pc.equal(day.column("kind"), kind))
    return [v for v in rows.column(column).to_pylist() if v is not None]


def test_move_ins_never_bring_a_held_code_or_number(register: Register) -> None:
    # three residents with a My Number (a clash below gives them the day's numbers)
    given = register.apply([ev("my_number", f"m{i}", resident_code=code_of(register, i),
                               my_number=make_my_number(700 + i)) for i in (2, 4, 6)],
                           actor=CLERK, today=TODAY)
    assert given.applied == 3
    res = register.residents(actor=ADMIN)
    first = generate_day_for(res, lg_prefix=register.lg_code, day=TODAY, n=8, seed=5, mix=MIX)
    codes, numbers = _moved_in(first, "resident_code"), _moved_in(first, "my_number")
    assert codes and numbers and len(codes) + len(numbers) <= res.num_rows
    # the same register, but residents now hold exactly what that day drew: the same seed
    # draws the same values first, and must draw again (which residents have a My Number
    # stays as it was: only values change, so the day's picks stay the same)
    held_codes = res.column("resident_code").to_pylist()
    held_codes[-len(codes):] = codes
    held_numbers = res.column("my_number").to_pylist()
    with_number = [i for i, v in enumerate(held_numbers) if v is not None]
    assert len(with_number) >= len(numbers)
    for i, v in zip(with_number, numbers, strict=False):
        held_numbers[i] = v
    clashing = (res.set_column(res.schema.get_field_index("resident_code"), "resident_code",
                               pa.array(held_codes, res.schema.field("resident_code").type))
                .set_column(res.schema.get_field_index("my_number"), "my_number",
                            pa.array(held_numbers, res.schema.field("my_number").type)))
    again = generate_day_for(clashing, lg_prefix=register.lg_code, day=TODAY, n=8, seed=5,
                             mix=MIX)
    # (a draw again shifts the rest of the day: only the clashes are compared)
    assert _moved_in(again, "resident_code") and _moved_in(again, "my_number")
    assert not set(_moved_in(again, "resident_code")) & set(held_codes)
    assert not set(_moved_in(again, "my_number")) & set(v for v in held_numbers if v is not None)
    # and the day as drawn applies whole on the real register
    report = register.apply(first, actor=CLERK, today=TODAY)
    assert report.rejected == ()
