"""Keys, trust store, data-key wrap and bulk record encryption (jukicore.network.crypto)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import stat
import struct
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from jukicore import _jukicore
from jukicore.errors import (
    ConflictError,
    CorruptFileError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from jukicore.network.crypto import (
    WRAPPED_KEY_LEN,
    NodeKeys,
    RecordCipher,
    TrustStore,
    key_id,
    load_private_key,
    new_data_key,
    open_records,
    save_private_key,
    seal_records,
    unwrap_data_key,
    wrap_context,
    wrap_data_key,
)

PID = bytes(range(16))
T0 = dt.datetime(2024, 4, 1, tzinfo=dt.UTC)


def documented_context(packet_id: bytes, slot: int, name: str, n: int,
                       null_mask: np.ndarray | None) -> bytes:
    """A column's record context exactly as docs/crypto.md describes it."""
    nb = name.encode()
    digest = (hashlib.sha256(b"no-nulls").digest() if null_mask is None
              else hashlib.sha256(np.packbits(null_mask).tobytes()).digest())
    return packet_id + struct.pack(">IH", slot, len(nb)) + nb + struct.pack(">Q", n) + digest


def documented_record_key(data_key: bytes, context: bytes) -> bytes:
    """Scheme 2: the column's own key, derived from the packet's data key."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=b"jukicore/v2/record-key\0" + context).derive(data_key)


def names_column(n: int = 50) -> pa.Array:
    return pa.array([f"山田 太郎{i}" * (i % 4) for i in range(n)], pa.string())


# ------------------------------------------------------------ raw Rust binding


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint32, np.uint64])
def test_rust_seal_decrypts_with_cryptography(dtype: type) -> None:
    key = os.urandom(32)
    recs = [b"", b"a", os.urandom(200), "住所".encode() * 40]
    data = b"".join(recs)
    offsets = np.cumsum([0] + [len(r) for r in recs]).astype(dtype)
    ct, co = _jukicore.aead_seal(key, b"\x00\x00\x00\x09", b"ctx", pa.py_buffer(data), offsets)
    assert ct.dtype == np.uint8 and co.dtype == np.int64
    assert co[0] == 0 and len(co) == len(recs) + 1
    for i, rec in enumerate(recs):
        idx = i.to_bytes(8, "big")
        got = AESGCM(key).decrypt(b"\x00\x00\x00\x09" + idx, ct[co[i]:co[i + 1]].tobytes(),
                                  b"ctx" + idx)
        assert got == rec


def test_cryptography_sealed_records_open_in_rust() -> None:
    key = os.urandom(32)
    recs = [os.urandom(k) for k in (0, 5, 31, 257)]
    sealed = [AESGCM(key).encrypt(b"\x01\x02\x03\x04" + i.to_bytes(8, "big"), r,
                                  b"P" + i.to_bytes(8, "big")) for i, r in enumerate(recs)]
    offsets = np.cumsum([0] + [len(s) for s in sealed]).astype(np.int64)
    pt, po = _jukicore.aead_open(key, b"\x01\x02\x03\x04", b"P", b"".join(sealed), offsets,
                                 parallel=False)
    assert [pt[po[i]:po[i + 1]].tobytes() for i in range(len(recs))] == recs


def test_rust_open_names_first_failing_row_and_bad_arguments_are_typed() -> None:
    key = os.urandom(32)
    data = os.urandom(1000)
    offsets = np.arange(0, 1001, 10, dtype=np.int64)
    ct, co = _jukicore.aead_seal(key, b"abcd", b"", data, offsets)
    bad = ct.copy()
    bad[co[37] + 3] ^= 1
    bad[co[80]] ^= 1
    with pytest.raises(CorruptFileError, match="row 37:"):
        _jukicore.aead_open(key, b"abcd", b"", bad, co)
    with pytest.raises(InvalidInputError):
        _jukicore.aead_seal(key[:16], b"abcd", b"", data, offsets)
    with pytest.raises(InvalidInputError):
        _jukicore.aead_seal(key, b"abc", b"", data, offsets)
    with pytest.raises(InvalidInputError) as ei:
        _jukicore.aead_seal(key, b"abcd", b"", data[:500], offsets)
    assert ei.value.rows and ei.value.rows[0].row == 50  # record 50 ends at 510 > 500
    with pytest.raises(TypeError):
        _jukicore.aead_seal(key, b"abcd", b"", data, offsets.astype(np.float64))


# ------------------------------------------------------------ column sealing


def test_sealed_string_column_interoperates_with_cryptography() -> None:
    key = new_data_key()
    col = names_column()
    sealed = seal_records(key, PID, 3, "family_name", col)
    assert sealed.type == pa.large_binary() and len(sealed) == len(col)
    column_key = documented_record_key(key, documented_context(PID, 3, "family_name",
                                                               len(col), None))
    for i in range(len(col)):
        idx = i.to_bytes(8, "big")
        nonce = struct.pack(">I", 3) + idx
        plain = AESGCM(column_key).decrypt(nonce, sealed[i].as_py(), idx)
        assert plain.decode() == col[i].as_py()


def test_scheme_1_records_interoperate_and_stay_readable() -> None:
    """Packets of format 1 sealed records under the data key with the long AAD."""
    key = new_data_key()
    col = names_column(20)
    sealed = seal_records(key, PID, 2, "address", col, scheme=1)
    aad = b"jukicore/v1/record\0" + documented_context(PID, 2, "address", len(col), None)
    idx = (7).to_bytes(8, "big")
    plain = AESGCM(key).decrypt(struct.pack(">I", 2) + idx, sealed[7].as_py(), aad + idx)
    assert plain.decode() == col[7].as_py()
    assert open_records(key, PID, 2, "address", sealed, type=pa.string(), scheme=1).equals(col)
    with pytest.raises(CorruptFileError):  # one scheme's records never open as the other's
        open_records(key, PID, 2, "address", sealed, type=pa.string(), scheme=2)
    with pytest.raises(InvalidInputError, match="scheme"):
        seal_records(key, PID, 2, "address", col, scheme=3)


def test_null_pattern_is_bound_and_kept() -> None:
    key = new_data_key()
    col = pa.array(["a", None, "ccc", None, ""], pa.string())
    sealed = seal_records(key, PID, 0, "building", col)
    assert sealed.null_count == 2 and sealed.is_null().to_pylist() == col.is_null().to_pylist()
    mask = col.is_null().to_numpy(zero_copy_only=False)
    column_key = documented_record_key(key, documented_context(PID, 0, "building", 5, mask))
    assert AESGCM(column_key).decrypt(struct.pack(">IQ", 0, 2), sealed[2].as_py(),
                                      (2).to_bytes(8, "big")) == b"ccc"
    back = open_records(key, PID, 0, "building", sealed, type=pa.string())
    assert back.equals(col)
    # Unmasking a null (or masking a value) changes the bound null pattern.
    flipped = pa.Array.from_buffers(pa.large_binary(), 5, [None, *sealed.buffers()[1:]])
    with pytest.raises(CorruptFileError, match="row 0"):
        open_records(key, PID, 0, "building", flipped, type=pa.string())


@pytest.mark.parametrize(
    "column",
    [
        pa.array(["東京都千代田区", "", "x" * 300, "大阪府"], pa.string()),
        pa.array(["a", "bb", None], pa.large_string()),
        pa.array([b"\x00\x01", b"", None, b"\xff" * 40], pa.binary()),
        pa.array([b"z", b"yy"], pa.large_binary()),
        pa.array([12345678901, 98765432109, None], pa.uint64()),
        pa.array([dt.date(1950, 1, 2), None, dt.date(2024, 2, 29)], pa.date32()),
        pa.array([1, 2, 1, None], pa.int8()),
        pa.array([], pa.string()),
        pa.array([], pa.uint64()),
    ],
    ids=lambda c: str(c.type),
)
def test_round_trip_keeps_type_values_and_nulls(column: pa.Array) -> None:
    key = new_data_key()
    sealed = seal_records(key, PID, 7, "c", column)
    back = open_records(key, PID, 7, "c", sealed, type=column.type)
    assert back.type == column.type
    assert back.equals(column)


def test_sliced_and_chunked_columns() -> None:
    key = new_data_key()
    base = pa.array([f"v{i}" if i % 5 else None for i in range(100)], pa.string())
    part = base.slice(13, 40)
    back = open_records(key, PID, 1, "c", seal_records(key, PID, 1, "c", part), type=pa.string())
    assert back.to_pylist() == part.to_pylist()
    codes = pa.chunked_array([pa.array([1, 2], pa.uint64()), pa.array([3], pa.uint64())])
    sealed = seal_records(key, PID, 2, "resident_code", codes)
    assert open_records(key, PID, 2, "resident_code", sealed,
                        type=pa.uint64()).to_pylist() == [1, 2, 3]
    fixed = pa.array(np.arange(100, dtype=np.uint64)).slice(90)
    sealed = seal_records(key, PID, 3, "n", fixed)
    assert open_records(key, PID, 3, "n", sealed, type=pa.uint64()).to_pylist() == list(
        range(90, 100))


def test_tampered_record_names_row_and_column_and_input_is_untouched() -> None:
    key = new_data_key()
    col = names_column(20)
    sealed = seal_records(key, PID, 0, "family_name", col)
    data = bytearray(sealed.buffers()[2].to_pybytes())
    offsets = np.frombuffer(sealed.buffers()[1], dtype=np.int64)
    data[offsets[11] + 2] ^= 0x40
    bad = pa.Array.from_buffers(pa.large_binary(), 20,
                                [None, sealed.buffers()[1], pa.py_buffer(bytes(data))])
    before = bad.to_pylist()
    with pytest.raises(CorruptFileError, match=r"column 'family_name'.*row 11:"):
        open_records(key, PID, 0, "family_name", bad, type=pa.string())
    assert bad.to_pylist() == before


def test_swapped_moved_or_rekeyed_records_are_refused() -> None:
    key = new_data_key()
    col = pa.array(["alice", "bob", "carol"])
    sealed = seal_records(key, PID, 0, "given_name", col)
    vals = sealed.to_pylist()
    swapped = pa.array([vals[1], vals[0], vals[2]], pa.large_binary())
    with pytest.raises(CorruptFileError, match="row 0"):
        open_records(key, PID, 0, "given_name", swapped, type=pa.string())
    for pid, slot, name, k in [
        (bytes(16), 0, "given_name", key),  # another packet
        (PID, 1, "given_name", key),  # another slot
        (PID, 0, "family_name", key),  # another column
        (PID, 0, "given_name", new_data_key()),  # another key
    ]:
        with pytest.raises(CorruptFileError, match="row 0"):
            open_records(k, pid, slot, name, sealed, type=pa.string())
    with pytest.raises(CorruptFileError, match="row 0"):
        open_records(key, PID, 0, "given_name", sealed.slice(1), type=pa.string())


def test_unsupported_types_and_misuse_are_refused() -> None:
    key = new_data_key()
    for col in [pa.array([True, False]), pa.array([[1], [2]]),
                pa.array(["a", "b"]).dictionary_encode()]:
        with pytest.raises(InvalidInputError, match="cannot encrypt"):
            seal_records(key, PID, 0, "c", col)
    with pytest.raises(InvalidInputError):
        seal_records(key, PID, 0, "c", ["not", "arrow"])
    with pytest.raises(InvalidInputError):
        seal_records(key, PID, 2**32, "c", pa.array(["a"]))
    cipher = RecordCipher(key, PID)
    slot, _ = cipher.seal("a", pa.array(["x"]))
    slot2, sealed = cipher.seal("b", pa.array(["y"]))
    assert (slot, slot2) == (0, 1)
    with pytest.raises(ConflictError):
        cipher.seal("a", pa.array(["z"]))
    assert cipher.slots == {"a": 0, "b": 1}
    assert cipher.open("b", 1, sealed, pa.string()).to_pylist() == ["y"]
    with pytest.raises(InvalidInputError):
        RecordCipher(key[:16], PID)


def test_fixed_width_plaintext_length_is_checked() -> None:
    key = new_data_key()
    sealed = seal_records(key, PID, 0, "c", pa.array([1, 2], pa.int32()))
    with pytest.raises(CorruptFileError, match="8-byte"):
        open_records(key, PID, 0, "c", sealed, type=pa.int64())


class _CapsuleOnly:
    """An Arrow producer that is not pyarrow: only the PyCapsule interface."""

    def __init__(self, arr: pa.Array) -> None:
        self._arr = arr

    def __arrow_c_array__(self, requested_schema: object = None) -> object:
        return self._arr.__arrow_c_array__(requested_schema)


@pytest.mark.parametrize("column", [
    pa.array(["山田", None, "", "a" * 300, None, "x"], pa.string()),
    pa.array([b"\x00\xff", None, b"", b"z" * 70000], pa.large_binary()),
    pa.array([1, None, -3, 2**40, None, 7, 8], pa.int64()),
    pa.array([b"0123456789abcdef", None, b"fedcba9876543210"], pa.binary(16)),
    pa.array([dt.date(2026, 1, 2), None, dt.date(1900, 3, 4)], pa.date32()),
    pa.array([1.5, None, float("inf")], pa.float16()),
])
@pytest.mark.parametrize("start", [0, 1])
def test_arrow_arrays_cross_through_the_capsule_interface(column: pa.Array, start: int) -> None:
    """seal/open take any Arrow producer (here one with nothing but ``__arrow_c_array__``),
    read the column's buffers in Rust at its offset, and keep its nulls."""
    key, prefix = os.urandom(32), b"\x00\x00\x00\x05"
    col = column.slice(start)
    sealed = _jukicore.aead_seal_array(key, prefix, b"ctx", _CapsuleOnly(col))
    assert isinstance(sealed, pa.Array) and sealed.type == pa.large_binary()
    assert sealed.is_null().to_pylist() == col.is_null().to_pylist()
    back = _jukicore.aead_open_array(key, prefix, b"ctx", _CapsuleOnly(sealed.slice(0)),
                                     col.type, parallel=False)
    assert back.type == col.type and back.equals(col)
    back.validate(full=True)
    # each record is the value's own bytes, sealed under row i's nonce
    width = col.type.bit_width // 8 if col.type.id not in (pa.string().id,
                                                            pa.large_binary().id) else None
    for i in range(len(col)):
        plain = (col.buffers()[1].to_pybytes()[(col.offset + i) * width:(col.offset + i + 1)
                                               * width] if width else
                 (col[i].as_py() or b"") if col.type == pa.large_binary() else
                 (col[i].as_py() or "").encode())
        if col[i].is_valid:
            nonce = prefix + struct.pack(">Q", i)
            assert AESGCM(key).decrypt(nonce, sealed[i].as_py(), b"ctx" + struct.pack(">Q", i)) \
                == plain


