"""Where PostgreSQL's programs are (pg_dump and pg_restore for backups; initdb and
pg_ctl for the throwaway servers of jukicore.testing)."""

from __future__ import annotations

import glob
import os
import shutil
from pathlib import Path


def find_pg_bin() -> Path | None:
    """The directory of PostgreSQL's server binaries, or None when they are not installed."""
    env = os.environ.get("JUKICORE_PG_BIN")
    if env and (Path(env) / "initdb").exists():
        return Path(env)
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[3]) if Path(p).parts[3].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None
