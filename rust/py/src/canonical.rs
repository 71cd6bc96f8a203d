//! SHA-256 digests of the canonical JSON of each row of an Arrow record batch
//! (`jukicore_core::canonical`): the Arrow types are walked here, the bytes are the
//! core's.

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Int16Type, Int32Type, Int64Type, Int8Type, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{Array, StructArray};
use arrow_schema::DataType;
use jukicore_core::canonical::Record;
use jukicore_core::CoreError;
use pyo3::prelude::*;

use crate::arrow;
use crate::error::Result;

/// Write value `i` of `a` (not null), as Python's `json` writes the value `to_pylist`
/// gives for it.
fn value(out: &mut Record, a: &dyn Array, i: usize) -> std::result::Result<(), CoreError> {
    match a.data_type() {
        DataType::Utf8 => out.push_str(a.as_string::<i32>().value(i)),
        DataType::LargeUtf8 => out.push_str(a.as_string::<i64>().value(i)),
        DataType::Utf8View => out.push_str(a.as_string_view().value(i)),
        DataType::Boolean => out.push_bool(a.as_boolean().value(i)),
        DataType::Int8 => out.push_int(a.as_primitive::<Int8Type>().value(i).into()),
        DataType::Int16 => out.push_int(a.as_primitive::<Int16Type>().value(i).into()),
        DataType::Int32 => out.push_int(a.as_primitive::<Int32Type>().value(i).into()),
        DataType::Int64 => out.push_int(a.as_primitive::<Int64Type>().value(i)),
        DataType::UInt8 => out.push_uint(a.as_primitive::<UInt8Type>().value(i).into()),
        DataType::UInt16 => out.push_uint(a.as_primitive::<UInt16Type>().value(i).into()),
        DataType::UInt32 => out.push_uint(a.as_primitive::<UInt32Type>().value(i).into()),
        DataType::UInt64 => out.push_uint(a.as_primitive::<UInt64Type>().value(i)),
        DataType::Date32 => out.push_date(
            a.as_primitive::<arrow_array::types::Date32Type>()
                .value(i)
                .into(),
        )?,
        DataType::List(_) => {
            let list = a.as_list::<i32>();
            let items = list.value(i);
            out.open(b'[');
            for j in 0..items.len() {
                element(out, items.as_ref(), j)?;
            }
            out.close(b']');
        }
        DataType::Struct(_) => {
            // a nested object keeps its null members (Python's `_canonical` drops
            // nothing below the top level)
            let st = a.as_struct();
            out.open(b'{');
            for (name, col) in sorted(st) {
                out.key(name);
                element(out, col.as_ref(), i)?;
            }
            out.close(b'}');
        }
        other => {
            return Err(CoreError::Invalid(format!(
                "no canonical JSON for a column of type {other}"
            )))
        }
    }
    Ok(())
}

fn element(out: &mut Record, a: &dyn Array, i: usize) -> std::result::Result<(), CoreError> {
    if a.is_null(i) {
        out.push_null();
        Ok(())
    } else {
        value(out, a, i)
    }
}

/// The struct's members in key order (Python's `sort_keys`: by code point).
fn sorted(st: &StructArray) -> Vec<(&str, &arrow_array::ArrayRef)> {
    let mut cols: Vec<_> = st
        .column_names()
        .into_iter()
        .zip(st.columns().iter())
        .collect();
    cols.sort_by(|a, b| a.0.cmp(b.0));
    cols
}

/// SHA-256 (hex) of each row of a record batch (anything exporting a struct array
/// through `__arrow_c_array__`, as `pyarrow.RecordBatch` does), each row as the object
/// of its non-null members in key order, a false flag counting as absent.
#[pyfunction]
fn record_digests(batch: &Bound<'_, PyAny>) -> Result<Vec<String>> {
    let array = arrow::import_array(batch)?;
    let st = match array.data_type() {
        DataType::Struct(_) => array.as_struct(),
        other => {
            return Err(CoreError::Invalid(format!(
                "record digests need a record batch (a struct array), not {other}"
            ))
            .into())
        }
    };
    let cols = sorted(st);
    let run = || -> std::result::Result<Vec<String>, CoreError> {
        let mut out = Vec::with_capacity(st.len());
        let mut rec = Record::new();
        for i in 0..st.len() {
            rec.clear();
            rec.open(b'{');
            for (name, col) in &cols {
                if col.is_null(i)
                    || (col.data_type() == &DataType::Boolean && !col.as_boolean().value(i))
                {
                    continue;
                }
                rec.key(name);
                value(&mut rec, col.as_ref(), i)?;
            }
            rec.close(b'}');
            out.push(rec.sha256_hex());
        }
        Ok(out)
    };
    Ok(batch.py().detach(run)?)
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(record_digests, m)?)
}
