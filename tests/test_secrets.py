"""Secrets at rest (issue 11, section 5): file and directory modes whatever the umask,
the wrapping of private keys (scrypt) and the old format still read, the node password
policy, and no secret or My Number in an error, a log record or a rejected-row report."""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

sys.path.append(str(Path(__file__).resolve().parent / "register"))

from regkit import ADMIN, LG, MUNI, PREF, make_block, make_my_number, tiny_municipality

from jukicore.errors import (
    ConflictError,
    CorruptFileError,
    InvalidInputError,
    JukiError,
    NotFoundError,
    PermissionDeniedError,
)
from jukicore.network import crypto
from jukicore.network.crypto import NodeKeys, load_private_key, save_private_key
from jukicore.network.node import Node, create_node
from jukicore.register import create_register, events_table
from jukicore.store.backend import redact_uri

PASSWORD = "a node password, long enough"


@pytest.fixture(params=[0o022, 0o000])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _mode(p: Path) -> int:
    return stat.S_IMODE(os.lstat(p).st_mode)


def _tree(root: Path) -> tuple[dict[Path, int], dict[Path, int]]:
    dirs, files = {root: _mode(root)}, {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            dirs[Path(dirpath) / d] = _mode(Path(dirpath) / d)
        for f in filenames:
            files[Path(dirpath) / f] = _mode(Path(dirpath) / f)
    return dirs, files


def test_a_whole_night_leaves_only_private_files_and_directories(
        tmp_path: Path, umask: int) -> None:
    """Three nodes, their stores (with -wal/-shm), keys, trust stores, packets in
    outboxes and inboxes, the archive, code blocks, the center's registry: every directory
    of a node 0700, every file 0600, under umask 022 and 000."""
    from jukicore.network.night import run_night

    run_night(tmp_path / "night", population=200, notifications=10, seed=4,
              password=PASSWORD)
    nodes = [p for p in (tmp_path / "night").iterdir() if (p / "node.json").exists()]
    assert len(nodes) == 3
    seen_kinds: set[str] = set()
    for node in nodes:
        dirs, files = _tree(node)
        assert {p: m for p, m in dirs.items() if m != 0o700} == {}, node
        assert {p: m for p, m in files.items() if m != 0o600} == {}, node
        seen_kinds |= {p.relative_to(node).parts[0] for p in files}
        seen_kinds |= {p.name for p in files if p.suffix in (".pem", ".jkp", ".block")}
    # the walk saw what it is meant to check
    assert {"node.json", "trust.json", "keys", "archive", "store.sqlite",
            "signing.pem", "encryption.pem"} <= seen_kinds, seen_kinds
    assert any(n.name == "center" and (n / "registry.bin").exists() for n in nodes)


def test_a_new_node_and_its_store_are_private(tmp_path: Path, umask: int) -> None:
    node = create_node(tmp_path / "deep" / "n", LG, password=PASSWORD, prefecture=PREF,
                       municipality=MUNI)
    from jukicore.register import open_register

    with open_register(node.store_target()) as reg:
        reg.import_code_block(make_block(20), actor=ADMIN)  # a write: -wal and -shm
        store = Path(node.store_target())
        for p in (store, Path(f"{store}-wal"), Path(f"{store}-shm")):
            assert _mode(p) == 0o600, p
    with node.lock("x"):
        pass
    dirs, files = _tree(node.path)
    assert set(dirs.values()) == {0o700}
    assert set(files.values()) == {0o600}
    assert {"keys", "outbox", "inbox", "locks"} <= {p.name for p in dirs}


def test_a_backup_and_its_restored_node_are_private(tmp_path: Path, umask: int) -> None:
    from jukicore.store.backup import backup_node, restore_node

    node = create_node(tmp_path / "n", LG, password=PASSWORD, prefecture=PREF,
                       municipality=MUNI)
    (node.path / "outbox" / "x.jkp").write_bytes(b"packet")  # (written by a transport)
    os.chmod(node.path / "outbox" / "x.jkp", 0o644)
    backup_node(node.path, tmp_path / "n.tar")
    assert _mode(tmp_path / "n.tar") == 0o600  # it holds the store
    restore_node(tmp_path / "n.tar", tmp_path / "back")
    dirs, files = _tree(tmp_path / "back")
    assert set(dirs.values()) == {0o700}
    assert set(files.values()) == {0o600}
    assert Node.open(tmp_path / "back").current_keys(PASSWORD).node_id == LG


def test_a_new_sqlite_store_is_private(tmp_path: Path, umask: int) -> None:
    with create_register(tmp_path / "r.db", lg_code=LG, prefecture=PREF, municipality=MUNI,
                         actor=ADMIN) as reg:
        reg.import_code_block(make_block(5), actor=ADMIN)
        for suffix in ("", "-wal", "-shm"):
            assert _mode(tmp_path / f"r.db{suffix}") == 0o600
    from jukicore._files import write_atomic

    write_atomic(tmp_path / "secret", b"x", mode=0o600)
    assert _mode(tmp_path / "secret") == 0o600
    write_atomic(tmp_path / "public", b"x")
    assert _mode(tmp_path / "public") == 0o644 & ~umask


def test_keys_are_wrapped_with_scrypt(tmp_path: Path, umask: int) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    keys = NodeKeys.generate("center")
    keys.save(tmp_path / "k", PASSWORD)
    assert _mode(tmp_path / "k") == 0o700
    docs = []
    for name, key in (("signing.pem", keys.signing), ("encryption.pem", keys.encryption)):
        path = tmp_path / "k" / name
        assert _mode(path) == 0o600
        raw = path.read_bytes()
        assert b"BEGIN" not in raw  # not the old PKCS#8 PEM
        doc = json.loads(raw)
        docs.append(doc)
        kdf = doc["kdf"]
        assert kdf["name"] == "scrypt"
        assert kdf["n"] >= 2**15 and kdf["r"] >= 8 and kdf["p"] >= 1
        assert 128 * kdf["n"] * kdf["r"] >= 32 * 2**20  # 32 MiB per guess
        salt = base64.b64decode(kdf["salt"])
        assert len(salt) >= 16
        assert doc["cipher"]["name"] == "aes-256-gcm"
        # the documented format, independently: scrypt -> AES-256-GCM -> PKCS#8 DER
        k = Scrypt(salt=salt, length=32, n=kdf["n"], r=kdf["r"], p=kdf["p"]).derive(
            PASSWORD.encode())
        aad = (f"jukicore-private-key/v1\0scrypt n={kdf['n']} r={kdf['r']} p={kdf['p']}"
               "\0aes-256-gcm").encode()
        der = AESGCM(k).decrypt(base64.b64decode(doc["cipher"]["nonce"]),
                                base64.b64decode(doc["key"]), aad)
        assert der == key.private_bytes(serialization.Encoding.DER,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption())
    assert docs[0]["kdf"]["salt"] != docs[1]["kdf"]["salt"]
    back = NodeKeys.load(tmp_path / "k", PASSWORD)
    assert (back.signing_key_id, back.encryption_key_id) == (keys.signing_key_id,
                                                              keys.encryption_key_id)
    with pytest.raises(PermissionDeniedError):
        NodeKeys.load(tmp_path / "k", PASSWORD + "x")


def test_an_edited_or_hostile_key_file_is_refused(tmp_path: Path) -> None:
    keys = NodeKeys.generate("center")
    path = tmp_path / "signing.pem"
    save_private_key(keys.signing, path, PASSWORD)
    doc = json.loads(path.read_bytes())
    weaker = {**doc, "kdf": {**doc["kdf"], "n": 2**14}}  # a downgrade: the key differs
    path.write_text(json.dumps(weaker))
    with pytest.raises(PermissionDeniedError):
        load_private_key(path, PASSWORD)
    for kdf in ({"n": 2**30}, {"n": 3 * 2**14}, {"n": 2**10}, {"r": 10**6}, {"n": "32768"}):
        path.write_text(json.dumps({**doc, "kdf": {**doc["kdf"], **kdf}}))
        with pytest.raises(CorruptFileError):  # refused before any work
            load_private_key(path, PASSWORD)
    path.write_text(json.dumps({**doc, "key": doc["key"][:-8] + "AAAAAAA="}))
    with pytest.raises(PermissionDeniedError):
        load_private_key(path, PASSWORD)
    path.write_text("{}")
    with pytest.raises(CorruptFileError):
        load_private_key(path, PASSWORD)


def test_old_pkcs8_key_files_still_load_and_are_wrapped_again(tmp_path: Path) -> None:
    """A generation written before (password-protected PKCS#8 PEM, PBKDF2 2,048) still
    opens, and its first opening writes it again wrapped with scrypt (mode 0600); a
    rotation writes the new generation in the new format."""
    from cryptography.hazmat.primitives import serialization

    keys = NodeKeys.generate("center")
    keys.save(tmp_path / "k", PASSWORD)
    for name, key in (("signing.pem", keys.signing), ("encryption.pem", keys.encryption)):
        (tmp_path / "k" / name).write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(PASSWORD.encode())))
    assert (tmp_path / "k" / "signing.pem").read_bytes().startswith(
        b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    back = NodeKeys.load(tmp_path / "k", PASSWORD)
    assert back.signing_key_id == keys.signing_key_id
    assert back.encryption_key_id == keys.encryption_key_id
    for name in ("signing.pem", "encryption.pem"):
        raw = (tmp_path / "k" / name).read_bytes()
        assert b"BEGIN" not in raw and json.loads(raw)["kdf"]["name"] == "scrypt"
        assert _mode(tmp_path / "k" / name) == 0o600
    again = NodeKeys.load(tmp_path / "k", PASSWORD)
    assert again.signing_key_id == keys.signing_key_id
    with pytest.raises(PermissionDeniedError):
        load_private_key(tmp_path / "k" / "signing.pem", "not the password")


def test_an_old_key_file_that_cannot_be_written_again_still_opens(tmp_path: Path) -> None:
    """A full disk (here: a file size limit) keeps the old file and its key usable."""
    import resource
    import subprocess
    import sys

    from cryptography.hazmat.primitives import serialization

    key = NodeKeys.generate("center").signing
    old = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.BestAvailableEncryption(PASSWORD.encode()))
    (tmp_path / "signing.pem").write_bytes(old)
    script = ("import sys; from jukicore.network.crypto import load_private_key;"
              "print(load_private_key(sys.argv[1], sys.argv[2]).private_bytes_raw().hex())")
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "signing.pem"), PASSWORD],
        capture_output=True, text=True, check=False, timeout=120,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (64, 64)))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == key.private_bytes_raw().hex()
    assert "keeps its old, weaker wrapping" in done.stderr
    assert (tmp_path / "signing.pem").read_bytes() == old


