//! Arrow arrays across the boundary through the Arrow PyCapsule interface:
//! `__arrow_c_array__` / `__arrow_c_schema__` hand over C data interface
//! structs (arrow-rs `ffi`), so a column's buffers are read in place, from
//! pyarrow or any other producer, without being split in Python.

use std::ffi::CStr;

use arrow_array::ffi::{from_ffi, FFI_ArrowArray, FFI_ArrowSchema};
use arrow_array::{make_array, Array, ArrayRef};
use arrow_schema::Field;
use jukicore_core::CoreError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyCapsule, PyTuple};

use crate::error::{Error, Result};

const SCHEMA: &CStr = c"arrow_schema";
const ARRAY: &CStr = c"arrow_array";

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

fn refused(what: &str, method: &str, obj: &Bound<'_, PyAny>, why: &str) -> Error {
    Error::Core(CoreError::Invalid(format!(
        "expected an Arrow {what} (an object with {method}), got {}{why}",
        type_name(obj)
    )))
}

/// The schema struct in a capsule, borrowed for as long as the capsule lives.
fn schema_of<'a>(capsule: &'a Bound<'_, PyCapsule>) -> PyResult<&'a FFI_ArrowSchema> {
    let ptr = capsule
        .pointer_checked(Some(SCHEMA))?
        .cast::<FFI_ArrowSchema>();
    // SAFETY: a capsule named "arrow_schema" holds an ArrowSchema (the PyCapsule
    // interface); it stays valid while the capsule is alive, which outlives 'a.
    Ok(unsafe { ptr.as_ref() })
}

/// An Arrow array from any producer of `__arrow_c_array__`; anything else is
/// refused with `InvalidInputError`.
pub(crate) fn import_array(obj: &Bound<'_, PyAny>) -> Result<ArrayRef> {
    let py = obj.py();
    let method = intern!(py, "__arrow_c_array__");
    if !obj.hasattr(method)? {
        return Err(refused("array", "__arrow_c_array__", obj, ""));
    }
    let pair = obj.call_method0(method)?;
    let bad = |why: &str| refused("array", "__arrow_c_array__", obj, why);
    let pair = pair
        .cast_into::<PyTuple>()
        .map_err(|_| bad(" whose __arrow_c_array__ returned no tuple"))?;
    if pair.len() != 2 {
        return Err(bad(" whose __arrow_c_array__ returned no pair"));
    }
    let schema = pair
        .get_item(0)?
        .cast_into::<PyCapsule>()
        .map_err(|_| bad(" whose __arrow_c_array__ returned no capsules"))?;
    let array = pair
        .get_item(1)?
        .cast_into::<PyCapsule>()
        .map_err(|_| bad(" whose __arrow_c_array__ returned no capsules"))?;
    let misnamed = |_| bad(" whose capsules are not named arrow_schema and arrow_array");
    let schema = schema_of(&schema).map_err(misnamed)?;
    let ptr = array
        .pointer_checked(Some(ARRAY))
        .map_err(misnamed)?
        .cast::<FFI_ArrowArray>();
    // SAFETY: a capsule named "arrow_array" holds an ArrowArray; `from_raw` moves
    // it out and marks the capsule's copy released, so the capsule's destructor
    // does not release it a second time (as the PyCapsule interface prescribes).
    let ffi_array = unsafe { FFI_ArrowArray::from_raw(ptr.as_ptr()) };
    // SAFETY: the array and its schema come from one producer and describe one
    // another; arrow-rs checks the buffer count and aligns the buffers, and the
    // callers check offsets and UTF-8 themselves.
    let data = unsafe { from_ffi(ffi_array, schema) }
        .map_err(|e| bad(&format!(" whose array cannot be imported: {e}")))?;
    Ok(make_array(data))
}

/// An Arrow field from any producer of `__arrow_c_schema__` (a
/// `pyarrow.DataType`, a field ...): the data type, and the metadata that
/// names an extension type.
pub(crate) fn import_type(obj: &Bound<'_, PyAny>) -> Result<Field> {
    let py = obj.py();
    let method = intern!(py, "__arrow_c_schema__");
    if !obj.hasattr(method)? {
        return Err(refused("data type", "__arrow_c_schema__", obj, ""));
    }
    let capsule = obj
        .call_method0(method)?
        .cast_into::<PyCapsule>()
        .map_err(|_| {
            refused(
                "data type",
                "__arrow_c_schema__",
                obj,
                " returning no capsule",
            )
        })?;
    let schema = schema_of(&capsule).map_err(|_| {
        refused(
            "data type",
            "__arrow_c_schema__",
            obj,
            " whose capsule is not arrow_schema",
        )
    })?;
    Field::try_from(schema)
        .map_err(|e| refused("data type", "__arrow_c_schema__", obj, &format!(": {e}")))
}

/// An array on its way out: exports itself through `__arrow_c_array__` (each
/// call hands out a new ArrowArray sharing the same buffers).
#[pyclass(module = "jukicore._jukicore", frozen)]
struct ArrowExport {
    array: ArrayRef,
    field: Option<Field>,
}

#[pymethods]
impl ArrowExport {
    /// The array's (schema, array) capsules; a requested schema is not
    /// honoured (the producer may ignore it) and pyarrow asks for none.
    #[pyo3(signature = (requested_schema = None))]
    fn __arrow_c_array__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> Result<Bound<'py, PyTuple>> {
        let _ = requested_schema;
        let schema = match &self.field {
            Some(field) => FFI_ArrowSchema::try_from(field),
            None => FFI_ArrowSchema::try_from(self.array.data_type()),
        }
        .map_err(|e| CoreError::Invalid(format!("cannot export the array's type: {e}")))?;
        let array = FFI_ArrowArray::new(&self.array.to_data());
        let schema = PyCapsule::new_with_value(py, schema, SCHEMA)?;
        let array = PyCapsule::new_with_value(py, array, ARRAY)?;
        Ok(PyTuple::new(py, [schema, array])?)
    }
}

static PA_ARRAY: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// The array as a `pyarrow.Array` (pyarrow imports it through the capsules;
/// the buffers are not copied); `field`, of the array's data type, carries
/// the metadata of an extension type.
pub(crate) fn to_pyarrow(
    py: Python<'_>,
    array: ArrayRef,
    field: Option<Field>,
) -> Result<Bound<'_, PyAny>> {
    let pa_array = PA_ARRAY.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
        Ok(py.import("pyarrow")?.getattr("array")?.unbind())
    })?;
    let export = Bound::new(py, ArrowExport { array, field })?;
    Ok(pa_array.bind(py).call1((export,))?)
}

static PA_RECORD_BATCH: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// A struct array as a `pyarrow.RecordBatch` (its fields the columns; imported
/// through the capsules in one call, the buffers not copied).
pub(crate) fn to_pyarrow_batch(py: Python<'_>, array: ArrayRef) -> Result<Bound<'_, PyAny>> {
    let pa_batch = PA_RECORD_BATCH.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
        Ok(py.import("pyarrow")?.getattr("record_batch")?.unbind())
    })?;
    let export = Bound::new(py, ArrowExport { array, field: None })?;
    Ok(pa_batch.bind(py).call1((export,))?)
}
