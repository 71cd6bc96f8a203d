"""Type stubs of the Rust extension (checked against the built module by stubtest)."""

from collections.abc import Iterable, Sequence
from datetime import date
from os import PathLike
from typing import Any, Protocol, Self, final, overload

import numpy as np
import numpy.typing as npt
from typing_extensions import Buffer

class _ArrowArray(Protocol):
    """Anything that exports an Arrow array through the PyCapsule interface
    (``pyarrow.Array``, ``arro3``, ``nanoarrow``, ``polars.Series``, ...)."""

    def __arrow_c_array__(self, requested_schema: Any = None) -> tuple[Any, Any]: ...

class _ArrowType(Protocol):
    """An Arrow data type (``pyarrow.DataType`` ...): the ``__arrow_c_schema__`` method."""

    def __arrow_c_schema__(self) -> Any: ...

__all__ = [
    "TEXT_CONTROL",
    "TEXT_EMPTY",
    "TEXT_NOT_UTF8",
    "TEXT_NULL",
    "TEXT_SURROUNDING",
    "TEXT_TOO_LONG",
    "IdentityIndexCore",
    "IssuerCore",
    "MerkleLeaves",
    "RegistryCore",
    "address_keys",
    "aead_open",
    "aead_open_array",
    "aead_seal",
    "aead_seal_array",
    "audit_chain_append",
    "audit_entry_bytes",
    "check_digits",
    "container_pack",
    "container_unpack",
    "merkle_frontier_root",
    "merkle_leaf_hash",
    "merkle_node_hash",
    "merkle_root",
    "merkle_verify_consistency",
    "merkle_verify_inclusion",
    "name_keys",
    "record_digests",
    "text_flags",
    "validate",
]

TEXT_NULL: int
TEXT_EMPTY: int
TEXT_CONTROL: int
TEXT_SURROUNDING: int
TEXT_TOO_LONG: int
TEXT_NOT_UTF8: int

def check_digits(kind: str, bodies: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint8]: ...
def validate(kind: str, codes: npt.NDArray[np.uint64]) -> npt.NDArray[np.bool_]: ...
def aead_seal(
    key: bytes,
    nonce_prefix: bytes,
    aad_prefix: bytes,
    data: Buffer,
    offsets: npt.NDArray[np.int32 | np.int64 | np.uint32 | np.uint64],
    *,
    parallel: bool = True,
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]: ...
def aead_open(
    key: bytes,
    nonce_prefix: bytes,
    aad_prefix: bytes,
    data: Buffer,
    offsets: npt.NDArray[np.int32 | np.int64 | np.uint32 | np.uint64],
    *,
    parallel: bool = True,
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]: ...
def aead_seal_array(
    key: bytes,
    nonce_prefix: bytes,
    aad_prefix: bytes,
    array: _ArrowArray,
    *,
    parallel: bool = True,
) -> Any: ...  # a pyarrow.Array
def aead_open_array(
    key: bytes,
    nonce_prefix: bytes,
    aad_prefix: bytes,
    array: _ArrowArray,
    type: _ArrowType,
    *,
    parallel: bool = True,
) -> Any: ...  # a pyarrow.Array
def container_pack(kind: str, version: int, sections: list[bytes]) -> bytes: ...
def container_unpack(data: bytes, kind: str, versions: list[int]) -> tuple[int, list[bytes]]: ...
def text_flags(array: _ArrowArray, limit: int) -> npt.NDArray[np.uint8]: ...
def record_digests(batch: _ArrowArray) -> list[str]: ...
def name_keys(array: _ArrowArray) -> Any: ...  # a pyarrow.Array of the input's type
def address_keys(array: _ArrowArray) -> Any: ...  # a pyarrow.Array of the input's type

@final
class RegistryCore:
    def __new__(cls) -> Self: ...
    def generate(self, n: int) -> npt.NDArray[np.uint64]: ...
    def add(self, codes: npt.NDArray[np.uint64]) -> int: ...
    def contains(self, codes: npt.NDArray[np.uint64]) -> npt.NDArray[np.bool_]: ...
    def __len__(self) -> int: ...
    def memory_bytes(self) -> int: ...
    def save(self, path: str | PathLike[str]) -> None: ...
    @staticmethod
    def load(path: str | PathLike[str]) -> RegistryCore: ...

@final
class IssuerCore:
    def __new__(cls, key: bytes) -> Self: ...
    def issue(self, codes: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]: ...
    def replace(self, code: int, leaked: int) -> int: ...
    def issued_count(self) -> int: ...
    def holder_count(self) -> int: ...
    def retired_count(self) -> int: ...
    def memory_bytes(self) -> int: ...
    def save(self, path: str | PathLike[str]) -> None: ...
    @staticmethod
    def load(key: bytes, path: str | PathLike[str]) -> IssuerCore: ...

# -- the identity lookup index (jukicore_core::index) ------------------------------------

