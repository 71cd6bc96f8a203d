"""Every ids function that takes a column accepts any Arrow PyCapsule object.

pyarrow arrays and chunked arrays, polars Series and one-column DataFrames (strings are
``string_view`` in polars), duckdb relations, pandas Series and DataFrames (through their
Arrow stream, or ``pa.array`` on older pandas). Each answers like the plain list, and a bad
value is an InvalidInputError naming its row. Also: the pyarrow floor in pyproject.toml
works (a scratch venv, when PyPI is reachable).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from jukicore.codes import (
    CodeBlock,
    CodeRegistry,
    MyNumberIssuer,
    format_code,
    is_valid_lg_code,
    is_valid_my_number,
    is_valid_resident_code,
    lg_code_check_digit,
    my_number_check_digit,
    resident_code_check_digit,
)
from jukicore.errors import InvalidInputError

pl = pytest.importorskip("polars")
duckdb = pytest.importorskip("duckdb")
pd = pytest.importorskip("pandas")

ROOT = Path(__file__).resolve().parents[1]
KEY = bytes(range(32))


def _sample() -> tuple[np.ndarray, list[str]]:
    codes = CodeRegistry().generate(50)
    return codes, format_code(codes).tolist()


def _duck(values: list[Any], sql_type: str) -> Any:
    con = duckdb.connect()
    con.execute(f"create table t (c {sql_type})")
    con.executemany("insert into t values (?)", [[v] for v in values])
    return con.sql("select c from t")  # keeps insertion order for a plain scan


MAKERS: dict[str, Callable[[list[Any], str], Any]] = {
    "pyarrow array": lambda v, t: pa.array(v, pa.string() if t == "str" else pa.uint64()),
    "pyarrow chunked": lambda v, t: pa.chunked_array(
        [v[:20], v[20:]], pa.large_string() if t == "str" else pa.uint64()),
    "pyarrow string_view": lambda v, t: pa.array(v, pa.string_view() if t == "str"
                                                 else pa.uint64()),
    "polars series": lambda v, t: pl.Series("c", v, dtype=pl.String if t == "str"
                                            else pl.UInt64),
    "polars frame": lambda v, t: pl.DataFrame({"c": pl.Series(v, dtype=pl.String if t == "str"
                                                              else pl.UInt64)}),
    "polars categorical": lambda v, t: pl.Series("c", v, dtype=pl.Categorical if t == "str"
                                                 else pl.UInt64),
    "duckdb relation": lambda v, t: _duck(v, "varchar" if t == "str" else "ubigint"),
    "pandas series": lambda v, t: pd.Series(v, dtype="string[pyarrow]" if t == "str"
                                            else "uint64"),
    "pandas object series": lambda v, t: pd.Series(v, dtype=object),
    "pandas frame": lambda v, t: pd.DataFrame({"c": pd.Series(v, dtype=object if t == "str"
                                                              else "uint64")}),
}


@pytest.mark.parametrize("maker", sorted(MAKERS))
@pytest.mark.parametrize("kind", ["str", "int"])
def test_every_column_function_takes_every_arrow_object(maker: str, kind: str) -> None:
    codes, text = _sample()
    values: list[Any] = text if kind == "str" else [int(c) for c in codes]
    make = lambda: MAKERS[maker](values, kind)  # noqa: E731  (fresh object per call)
    expect = is_valid_resident_code(values)
    assert expect.all()
    assert np.array_equal(is_valid_resident_code(make()), expect)
    assert np.array_equal(format_code(make()), np.array(text))
    reg = CodeRegistry()
    assert reg.add(make()) == 50 and reg.contains(make()).all()
    block = CodeBlock.from_codes(make(), "130001")
    assert np.array_equal(block.codes, codes)
    numbers = MyNumberIssuer(KEY).issue(make())
    assert numbers.shape == (50,) and is_valid_my_number(numbers).all()
    bodies = [v[:10] for v in text] if kind == "str" else [int(c) // 10 for c in codes]
    assert np.array_equal(resident_code_check_digit(MAKERS[maker](bodies, kind)),
                          codes % 10)
    lg = ["131130", "011002"] if kind == "str" else [131130, 11002]
    assert is_valid_lg_code(MAKERS[maker](lg, kind)).tolist() == [True, True]
    assert lg_code_check_digit(MAKERS[maker](
        [x[:5] for x in lg] if kind == "str" else [x // 10 for x in lg], kind)).tolist() == [0, 2]
    my = ["123456789018"] if kind == "str" else [123456789018]
    assert is_valid_my_number(MAKERS[maker](my, kind)).tolist() == [True]
    assert my_number_check_digit(MAKERS[maker](
        [m[:11] for m in my] if kind == "str" else [m // 10 for m in my], kind)).tolist() == [8]


@pytest.mark.parametrize("maker", sorted(MAKERS))
def test_bad_values_in_arrow_objects_name_their_row(maker: str) -> None:
    _, text = _sample()
    bad = [*text[:3], "１２３４５６７８９０１", *text[3:6], None, "12345"]
    obj = MAKERS[maker](bad, "str")
    with pytest.raises(InvalidInputError) as caught:
        is_valid_resident_code(obj)
    assert [r.row for r in caught.value.rows] == [3, 7, 8], caught.value


def test_a_table_of_two_columns_is_refused() -> None:
    for obj in (pl.DataFrame({"a": ["131130"], "b": ["131130"]}),
                duckdb.sql("select '131130' as a, '131130' as b"),
                pd.DataFrame({"a": ["131130"], "b": ["131130"]})):
        with pytest.raises(InvalidInputError, match="2 columns"):
            is_valid_lg_code(obj)


# ------------------------------------------------------------------ the pyarrow floor


def _pyarrow_floor() -> str:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for dep in deps:
        m = re.fullmatch(r"pyarrow>=([0-9.]+)", dep.replace(" ", ""))
        if m:
            return m.group(1)
    raise AssertionError("pyproject.toml declares no pyarrow floor")


def _pypi_reachable() -> bool:
    try:
        urllib.request.urlopen("https://pypi.org/simple/pyarrow/", timeout=5).close()
    except OSError:
        return False
    return True


SMOKE = """
import numpy as np, pyarrow as pa
from jukicore.codes import CodeBlock, CodeRegistry, format_code, is_valid_resident_code
from jukicore.errors import InvalidInputError
reg = CodeRegistry()
codes = reg.generate(100)
text = format_code(codes).tolist()
class Capsule:  # what polars, duckdb and pandas hand over: the PyCapsule interface
    def __init__(self, col):
        self.col = col
    def __arrow_c_array__(self, requested_schema=None):
        return self.col.__arrow_c_array__(requested_schema)