def test_an_extension_type_comes_back_as_itself() -> None:
    col = pa.array([b"0123456789abcdef", None], pa.uuid())
    key = new_data_key()
    sealed = seal_records(key, PID, 0, "id", col)
    back = open_records(key, PID, 0, "id", sealed, type=col.type)
    assert back.type == pa.uuid() and back.equals(col)


def test_arrow_open_refuses_what_does_not_fit_the_type() -> None:
    key, prefix = os.urandom(32), b"abcd"
    with pytest.raises(CorruptFileError, match="not binary"):
        _jukicore.aead_open_array(key, prefix, b"", pa.array(["x"]), pa.string())
    sealed = _jukicore.aead_seal_array(key, prefix, b"", pa.array([b"\xff\xfe", b"ok"]))
    with pytest.raises(CorruptFileError, match="not UTF-8"):
        _jukicore.aead_open_array(key, prefix, b"", sealed, pa.string())
    assert _jukicore.aead_open_array(key, prefix, b"", sealed, pa.binary()).to_pylist() == \
        [b"\xff\xfe", b"ok"]
    assert _jukicore.aead_open_array(key, prefix, b"", sealed, pa.int16()).to_pylist() == \
        [-257, 27503]  # two 2-byte records are int16 values
    with pytest.raises(CorruptFileError, match="4-byte"):
        _jukicore.aead_open_array(key, prefix, b"", sealed, pa.int32())
    for typ in (pa.bool_(), pa.list_(pa.int8()), pa.null()):
        with pytest.raises(InvalidInputError, match="cannot encrypt"):
            _jukicore.aead_open_array(key, prefix, b"", sealed, typ)
    with pytest.raises(CorruptFileError, match="row 1"):
        tampered = pa.array([sealed[0].as_py(), sealed[1].as_py()[:-1] + b"\0"], pa.binary())
        _jukicore.aead_open_array(key, prefix, b"", tampered, pa.binary())
    with pytest.raises(InvalidInputError, match=r"expected an Arrow array .* got list"):
        _jukicore.aead_seal_array(key, prefix, b"", [b"not arrow"])  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match=r"expected an Arrow data type .* got str"):
        _jukicore.aead_open_array(key, prefix, b"", sealed, "binary")  # type: ignore[arg-type]


