"""A bulk load never gives a My Number that is held, was replaced, or repeats."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from regkit import ADMIN, TODAY, code_of, ev, make_my_number, tiny_municipality

from jukicore.errors import ConflictError, InvalidInputError
from jukicore.register import Register


def _others(numbers: list[int | None]) -> tuple[pa.Table, pa.Table]:
    """Two households of people not in the register (5), the first with these My Numbers."""
    residents, households = tiny_municipality(2)
    n = residents.num_rows
    residents = residents.set_column(
        residents.schema.get_field_index("given_name"), "given_name",
        pc.binary_join_element_wise(residents.column("given_name"), "美", ""))
    padded = numbers + [None] * (n - len(numbers))
    return (residents.append_column("my_number", pa.array(padded, pa.uint64())),
            households)


def test_a_held_my_number_is_refused_and_nothing_is_loaded(register: Register) -> None:
    held = make_my_number(12345678901)
    register.notify(actor=ADMIN, **ev("my_number", "mn-1", resident_code=code_of(register, 1),
                                      my_number=held))
    before = register.content_digest()
    residents, households = _others([make_my_number(22222222222), held, None])
    with pytest.raises(ConflictError) as err:
        register.load(residents, households, actor=ADMIN)
    assert [(r.row, r.column) for r in err.value.rows] == [(1, "my_number")]
    assert register.content_digest() == before


def test_a_replaced_my_number_never_returns_through_a_load(register: Register) -> None:
    first, second = make_my_number(33333333333), make_my_number(44444444444)
    code = code_of(register, 1)
    register.notify(actor=ADMIN, **ev("my_number", "mn-1", resident_code=code, my_number=first))
    register.notify(actor=ADMIN, today=TODAY,
                    **ev("my_number", "mn-2", resident_code=code, my_number=second))
    before = register.content_digest()
    residents, households = _others([None, None, first])
    with pytest.raises(ConflictError) as err:
        register.load(residents, households, actor=ADMIN)
    assert [(r.row, r.column) for r in err.value.rows] == [(2, "my_number")]
    assert register.content_digest() == before


def test_my_numbers_repeating_in_the_table_are_refused(register: Register) -> None:
    before = register.content_digest()
    same = make_my_number(55555555555)
    residents, households = _others([same, None, same])
    with pytest.raises(InvalidInputError) as err:
        register.load(residents, households, actor=ADMIN)
    assert sorted(r.row for r in err.value.rows) == [0, 2]
    assert register.content_digest() == before
    residents, households = _others([same, None, make_my_number(66666666666)])
    register.load(residents, households, actor=ADMIN)  # fresh numbers load
    assert register.content_digest() != before
