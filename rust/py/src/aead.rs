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
//!
//! `aead_seal_array` / `aead_open_array` take a whole Arrow column instead,
//! through the PyCapsule interface ([`crate::arrow`]), and return pyarrow
//! arrays: what `jukicore.crypto` uses.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{
    make_array, Array, ArrayRef, BinaryArray, LargeBinaryArray, LargeStringArray, StringArray,
};
use arrow_buffer::{Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_data::ArrayDataBuilder;
use arrow_schema::{ArrowError, DataType};
use jukicore_core::aead::{self, Offset, Records, Threads};
use jukicore_core::CoreError;
use numpy::{IntoPyArray, PyArray1, PyReadonlyArray1};
use pyo3::buffer::PyUntypedBuffer;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;

use crate::arrow::{import_array, import_type, to_pyarrow};
use crate::error::{Error, Result};

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
    m.add_function(wrap_pyfunction!(aead_seal_array, m)?)?;
    m.add_function(wrap_pyfunction!(aead_open_array, m)?)?;
    Ok(())
}

// ---------------------------------------------------------------------------
// Arrow arrays through the PyCapsule interface (`__arrow_c_array__`): the
// column's buffers are read in place by the bindings, not split in Python.

/// The byte width of each value of a fixed-width type (`None`: not fixed-width,
/// or bit-packed like booleans).
fn fixed_width(dt: &DataType) -> Option<usize> {
    match dt {
        DataType::FixedSizeBinary(w) => usize::try_from(*w).ok().filter(|w| *w > 0),
        other => other.primitive_width(),
    }
}

fn refused(dt: &DataType) -> CoreError {
    CoreError::Invalid(format!(
        "cannot encrypt a column of type {dt}: use binary, string or a fixed-width type"
    ))
}

/// Seal or open every value of `array` (binary, string, their large variants,
/// or a fixed-width type read as `width`-byte records).
fn apply_array(
    op: Op,
    key: &[u8],
    nonce_prefix: &[u8],
    aad_prefix: &[u8],
    array: &ArrayRef,
    threads: Threads,
) -> std::result::Result<Records, CoreError> {
    fn go<O: Offset>(
        op: Op,
        key: &[u8],
        prefix: (&[u8], &[u8]),
        data: &[u8],
        offsets: &[O],
        threads: Threads,
    ) -> std::result::Result<Records, CoreError> {
        match op {
            Op::Seal => aead::seal(key, prefix.0, prefix.1, data, offsets, threads),
            Op::Open => aead::open(key, prefix.0, prefix.1, data, offsets, threads),
        }
    }
    let p = (nonce_prefix, aad_prefix);
    match array.data_type() {
        DataType::Binary => {
            let a = array.as_binary::<i32>();
            go(op, key, p, a.values(), a.value_offsets(), threads)
        }
        DataType::LargeBinary => {
            let a = array.as_binary::<i64>();
            go(op, key, p, a.values(), a.value_offsets(), threads)
        }
        DataType::Utf8 if matches!(op, Op::Seal) => {
            let a = array.as_string::<i32>();
            go(op, key, p, a.values(), a.value_offsets(), threads)
        }
        DataType::LargeUtf8 if matches!(op, Op::Seal) => {
            let a = array.as_string::<i64>();
            go(op, key, p, a.values(), a.value_offsets(), threads)
        }
        dt => match fixed_width(dt).filter(|_| matches!(op, Op::Seal)) {
            Some(w) => {
                let data = array.to_data();
                let (n, first) = (data.len(), data.offset());
                let values = data
                    .buffers()
                    .first()
                    .and_then(|b| b.as_slice().get(first * w..(first + n) * w))
                    .ok_or_else(|| {
                        CoreError::Invalid(format!("the values buffer of a {dt} column is short"))
                    })?;
                let offsets: Vec<i64> = (0..=n).map(|i| (i * w) as i64).collect();
                go(op, key, p, values, &offsets, threads)
            }
            None if matches!(op, Op::Seal) => Err(refused(dt)),
            None => Err(CoreError::Corrupt(format!(
                "an encrypted column is {dt}, not binary"
            ))),
        },
    }
}

/// The sealed records as a `large_binary` array with the nulls of the input.
fn sealed_array(records: Records, nulls: Option<NullBuffer>) -> Result<ArrayRef> {
    let offsets = OffsetBuffer::new(ScalarBuffer::from(records.offsets));
    let out = LargeBinaryArray::try_new(offsets, Buffer::from_vec(records.data), nulls)
        .map_err(|e| CoreError::Invalid(format!("sealed records: {e}")))?;
    Ok(Arc::new(out))
}

