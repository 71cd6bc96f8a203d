//! Bindings of `jukicore_core::aead`: bulk AES-256-GCM over Arrow-style
//! records (a byte buffer plus `n + 1` offsets).
//!
//! `data` is any C-contiguous buffer (bytes, memoryview, numpy uint8,
//! `pyarrow.Buffer`) read in place, without a copy; `offsets` is a contiguous
//! numpy array of int32, int64, uint32 or uint64 (Arrow's binary/string
//! columns use int32, their large variants int64). The work runs with the
//! GIL released. Results are numpy arrays that own the Rust buffers (no copy):
//! the records as uint8 and `n + 1` int64 offsets starting at 0, ready for
//! `pyarrow.Array.from_buffers` with a large binary type.

use jukicore_core::aead::{self, Offset, Records, Threads};
use jukicore_core::CoreError;
use numpy::{IntoPyArray, PyArray1, PyReadonlyArray1};
use pyo3::buffer::PyUntypedBuffer;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;

use crate::error::Result;

type Output<'py> = (Bound<'py, PyArray1<u8>>, Bound<'py, PyArray1<i64>>);

#[derive(Clone, Copy)]
enum Op {
    Seal,
    Open,
}

fn apply<O: Offset>(
    op: Op,
    key: &[u8],
    nonce_prefix: &[u8],
    aad_prefix: &[u8],
    data: &[u8],
    offsets: &[O],
    threads: Threads,
) -> std::result::Result<(Vec<u8>, Vec<i64>), CoreError> {
    let records: Records = match op {
        Op::Seal => aead::seal(key, nonce_prefix, aad_prefix, data, offsets, threads)?,
        Op::Open => aead::open(key, nonce_prefix, aad_prefix, data, offsets, threads)?,
    };
    Ok((records.data, records.offsets))
}

#[allow(clippy::too_many_arguments)]
fn run<'py>(
    py: Python<'py>,
    op: Op,
    key: &[u8],
    nonce_prefix: &[u8],
    aad_prefix: &[u8],
    data: &Bound<'py, PyAny>,
    offsets: &Bound<'py, PyAny>,
    parallel: bool,
) -> Result<Output<'py>> {
    let buffer = PyUntypedBuffer::get(data)?;
    if !buffer.is_c_contiguous() {
        return Err(PyTypeError::new_err("data must be a C-contiguous buffer").into());
    }
    let len = buffer.len_bytes();
    let bytes: &[u8] = if len == 0 {
        &[]
    } else {
        // SAFETY: the buffer is C-contiguous and `len` bytes long, and
        // `buffer` keeps the exporter alive (and its memory in place) until it
        // is dropped at the end of this function.
        unsafe { std::slice::from_raw_parts(buffer.buf_ptr() as *const u8, len) }
    };
    let threads = if parallel { Threads::All } else { Threads::One };
    macro_rules! go {
        ($t:ty) => {
            if let Ok(arr) = offsets.extract::<PyReadonlyArray1<'py, $t>>() {
                let offs = arr.as_slice()?;
                let (out, out_offsets) =
                    py.detach(|| apply(op, key, nonce_prefix, aad_prefix, bytes, offs, threads))?;
                return Ok((out.into_pyarray(py), out_offsets.into_pyarray(py)));
            }
        };
    }
    go!(i32);
    go!(i64);
    go!(u32);
    go!(u64);
    Err(
        PyTypeError::new_err("offsets must be a 1-D numpy array of int32, int64, uint32 or uint64")
            .into(),
    )
}

/// Encrypt records with AES-256-GCM: record i under nonce
/// `nonce_prefix || u64_be(i)` and AAD `aad_prefix || u64_be(i)`; returns
/// (`ct || tag` records as uint8, int64 offsets).
#[pyfunction]
#[pyo3(signature = (key, nonce_prefix, aad_prefix, data, offsets, *, parallel = true))]
fn aead_seal<'py>(
    py: Python<'py>,
    key: &[u8],
    nonce_prefix: &[u8],
    aad_prefix: &[u8],
    data: &Bound<'py, PyAny>,
    offsets: &Bound<'py, PyAny>,
    parallel: bool,
) -> Result<Output<'py>> {
    run(
        py,
        Op::Seal,
        key,
        nonce_prefix,
        aad_prefix,
        data,
        offsets,
        parallel,
    )
}

/// Decrypt and authenticate records sealed by `aead_seal`; a failing record
/// raises `CorruptFileError` naming the first failing row, and nothing is
/// returned.
#[pyfunction]
#[pyo3(signature = (key, nonce_prefix, aad_prefix, data, offsets, *, parallel = true))]
fn aead_open<'py>(
    py: Python<'py>,
    key: &[u8],
    nonce_prefix: &[u8],
    aad_prefix: &[u8],
    data: &Bound<'py, PyAny>,
    offsets: &Bound<'py, PyAny>,
    parallel: bool,
) -> Result<Output<'py>> {
    run(
        py,
        Op::Open,
        key,
        nonce_prefix,
        aad_prefix,
        data,
        offsets,
        parallel,
    )
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(aead_seal, m)?)?;
    m.add_function(wrap_pyfunction!(aead_open, m)?)?;
    Ok(())
}
