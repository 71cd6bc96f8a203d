"""Helpers of the certificates suite."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from regkit import ADMIN, CLERK, LG, code_of

from jukicore.certificates import Certificates, PhotoId, Requester
from jukicore.certificates.schema import ISSUANCE_TABLE
from jukicore.network.crypto import NodeKeys, TrustStore
from jukicore.register import Register

#: Monday 2024-06-03, 10:00 in Japan (a business day, within a clerk's hours)
NOW = dt.datetime(2024, 6, 3, 1, 0, tzinfo=dt.UTC)
KEY_FROM = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
MAYOR = "千代田区長　山田　一郎"

__all__ = ["ADMIN", "CLERK", "LG", "NOW", "code_of", "counts", "pdf_text", "photo",
           "requester"]


@pytest.fixture
def keys() -> NodeKeys:
    return NodeKeys.generate(LG)


@pytest.fixture
def trust(keys: NodeKeys) -> TrustStore:
    t = TrustStore()
    t.add_record(keys.public_record("municipality", KEY_FROM))
    return t


@pytest.fixture
def certs(register: Register, keys: NodeKeys) -> Certificates:
    return Certificates(register, keys, mayor=MAYOR, office="千代田区役所 区民課",
                        key_valid_from=KEY_FROM)


def photo(number: str = "AB1234567") -> PhotoId:
    return PhotoId("driver_license", number)


def requester(reg: Register, person_id: int, **kw: Any) -> Requester:
    """The resident ``person_id`` of the tiny municipality at the counter with a photo ID."""
    rec = reg.resident(code_of(reg, person_id), actor=ADMIN)
    return Requester(photo(), name=f"{rec['family_name']} {rec['given_name']}",
                     resident_code=rec["resident_code"], **kw)


def counts(reg: Register) -> tuple[Any, ...]:
    """Everything a refused request must leave as it was: the register's content
    (its audit of changes included), and the certificates issued."""
    with reg._b.session(write=False) as s:
        issued = int(s.scalar(f"SELECT count(*) FROM {ISSUANCE_TABLE.name}"))
        changes = int(s.scalar("SELECT count(*) FROM audit WHERE action NOT IN"
                               " ('access.denied', 'access.override', 'register.read')"))
    return reg.content_digest(), issued, changes


def pdf_text(pdf: bytes, tmp: Path) -> str:
    """The PDF's text by poppler's pdftotext (what a person's viewer shows)."""
    exe = shutil.which("pdftotext")
    assert exe, "poppler-utils (pdftotext) is installed by tools/system-deps.sh"
    p = tmp / "cert.pdf"
    p.write_bytes(pdf)
    return subprocess.run([exe, "-enc", "UTF-8", str(p), "-"], capture_output=True,
                          check=True).stdout.decode()


def pdf_png(pdf: bytes, tmp: Path, dpi: int = 100) -> list[Path]:
    exe = shutil.which("pdftoppm")
    assert exe
    p = tmp / "render.pdf"
    p.write_bytes(pdf)
    subprocess.run([exe, "-r", str(dpi), "-png", str(p), str(tmp / "page")], check=True)
    return sorted(tmp.glob("page-*.png"))