# ------------------------------------------------------------------ keys


def test_key_ids_are_stable_and_distinct() -> None:
    a, b = NodeKeys.generate("131016"), NodeKeys.generate("131016")
    assert len(a.signing_key_id) == 32 and int(a.signing_key_id, 16) >= 0
    assert a.signing_key_id == key_id(a.signing.public_key())
    assert len({a.signing_key_id, a.encryption_key_id, b.signing_key_id,
                b.encryption_key_id}) == 4


def test_private_key_files_are_encrypted_and_password_checked(tmp_path: Path) -> None:
    keys = NodeKeys.generate("center")
    path = tmp_path / "k.pem"
    save_private_key(keys.signing, path, "correct horse")
    text = path.read_text()
    assert json.loads(text)["kdf"]["name"] == "scrypt"  # (docs/crypto.md "Key files")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = load_private_key(path, b"correct horse")
    assert key_id(loaded.public_key()) == keys.signing_key_id
    with pytest.raises(PermissionDeniedError):
        load_private_key(path, "wrong")
    with pytest.raises(InvalidInputError):
        save_private_key(keys.signing, tmp_path / "x.pem", "")
    assert not (tmp_path / "x.pem").exists()
    path.write_text(text.replace(text.splitlines()[2], "A" * 64))
    with pytest.raises((CorruptFileError, PermissionDeniedError)):
        load_private_key(path, "correct horse")
    with pytest.raises(NotFoundError):
        load_private_key(tmp_path / "missing.pem", "pw")