class Stream:
    def __init__(self, col):
        self.col = col
    def __arrow_c_stream__(self, requested_schema=None):
        return self.col.__arrow_c_stream__(requested_schema)
for col in (pa.array(text), pa.array(text, pa.large_string()), pa.array(text, pa.string_view()),
            pa.array(codes)):
    assert is_valid_resident_code(col).all()
    assert is_valid_resident_code(Capsule(col)).all()
for col in (pa.chunked_array([text[:10], text[10:]]), pa.chunked_array([text], pa.string_view()),
            pa.table({"c": text})):
    assert is_valid_resident_code(Stream(col)).all()
try:
    is_valid_resident_code(pa.array(["１２３４５６７８９０１"], pa.string_view()))
    raise SystemExit("full-width digits accepted")
except InvalidInputError:
    pass
block = reg.allocate_block(10, "130001")
assert len(CodeBlock.from_bytes(block.to_bytes())) == 10
print("pyarrow", pa.__version__, "ok")
"""


@pytest.mark.slow
def test_the_declared_pyarrow_floor_works(tmp_path: Path) -> None:
    """A scratch venv with exactly the floor version runs the ids smoke script
    (about 30-60 s with a warm pip cache). Skipped only when PyPI is unreachable."""
    if not _pypi_reachable():
        pytest.skip("PyPI is unreachable: cannot install the floor pyarrow")
    floor = _pyarrow_floor()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = venv / "bin" / "pip"
    # numpy 2 needs pyarrow >= 16 built against it; the floor is tested with numpy < 2.3.
    subprocess.run([str(pip), "install", "-q", "--disable-pip-version-check",
                    f"pyarrow=={floor}", "numpy<2.3", "click", "cryptography"],
                   check=True, timeout=600)
    env = dict(os.environ, PYTHONPATH=str(ROOT / "python"))
    done = subprocess.run([str(venv / "bin" / "python"), "-c", SMOKE], capture_output=True,
                          text=True, env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"pyarrow {floor}" in done.stdout
    shutil.rmtree(venv, ignore_errors=True)