def test_an_old_node_rotates_into_the_new_format(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    node = create_node(tmp_path / "c", "center", password=PASSWORD)
    gen1 = node.path / "keys" / "1"
    old = NodeKeys.load(gen1, PASSWORD)
    for name, key in (("signing.pem", old.signing), ("encryption.pem", old.encryption)):
        (gen1 / name).write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(PASSWORD.encode())))
    Node.open(node.path).rotate(PASSWORD)
    assert json.loads((node.path / "keys" / "2" / "signing.pem").read_bytes())["kdf"][
        "name"] == "scrypt"
    assert Node.open(node.path).keys(PASSWORD)[0].signing_key_id == \
        old.signing_key_id


@pytest.mark.parametrize("password", ["qwz9", "elevenchars", "パスワードです", b"0123456789a"])
def test_a_short_node_password_is_refused_and_never_shown(tmp_path: Path,
                                                          password: str | bytes) -> None:
    target = tmp_path / "n"
    with pytest.raises(InvalidInputError) as err:
        create_node(target, "center", password=password)
    shown = password.decode() if isinstance(password, bytes) else password
    assert shown not in str(err.value)
    assert "at least 12 characters" in str(err.value)
    assert not target.exists()  # nothing made
    create_node(target, "center", password="twelve chars")  # 12: enough