def test_node_keys_save_and_load(tmp_path: Path) -> None:
    keys = NodeKeys.generate("pref-13")
    keys.save(tmp_path / "node", "pw")
    back = NodeKeys.load(tmp_path / "node", "pw")
    assert (back.node_id, back.signing_key_id, back.encryption_key_id) == (
        "pref-13", keys.signing_key_id, keys.encryption_key_id)
    with pytest.raises(PermissionDeniedError):
        NodeKeys.load(tmp_path / "node", "nope")
    with pytest.raises(InvalidInputError):
        NodeKeys.generate("bad id!")


# ------------------------------------------------------------------ key wrap


def test_data_key_wrap_round_trip_and_refusals() -> None:
    recipient = X25519PrivateKey.generate()
    dk = new_data_key()
    ctx = wrap_context("131016", "aa", "center", "bb", PID)
    blob = wrap_data_key(dk, recipient.public_key(), ctx)
    assert len(blob) == WRAPPED_KEY_LEN
    assert unwrap_data_key(blob, recipient, ctx) == dk
    assert wrap_data_key(dk, recipient.public_key(), ctx) != blob  # fresh ephemeral key
    for other_ctx in [wrap_context("131016", "aa", "center", "bb", bytes(16)),
                      wrap_context("131016", "aa", "pref-13", "bb", PID)]:
        with pytest.raises(CorruptFileError):
            unwrap_data_key(blob, recipient, other_ctx)
    with pytest.raises(CorruptFileError):
        unwrap_data_key(blob, X25519PrivateKey.generate(), ctx)
    for i in range(len(blob)):
        bad = bytearray(blob)
        bad[i] ^= 1
        with pytest.raises(CorruptFileError):
            unwrap_data_key(bytes(bad), recipient, ctx)
    with pytest.raises(CorruptFileError):
        unwrap_data_key(blob[:-1], recipient, ctx)
    # The construction is the documented one: HKDF over X25519, then AES-GCM.
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
    eph = blob[:32]
    shared = recipient.exchange(X25519PublicKey.from_public_bytes(eph))
    kek = HKDF(hashes.SHA256(), 32, eph + recipient.public_key().public_bytes(*raw),
               b"jukicore/v1/data-key-wrap\0" + ctx).derive(shared)
    assert AESGCM(kek).decrypt(bytes(12), blob[32:], ctx) == dk
    with pytest.raises(InvalidTag):
        AESGCM(kek).decrypt(bytes(12), blob[32:], b"")


