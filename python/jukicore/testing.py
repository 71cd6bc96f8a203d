"""A throwaway PostgreSQL server on loopback, for tests and benchmarks.

Starts a private cluster (``initdb`` + ``pg_ctl``) in a temporary directory on a
free 127.0.0.1 port, trusts local connections, and removes everything on
:meth:`TempPostgres.stop`. PostgreSQL refuses to run as root: when this process
is root, the server runs as the ``postgres`` system user (Debian's packages
create it), else as ``nobody``, through ``runuser``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from jukicore.errors import MissingDependencyError, StoreError
from jukicore.store.pgbin import find_pg_bin

__all__ = ["NO_SERVER", "TempPostgres", "find_pg_bin"]

#: Why a PostgreSQL test is skipped where the server's programs are missing (CI sets
#: ``JUKICORE_REQUIRE_POSTGRES=1``, and the tests fail there instead).
NO_SERVER = ("PostgreSQL server binaries (initdb, pg_ctl) not installed: install "
             "PostgreSQL, or set JUKICORE_REQUIRE_POSTGRES=1 to fail instead")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TempPostgres:
    """A private PostgreSQL cluster; ``uri(db)`` gives a connection URI."""

    def __init__(self, *, durable: bool = False) -> None:
        bindir = find_pg_bin()
        if bindir is None:
            raise MissingDependencyError("PostgreSQL server binaries (initdb, pg_ctl) not found")
        self.bindir = bindir
        self.durable = durable
        self.dir = Path(tempfile.mkdtemp(prefix="jukicore-pg-"))
        self.data = self.dir / "data"
        self.port = _free_port()
        self.user = "juki"
        self._runas: list[str] = []
        if os.geteuid() == 0:
            name = "postgres"
            try:
                pw = pwd.getpwnam(name)
            except KeyError:
                name = "nobody"
                pw = pwd.getpwnam(name)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self._runas = ["runuser", "-u", name, "--"]
        self._started = False

    def _run(self, *args: str) -> None:
        cmd = [*self._runas, *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                              check=False, cwd=self.dir)
        if proc.returncode != 0:
            raise StoreError(f"{' '.join(args[:1])} failed: {proc.stderr or proc.stdout}")

    def start(self) -> TempPostgres:
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", self.user,
                  "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync")
        opts = [f"-p {self.port}", f"-k {self.dir}", "-c listen_addresses=127.0.0.1",
                "-c max_connections=50", "-c shared_buffers=256MB"]
        if not self.durable:
            opts += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", " ".join(opts),
                  "-l", str(self.dir / "server.log"), "-w", "-t", "60", "start")
        self._started = True
        return self

    def uri(self, dbname: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str, template: str = "template0") -> str:
        """A new database (a copy of ``template``, which nobody may be connected to)."""
        import psycopg

        with psycopg.connect(self.uri(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}" ENCODING \'UTF8\'')
        return self.uri(name)

    def drop_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.uri(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        if self._started:
            with contextlib.suppress(StoreError):
                self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                          "-w", "stop")
            self._started = False
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> TempPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
