"""Two Register objects on one store in one process (a service beside its nightly sync).

On SQLite the stdlib's library and ADBC's bundled copy must never hold one file open at
once in one process (POSIX locks are per process): a bulk read by one object while the
other kept its connection open used to corrupt the file ("disk I/O error", "database
disk image is malformed").
"""

from __future__ import annotations

import sqlite3
import threading

from regkit import ADMIN, CLERK, TODAY, code_of, ev

from jukicore.register import Register, open_register


def _integrity(target: str) -> str:
    if target.startswith("postgresql"):
        return "ok"
    with sqlite3.connect(target) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


def test_a_second_register_on_the_same_store_corrupts_nothing(register: Register) -> None:
    code = code_of(register, 1)
    register.notify(actor=CLERK, today=TODAY, **ev("name_change", "n1", resident_code=code,
                                                   given_name="一"))
    assert register.residents(actor=ADMIN).num_rows == 15  # a bulk (ADBC) read
    for round_ in range(3):
        with open_register(register.target) as other:
            assert other.outbox(actor=ADMIN).num_rows >= 16  # bulk, beside the first
            other.notify(actor=CLERK, today=TODAY,
                         **ev("name_change", f"o{round_}", resident_code=code,
                              given_name=f"次{round_}"))
        # the first object goes on: reads, writes, bulk reads
        register.notify(actor=CLERK, today=TODAY,
                        **ev("name_change", f"n{round_ + 2}", resident_code=code,
                             given_name=f"三{round_}"))
        assert register.resident(code, actor=ADMIN)["given_name"] == f"三{round_}"
        assert register.residents(actor=ADMIN).num_rows == 15
    assert register.counts()["notifications"] == 7
    assert _integrity(register.target) == "ok"


def test_registers_of_one_store_in_threads(register: Register) -> None:
    code = code_of(register, 2)
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            with open_register(register.target) as mine:
                for i in range(5):
                    mine.notify(actor=CLERK, today=TODAY,
                                **ev("name_change", f"t{k}-{i}", resident_code=code,
                                     given_name=f"名{k}{i}"))
                    mine.outbox(actor=ADMIN)
                    register.residents(actor=ADMIN)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert register.counts()["notifications"] == 15
    assert _integrity(register.target) == "ok"