# ------------------------------------------------------------------ trust store


def test_trust_store_rotation_keeps_old_keys_for_old_packets(tmp_path: Path) -> None:
    old, new = NodeKeys.generate("131016"), NodeKeys.generate("131016")
    store = TrustStore()
    store.add("131016", "municipality", old.signing.public_key(), old.encryption.public_key(), T0)
    t1 = T0 + dt.timedelta(days=30)
    store.add("131016", "municipality", new.signing.public_key(), new.encryption.public_key(), t1)
    assert store.current("131016").signing_key_id == new.signing_key_id
    assert store.current("131016").encryption_key_id == new.encryption_key_id
    # The old key still verifies packets made while it was current, not later ones.
    assert store.verifying_key("131016", old.signing_key_id, T0 + dt.timedelta(days=1))
    with pytest.raises(PermissionDeniedError, match="not current"):
        store.verifying_key("131016", old.signing_key_id, t1 + dt.timedelta(seconds=1))
    assert store.verifying_key("131016", new.signing_key_id, t1)
    with pytest.raises(PermissionDeniedError, match="unknown sender"):
        store.verifying_key("999999", new.signing_key_id, t1)
    with pytest.raises(PermissionDeniedError, match="not in the trust store"):
        store.verifying_key("131016", "00" * 16, t1)
    store.save(tmp_path / "trust.json")
    back = TrustStore.load(tmp_path / "trust.json")
    assert back.to_json() == store.to_json()
    assert list(back) == ["131016"] and back.role("131016") == "municipality"
    store.revoke("131016", old.signing_key_id)
    with pytest.raises(PermissionDeniedError, match="revoked"):
        store.verifying_key("131016", old.signing_key_id, T0 + dt.timedelta(days=1))