/// The opened records as an array of type `dt`, with the nulls of the input.
fn opened_array(dt: &DataType, records: Records, nulls: Option<NullBuffer>) -> Result<ArrayRef> {
    let n = records.len();
    let corrupt = |m: String| Error::from(CoreError::Corrupt(m));
    if let Some(w) = fixed_width(dt) {
        if records
            .offsets
            .iter()
            .enumerate()
            .any(|(i, &o)| o != (i * w) as i64)
        {
            return Err(corrupt(format!("records are not {w}-byte {dt} values")));
        }
        let data = ArrayDataBuilder::new(dt.clone())
            .len(n)
            .add_buffer(Buffer::from_vec(records.data))
            .nulls(nulls)
            .align_buffers(true)
            .build()
            .map_err(|e| corrupt(format!("records do not form {dt} values: {e}")))?;
        return Ok(make_array(data));
    }
    let Records { data, offsets } = records;
    let values = Buffer::from_vec(data);
    let small = |offsets: Vec<i64>| -> Result<OffsetBuffer<i32>> {
        if offsets
            .last()
            .is_some_and(|&last| last > i64::from(i32::MAX))
        {
            return Err(corrupt(format!("the column is too large for {dt}")));
        }
        let offs: Vec<i32> = offsets.iter().map(|&o| o as i32).collect();
        Ok(OffsetBuffer::new(ScalarBuffer::from(offs)))
    };
    let large = |offsets: Vec<i64>| OffsetBuffer::new(ScalarBuffer::from(offsets));
    let not_utf8 = |e: ArrowError| corrupt(format!("decrypted text is not UTF-8 ({e})"));
    Ok(match dt {
        DataType::Binary => Arc::new(BinaryArray::new(small(offsets)?, values, nulls)),
        DataType::LargeBinary => Arc::new(LargeBinaryArray::new(large(offsets), values, nulls)),
        DataType::Utf8 => {
            Arc::new(StringArray::try_new(small(offsets)?, values, nulls).map_err(not_utf8)?)
        }
        DataType::LargeUtf8 => {
            Arc::new(LargeStringArray::try_new(large(offsets), values, nulls).map_err(not_utf8)?)
        }
        other => return Err(refused(other).into()),
    })
}

/// Encrypt every value of an Arrow array (binary, string, their large
/// variants, or a fixed-width type) with AES-256-GCM as `aead_seal` does;
/// returns a `pyarrow` `large_binary` array of `ct || tag` records with the
/// input's nulls.
#[pyfunction]
#[pyo3(signature = (key, nonce_prefix, aad_prefix, array, *, parallel = true))]
fn aead_seal_array<'py>(
    py: Python<'py>,
    key: &[u8],
    nonce_prefix: &[u8],
    aad_prefix: &[u8],
    array: &Bound<'py, PyAny>,
    parallel: bool,
) -> Result<Bound<'py, PyAny>> {
    let array = &import_array(array)?;
    let threads = if parallel { Threads::All } else { Threads::One };
    let records =
        py.detach(|| apply_array(Op::Seal, key, nonce_prefix, aad_prefix, array, threads))?;
    let out = sealed_array(records, array.nulls().cloned())?;
    to_pyarrow(py, out, None)
}

/// Decrypt and authenticate a binary or large binary array sealed by
/// `aead_seal_array` into a `pyarrow` array of type `type` (with the input's
/// nulls). A failing record raises `CorruptFileError` naming the first
/// failing row; so do records of the wrong width for a fixed-width type, text
/// that is not UTF-8 and a column too large for a 32-bit-offset type.
#[pyfunction]
#[pyo3(signature = (key, nonce_prefix, aad_prefix, array, r#type, *, parallel = true))]
fn aead_open_array<'py>(
    py: Python<'py>,
    key: &[u8],
    nonce_prefix: &[u8],
    aad_prefix: &[u8],
    array: &Bound<'py, PyAny>,
    r#type: &Bound<'py, PyAny>,
    parallel: bool,
) -> Result<Bound<'py, PyAny>> {
    let field = import_type(r#type)?;
    let dt = field.data_type().clone();
    if fixed_width(&dt).is_none()
        && !matches!(
            dt,
            DataType::Binary | DataType::LargeBinary | DataType::Utf8 | DataType::LargeUtf8
        )
    {
        return Err(refused(&dt).into());
    }
    let array = &import_array(array)?;
    let threads = if parallel { Threads::All } else { Threads::One };
    let records =
        py.detach(|| apply_array(Op::Open, key, nonce_prefix, aad_prefix, array, threads))?;
    let out = opened_array(&dt, records, array.nulls().cloned())?;
    to_pyarrow(py, out, Some(field))
}
