"""The register's layout: the notification rules hold no SQL.

Every statement that applying a notification runs lives in ``register/data.py`` (the
``Batch`` of one apply transaction); the rules (``notifications.py``), the household rules
(``households.py``) and the row checks they share (``_checks.py``) only call its named
methods and never reach the session.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import jukicore.register as register_pkg

REGISTER = Path(register_pkg.__file__).parent
#: The rules, and the row checks they share.
RULE_MODULES = ("notifications.py", "households.py", "items.py", "_checks.py")
#: SQL keywords as a statement spells them (upper case, a whole word).
SQL = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE)\b")
#: Methods of a store session (jukicore.store.backend.Session) that run SQL.
SESSION_METHODS = frozenset({"query", "execute", "executemany", "scalar"})


def _tree(name: str) -> ast.Module:
    return ast.parse((REGISTER / name).read_text(encoding="utf-8"), filename=name)


def _strings(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """Every string literal, f-string parts included (they are Constant nodes)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, node.value


def sql_literals(name: str) -> list[str]:
    return [f"{name}:{line}: {text[:60]!r}" for line, text in _strings(_tree(name))
            if SQL.search(text)]


def session_uses(name: str) -> list[str]:
    """Calls of a session method (``x.query(...)``) and any reach into ``x.s`` (the Batch's
    session) or into the Batch's private household writer."""
    found = []
    for node in ast.walk(_tree(name)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr in SESSION_METHODS:
            found.append(f"{name}:{node.lineno}: .{node.func.attr}(...)")
        if isinstance(node, ast.Attribute) and node.attr in {"s", "_household_write"}:
            found.append(f"{name}:{node.lineno}: .{node.attr}")
    return found


@pytest.mark.parametrize("name", RULE_MODULES)
def test_the_rules_hold_no_sql(name: str) -> None:
    assert not sql_literals(name), sql_literals(name)


@pytest.mark.parametrize("name", RULE_MODULES)
def test_the_rules_run_no_statement_themselves(name: str) -> None:
    assert not session_uses(name), session_uses(name)


def test_the_checks_see_sql_where_it_is() -> None:
    """The data-access module is where the statements are: the checks above find them there
    (a check that finds nothing anywhere would pass on anything)."""
    found = sql_literals("data.py")
    for keyword in ("SELECT", "INSERT", "UPDATE", "DELETE"):
        assert any(keyword in f for f in found), keyword
    assert session_uses("data.py")


def test_households_do_not_import_the_rules() -> None:
    """No import cycle: households.py builds on data.py, notifications.py on both."""
    imported = set()
    for node in ast.walk(_tree("households.py")):
        if isinstance(node, ast.ImportFrom):
            imported.add(("." * node.level) + (node.module or ""))
        elif isinstance(node, ast.Import):
            imported.update(a.name for a in node.names)
    assert not {m for m in imported if m.rsplit(".", 1)[-1] == "notifications"}, imported


def test_names_others_import_still_resolve() -> None:
    from jukicore.register import data, households, notifications

    assert notifications.Batch is data.Batch
    assert notifications.Rejected is data.Rejected
    assert notifications.fmt_code is data.fmt_code
    assert callable(notifications.apply_row) and callable(notifications.row_digest)
    assert notifications.HANDLERS["household_change"] is households.household_change