def test_trust_store_refusals_change_nothing() -> None:
    a, b = NodeKeys.generate("131016"), NodeKeys.generate("131016")
    store = TrustStore()
    store.add_record(a.public_record("municipality", T0))
    before = store.to_json()
    with pytest.raises(ConflictError):  # same keys again
        store.add_record(a.public_record("municipality", T0 + dt.timedelta(days=1)))
    with pytest.raises(ConflictError):  # role change
        store.add("131016", "center", b.signing.public_key(), b.encryption.public_key(),
                  T0 + dt.timedelta(days=1))
    with pytest.raises(ConflictError):  # not after the current generation
        store.add("131016", "municipality", b.signing.public_key(), b.encryption.public_key(), T0)
    with pytest.raises(InvalidInputError):
        store.add("131016", "agency", b.signing.public_key(),  # type: ignore[arg-type]
                  b.encryption.public_key(), T0)
    with pytest.raises(InvalidInputError):
        store.add("131016", "municipality", b.signing.public_key(), b.encryption.public_key(),
                  dt.datetime(2025, 1, 1))  # naive time
    with pytest.raises(InvalidInputError):
        store.add_record({"node_id": "x"})
    with pytest.raises(NotFoundError):
        store.revoke("131016", "ff" * 16)
    with pytest.raises(NotFoundError):
        store.current("center")
    assert store.to_json() == before


def test_damaged_trust_store_file(tmp_path: Path) -> None:
    p = tmp_path / "t.json"
    for text in ["{", '{"format": "other"}',
                 '{"format": "jukicore-trust-store", "version": 99, "peers": {}}',
                 '{"format": "jukicore-trust-store", "version": 1, '
                 '"peers": {"x": {"role": "center", "keys": [{"signing_public": "AA=="}]}}}']:
        p.write_text(text)
        with pytest.raises(CorruptFileError):
            TrustStore.load(p)
    with pytest.raises(NotFoundError):
        TrustStore.load(tmp_path / "none.json")
