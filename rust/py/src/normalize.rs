//! Match keys of names and addresses (`jukicore_core::normalize`) of an Arrow
//! string column, taken through the PyCapsule interface and returned as a
//! `pyarrow.Array` of the same type; nulls stay null.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, GenericStringArray, LargeStringArray, StringArray};
use arrow_buffer::{Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::DataType;
use jukicore_core::aead::Offset;
use jukicore_core::normalize;
use jukicore_core::CoreError;
use pyo3::prelude::*;

use crate::arrow;
use crate::error::Result;

type Keys = (Vec<u8>, Vec<i64>);

#[derive(Clone, Copy)]
enum Which {
    Name,
    Address,
}

fn keys_of<O: arrow_array::OffsetSizeTrait + Offset + std::fmt::Display>(
    a: &GenericStringArray<O>,
    which: Which,
) -> std::result::Result<Keys, CoreError> {
    let validity = a.nulls().map(|n| (n.validity(), n.offset()));
    let (values, offsets) = (a.values().as_slice(), a.value_offsets());
    match which {
        Which::Name => normalize::name_keys(values, offsets, validity),
        Which::Address => normalize::address_keys(values, offsets, validity),
    }
}

/// The keys as an array of the input's type (string or large string).
fn build(
    keys: Keys,
    nulls: Option<NullBuffer>,
    large: bool,
) -> std::result::Result<ArrayRef, CoreError> {
    let (data, offsets) = keys;
    let bad = |e| CoreError::Invalid(format!("cannot build the keys' array: {e}"));
    if large {
        let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
        let a = LargeStringArray::try_new(offsets, Buffer::from_vec(data), nulls).map_err(bad)?;
        return Ok(Arc::new(a));
    }
    let small: Vec<i32> = offsets
        .iter()
        .map(|&o| i32::try_from(o))
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| {
            CoreError::Invalid(
                "the keys exceed a string column's 2 GiB: pass a large_string column".into(),
            )
        })?;
    let offsets = OffsetBuffer::new(ScalarBuffer::from(small));
    let a = StringArray::try_new(offsets, Buffer::from_vec(data), nulls).map_err(bad)?;
    Ok(Arc::new(a))
}

fn keys<'py>(
    py: Python<'py>,
    array: &Bound<'py, PyAny>,
    which: Which,
) -> Result<Bound<'py, PyAny>> {
    let array = arrow::import_array(array)?;
    let out = py.detach(|| match array.data_type() {
        DataType::Utf8 => {
            let a = array.as_string::<i32>();
            build(keys_of(a, which)?, a.nulls().cloned(), false)
        }
        DataType::LargeUtf8 => {
            let a = array.as_string::<i64>();
            build(keys_of(a, which)?, a.nulls().cloned(), true)
        }
        other => Err(CoreError::Invalid(format!(
            "keys are computed for a string or large_string column, not {other}"
        ))),
    })?;
    arrow::to_pyarrow(py, out, None)
}

/// Name keys of a string column (any Arrow string or large string array).
#[pyfunction]
fn name_keys<'py>(py: Python<'py>, array: &Bound<'py, PyAny>) -> Result<Bound<'py, PyAny>> {
    keys(py, array, Which::Name)
}

/// Address keys of a string column (any Arrow string or large string array).
#[pyfunction]
fn address_keys<'py>(py: Python<'py>, array: &Bound<'py, PyAny>) -> Result<Bound<'py, PyAny>> {
    keys(py, array, Which::Address)
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(name_keys, m)?)?;
    m.add_function(wrap_pyfunction!(address_keys, m)?)?;
    Ok(())
}
