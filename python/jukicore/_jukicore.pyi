"""Type stubs of the Rust extension (checked against the built module by stubtest)."""

from os import PathLike
from typing import Any, Protocol, Self, final

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
    "IssuerCore",
    "RegistryCore",
    "aead_open",
    "aead_open_array",
    "aead_seal",
    "aead_seal_array",
    "check_digits",
    "container_pack",
    "container_unpack",
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