def test_the_cli_refuses_a_short_node_password_without_echoing_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from jukicore.cli import main

    secret = "hunter2"
    monkeypatch.setenv("JUKICORE_NODE_PASSWORD", secret)
    r = CliRunner().invoke(main, ["node", "init", str(tmp_path / "n"), "--id", "center"])
    assert r.exit_code == 1, r.output
    assert "at least 12 characters" in r.output and secret not in r.output
    assert not (tmp_path / "n" / "node.json").exists()


def test_a_wrong_key_password_is_never_shown(tmp_path: Path) -> None:
    node = create_node(tmp_path / "c", "center", password=PASSWORD)
    wrong = "a wrong password, long too"
    with pytest.raises(PermissionDeniedError) as err:
        node.current_keys(wrong)
    assert wrong not in str(err.value) and PASSWORD not in str(err.value)


# -- no My Number in a message, a log record or a rejected-row report -------------------------


def _my_number_event(nid: str, code: int, number: int) -> dict[str, object]:
    day = dt.date(2024, 6, 3)
    return {"notification_id": nid, "kind": "my_number", "notified_date": day,
            "event_date": day, "resident_code": code, "my_number": number}


def test_no_my_number_in_a_rejected_row_or_a_log(tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    """An invalid My Number, and a replaced one given again: the rejected rows, the
    report table and every log record name neither."""
    residents, households = tiny_municipality()
    first, second = make_my_number(12345678901), make_my_number(12345678902)
    bad = first + 1 if first % 10 != 9 else first - 1  # the wrong check digit
    with create_register(tmp_path / "r.db", lg_code=LG, prefecture=PREF,
                         municipality=MUNI, actor=ADMIN) as reg:
        reg.import_code_block(make_block(50), actor=ADMIN)
        reg.load(residents, households, actor=ADMIN)
        codes = reg.residents(actor=ADMIN).column("resident_code").to_pylist()
        ok = reg.apply(events_table([_my_number_event("m1", codes[0], first),
                                     _my_number_event("m2", codes[0], second)]),
                       actor=ADMIN, today=dt.date(2024, 6, 3))
        assert ok.ok, ok.rejected  # ``first`` is now replaced
        before = reg.content_digest()
        with caplog.at_level(logging.DEBUG, logger="jukicore"):
            report = reg.apply(events_table([_my_number_event("m3", codes[1], bad),
                                             _my_number_event("m4", codes[1], first)]),
                               actor=ADMIN, today=dt.date(2024, 6, 3))
        assert reg.content_digest() == before
    invalid, replaced = report.rejected
    assert invalid.column == replaced.column == "my_number"
    assert replaced.error == "ConflictError"
    assert f"the My Number ending {first % 100:02d} was replaced" in replaced.reason
    texts = [invalid.reason, replaced.reason, str(report.rejected_table().to_pylist()),
             *(r.getMessage() for r in caplog.records),
             *(json.dumps(r.__dict__, default=str) for r in caplog.records)]
    for t in texts:
        for n in (bad, first):
            assert f"{n:012d}" not in t and str(n) not in t, t


@pytest.mark.parametrize("value", ["12345678901x", "1234567890123", "１２３４５６７８９０１２",
                                   10**13 + 12345, -123456789012])
def test_no_my_number_in_a_codes_error(value: object) -> None:
    from jukicore.codes import is_valid_my_number, my_number_check_digit

    for call in (lambda: is_valid_my_number(value),  # type: ignore[arg-type]
                 lambda: is_valid_my_number([value, "123456789012"]),  # type: ignore[list-item]
                 lambda: my_number_check_digit(value)):  # type: ignore[arg-type]
        with pytest.raises(JukiError) as err:
            call()
        text = str(err.value) + "".join(r.reason for r in err.value.rows)
        digits = str(value).lstrip("-")
        assert digits not in text and digits[:8] not in text, text
    # a resident code's error still names the value (it is not a secret)
    from jukicore.codes import is_valid_resident_code

    with pytest.raises(InvalidInputError, match="1234567890x"):
        is_valid_resident_code("1234567890x")


def test_no_my_number_in_the_codes_check_report(tmp_path: Path) -> None:
    from jukicore.cli import main

    good = make_my_number(98765432109)
    bad = good + 1 if good % 10 != 9 else good - 1
    src = tmp_path / "numbers.txt"
    src.write_text(f"{good:012d}\n{bad:012d}\n12345x789012\n")
    for extra in ([], ["--json"]):
        r = CliRunner().invoke(main, ["codes", "check", "--kind", "my-number", str(src),
                                      *extra])
        assert r.exit_code == 1
        assert f"{bad:012d}" not in r.output and "12345x789012" not in r.output
        assert "line 2" in r.output or '"line": 2' in r.output


def test_a_postgresql_password_is_never_shown(db_target: str) -> None:
    assert redact_uri("postgresql://u:s3cret@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redact_uri("postgresql://h/db?password=s3cret&x=1") == \
        "postgresql://h/db?password=***&x=1"
    if "://" not in db_target:
        assert redact_uri(db_target) == db_target
        return
    # the test server trusts loopback: a password in the URI is accepted and ignored
    user_at = db_target.split("://", 1)[1].split("@", 1)[0]
    uri = db_target.replace(f"://{user_at}@", f"://{user_at}:s3cretpw@", 1)
    create_register(uri, lg_code=LG, prefecture=PREF, municipality=MUNI, actor=ADMIN).close()
    with pytest.raises(ConflictError) as err:
        create_register(uri, lg_code=LG, prefecture=PREF, municipality=MUNI, actor=ADMIN)
    assert "s3cretpw" not in str(err.value) and "***" in str(err.value)
    from jukicore.identity import open_identity_store

    with pytest.raises(NotFoundError) as err2:
        open_identity_store(uri)
    assert "s3cretpw" not in str(err2.value)


def test_crypto_module_constants_match_the_docs() -> None:
    doc = (Path(__file__).resolve().parent.parent / "docs" / "crypto.md").read_text()
    assert crypto.SCRYPT_N == 2**15 and crypto.SCRYPT_R == 8 and crypto.SCRYPT_P == 1
    assert '"n": 32768, "r": 8, "p": 1' in doc


def test_private_dir_tightens_and_refuses_a_file(tmp_path: Path, umask: int) -> None:
    from jukicore._files import private_dir
    from jukicore.errors import FileError

    (tmp_path / "open").mkdir(mode=0o755)
    os.chmod(tmp_path / "open", 0o755)
    create_node(tmp_path / "open", "center", password=PASSWORD)  # an existing directory
    assert _mode(tmp_path / "open") == 0o700
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    private_dir(tmp_path / "link")
    assert _mode(tmp_path / "real") == 0o700
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(FileError):
        private_dir(tmp_path / "file")