@final
class IdentityIndexCore:
    """The center's identity lookup index. Columns are Arrow arrays without nulls:
    ``code`` uint64, texts string or large_string, dates date32 (or int32 days),
    ``sex`` int8 (1, 2, 9), ``status`` uint8 (0 resident, 1 removed). Answers are
    ``pyarrow.RecordBatch`` objects."""

    @staticmethod
    def build(
        code: _ArrowArray,
        family_name: _ArrowArray,
        given_name: _ArrowArray,
        address: _ArrowArray,
        lg_code: _ArrowArray,
        change_reason: _ArrowArray,
        birth_date: _ArrowArray,
        sex: _ArrowArray,
        status: _ArrowArray,
        change_date: _ArrowArray,
        *,
        retired_old: _ArrowArray | None = None,
        retired_new: _ArrowArray | None = None,
        retired_on: _ArrowArray | None = None,
        store_id: str,
        mark: int,
    ) -> IdentityIndexCore: ...
    @staticmethod
    def build_from_pieces(
        pieces: Iterable[Sequence[_ArrowArray]],  # each: build's ten columns, in order
        *,
        retired_old: _ArrowArray | None = None,
        retired_new: _ArrowArray | None = None,
        retired_on: _ArrowArray | None = None,
        store_id: str,
        mark: int,
    ) -> IdentityIndexCore: ...
    @staticmethod
    def open(path: str | PathLike[str]) -> IdentityIndexCore: ...
    def save(self, path: str | PathLike[str]) -> None: ...
    @overload
    def lookup(self, codes_in: int | str) -> dict[str, Any]: ...
    @overload
    def lookup(self, codes_in: _ArrowArray) -> Any: ...
    # a pyarrow.RecordBatch: hit, code, the items (family_name, given_name, lg_code,
    # change_reason as dictionary<int32, large_string> over the index's own dictionaries,
    # kept alive by the batch; address string), new_code, retired_on
    def search(
        self,
        family_name: str,
        given_name: str,
        birth_date: date | int,
        sex: int | None = None,
        address: str | None = None,
    ) -> Any: ...  # a pyarrow.RecordBatch
    def search_many(
        self,
        family_name: _ArrowArray,
        given_name: _ArrowArray,
        birth_date: _ArrowArray,
        sex: _ArrowArray | None = None,
        address: _ArrowArray | None = None,
    ) -> Any: ...  # a pyarrow.RecordBatch: status, codes
    def apply_delta(
        self,
        code: _ArrowArray,
        family_name: _ArrowArray,
        given_name: _ArrowArray,
        address: _ArrowArray,
        lg_code: _ArrowArray,
        change_reason: _ArrowArray,
        birth_date: _ArrowArray,
        sex: _ArrowArray,
        status: _ArrowArray,
        change_date: _ArrowArray,
        *,
        removed: _ArrowArray | None = None,
        retired_old: _ArrowArray | None = None,
        retired_new: _ArrowArray | None = None,
        retired_on: _ArrowArray | None = None,
        mark: int,
        store_id: str | None = None,
    ) -> None: ...
    @property
    def mark(self) -> int: ...
    @property
    def store_id(self) -> str: ...
    def __len__(self) -> int: ...
    def memory_bytes(self) -> int: ...
    def overlay_len(self) -> int: ...

# -- the audit log's Merkle tree (RFC 6962; jukicore_core::merkle) ----------------------

_Texts = tuple[str | None, str | None, str | None, str | None, str | None, str | None]

def merkle_leaf_hash(data: bytes) -> bytes: ...
def merkle_node_hash(left: bytes, right: bytes) -> bytes: ...
def merkle_root(leaves: bytes) -> bytes: ...
def merkle_frontier_root(size: int, nodes: bytes) -> bytes: ...
def merkle_verify_inclusion(
    leaf: bytes, index: int, size: int, proof: list[bytes], root: bytes
) -> bool: ...
def merkle_verify_consistency(
    m: int, n: int, root_m: bytes, root_n: bytes, proof: list[bytes]
) -> bool: ...
def audit_entry_bytes(seq: int, at_us: int, texts: _Texts) -> bytes: ...
def audit_chain_append(
    size: int, nodes: bytes, entries: list[tuple[int, _Texts]]
) -> tuple[bytes, bytes]: ...

@final
class MerkleLeaves:
    def __new__(cls, leaves: bytes | None = None) -> Self: ...
    def __len__(self) -> int: ...
    def extend_audit(self, batch: _ArrowArray) -> int: ...
    def leaf(self, index: int) -> bytes: ...
    def to_bytes(self) -> bytes: ...
    def root(self, size: int | None = None) -> bytes: ...
    def roots(self, sizes: list[int]) -> list[bytes]: ...
    def frontier(self, size: int) -> bytes: ...
    def inclusion_proof(self, index: int, size: int) -> list[bytes]: ...
    def consistency_proof(self, m: int, n: int) -> list[bytes]: ...
