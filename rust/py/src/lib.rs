//! Thin PyO3 bindings of `jukicore-core`.
//!
//! Everything here converts at the boundary (contiguous numpy uint64 columns
//! in, numpy columns out, without copies where numpy allows; Arrow columns
//! through the PyCapsule interface, see [`arrow`]), releases the GIL
//! for the heavy work, and maps core errors onto `jukicore.errors` (see
//! [`error`]). Input normalisation (scalars, strings, pyarrow, lists) lives in
//! `jukicore.ids`; the rules (identifier kinds, container tags) live in the core.

mod aead;
mod arrow;
mod canonical;
mod error;
mod index;
mod merkle;
mod normalize;

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use arrow_array::cast::AsArray;
use arrow_array::{Array, GenericStringArray, OffsetSizeTrait};
use arrow_schema::DataType;
use jukicore_core::aead::Offset;
use jukicore_core::checkdigit::{self, Kind};
use jukicore_core::container;
use jukicore_core::mynumber::Issuer;
use jukicore_core::registry::Registry;
use jukicore_core::text;
use jukicore_core::CoreError;
use numpy::{IntoPyArray, PyArray1, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::error::Result;

/// Check digits of a column of bodies of the given kind.
#[pyfunction]
fn check_digits<'py>(
    py: Python<'py>,
    kind: &str,
    bodies: PyReadonlyArray1<'py, u64>,
) -> Result<Bound<'py, PyArray1<u8>>> {
    let kind: Kind = kind.parse()?;
    let bodies = bodies.as_slice()?;
    let out = py.detach(|| checkdigit::check_digits(kind, bodies))?;
    Ok(out.into_pyarray(py))
}

/// Validity of a column of full codes of the given kind.
#[pyfunction]
fn validate<'py>(
    py: Python<'py>,
    kind: &str,
    codes: PyReadonlyArray1<'py, u64>,
) -> Result<Bound<'py, PyArray1<bool>>> {
    let kind: Kind = kind.parse()?;
    let codes = codes.as_slice()?;
    let out = py.detach(|| checkdigit::validate(kind, codes))?;
    Ok(out.into_pyarray(py))
}

/// Flags of every value of a string column (`jukicore_core::text`): any
/// Arrow array of type string or large string, taken through the Arrow
/// PyCapsule interface (`__arrow_c_array__`) without a copy.
#[pyfunction]
fn text_flags<'py>(
    py: Python<'py>,
    array: &Bound<'py, PyAny>,
    limit: usize,
) -> Result<Bound<'py, PyArray1<u8>>> {
    fn of<O: OffsetSizeTrait + Offset + std::fmt::Display>(
        a: &GenericStringArray<O>,
        limit: usize,
    ) -> std::result::Result<Vec<u8>, CoreError> {
        let validity = a.nulls().map(|n| (n.validity(), n.offset()));
        text::column_flags(a.values().as_slice(), a.value_offsets(), validity, limit)
    }
    let array = &arrow::import_array(array)?;
    let out = match array.data_type() {
        DataType::Utf8 => of(array.as_string::<i32>(), limit)?,
        DataType::LargeUtf8 => of(array.as_string::<i64>(), limit)?,
        other => {
            return Err(CoreError::Invalid(format!(
                "text flags are computed for a string column, not {other}"
            ))
            .into())
        }
    };
    Ok(out.into_pyarray(py))
}

/// Pack sections into a checksummed jukicore container (bytes).
#[pyfunction]
fn container_pack<'py>(
    py: Python<'py>,
    kind: &str,
    version: u32,
    sections: Vec<Vec<u8>>,
) -> Result<Bound<'py, PyBytes>> {
    let tag = container::kind_tag(kind)?;
    let refs: Vec<&[u8]> = sections.iter().map(|s| s.as_slice()).collect();
    Ok(PyBytes::new(py, &container::pack(&tag, version, &refs)))
}

/// Verify a container and return (version, sections).
#[pyfunction]
fn container_unpack<'py>(
    py: Python<'py>,
    data: &[u8],
    kind: &str,
    versions: Vec<u32>,
) -> Result<(u32, Vec<Bound<'py, PyBytes>>)> {
    let tag = container::kind_tag(kind)?;
    let loaded = container::parse(data.to_vec(), &tag, &versions)?;
    let sections = (0..loaded.sections())
        .map(|i| PyBytes::new(py, loaded.section(i)))
        .collect();
    Ok((loaded.version, sections))
}

/// Lock a core object's mutex; a panic that poisoned it leaves the object unusable.
fn locked<'a, T>(m: &'a Mutex<T>) -> std::result::Result<MutexGuard<'a, T>, CoreError> {
    m.lock().map_err(|_| {
        CoreError::Invalid(
            "this object is unusable: an earlier call failed inside the Rust core".into(),
        )
    })
}

/// The set of every resident code ever issued (see `jukicore.ids.CodeRegistry`).
///
/// Thread-safe: the state sits behind a mutex taken with the GIL released, so
/// threads sharing one registry run one call at a time and never see a
/// borrow error.
#[pyclass(module = "jukicore._jukicore", frozen)]
struct RegistryCore {
    inner: Mutex<Registry>,
}

#[pymethods]
impl RegistryCore {
    #[new]
    fn new() -> Self {
        RegistryCore {
            inner: Mutex::new(Registry::new()),
        }
    }

    fn generate<'py>(&self, py: Python<'py>, n: usize) -> Result<Bound<'py, PyArray1<u64>>> {
        let inner = &self.inner;
        let out = py.detach(|| locked(inner)?.generate(n))?;
        Ok(out.into_pyarray(py))
    }

    fn add(&self, py: Python<'_>, codes: PyReadonlyArray1<'_, u64>) -> Result<u64> {
        let codes = codes.as_slice()?;
        let inner = &self.inner;
        Ok(py.detach(|| locked(inner)?.add(codes))?)
    }

    fn contains<'py>(
        &self,
        py: Python<'py>,
        codes: PyReadonlyArray1<'py, u64>,
    ) -> Result<Bound<'py, PyArray1<bool>>> {
        let codes = codes.as_slice()?;
        let inner = &self.inner;
        let out = py.detach(|| locked(inner).map(|r| r.contains_many(codes)))?;
        Ok(out.into_pyarray(py))
    }

    fn __len__(&self, py: Python<'_>) -> Result<usize> {
        let inner = &self.inner;
        Ok(py.detach(|| locked(inner).map(|r| r.len() as usize))?)
    }

    fn memory_bytes(&self, py: Python<'_>) -> Result<u64> {
        let inner = &self.inner;
        Ok(py.detach(|| locked(inner).map(|r| r.memory_bytes()))?)
    }

    fn save(&self, py: Python<'_>, path: PathBuf) -> Result<()> {
        let inner = &self.inner;
        Ok(py.detach(|| locked(inner)?.save(&path))?)
    }

    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> Result<Self> {
        let inner = py.detach(|| Registry::load(&path))?;
        Ok(RegistryCore {
            inner: Mutex::new(inner),
        })
    }
}

/// The center's My Number issuer (see `jukicore.ids.MyNumberIssuer`); thread-safe
/// like `RegistryCore`.
#[pyclass(module = "jukicore._jukicore", frozen)]
struct IssuerCore {
    inner: Mutex<Issuer>,
}

#[pymethods]
impl IssuerCore {
    #[new]
    fn new(key: &[u8]) -> Result<Self> {
        Ok(IssuerCore {
            inner: Mutex::new(Issuer::new(key)?),
        })
    }

    fn issue<'py>(
        &self,
        py: Python<'py>,
        codes: PyReadonlyArray1<'py, u64>,
    ) -> Result<Bound<'py, PyArray1<u64>>> {
        let codes = codes.as_slice()?;
        let inner = &self.inner;
        let out = py.detach(|| locked(inner)?.issue(codes))?;
        Ok(out.into_pyarray(py))
    }

    fn replace(&self, py: Python<'_>, code: u64, leaked: u64) -> Result<u64> {
        let inner = &self.inner;
        Ok(py.detach(|| locked(inner)?.replace(code, leaked))?)
    }

    fn issued_count(&self, py: Python<'_>) -> Result<u64> {
        let inner = &self.inner;
        Ok(py.detach(|| locked(inner).map(|r| r.issued_count()))?)
    }

    fn holder_count(&self, py: Python<'_>) -> Result<u64> {
        let inner = &self.inner;
        Ok(py.detach(|| locked(inner).map(|r| r.holder_count()))?)
    }

    fn retired_count(&self, py: Python<'_>) -> Result<u64> {
        let inner = &self.inner;
        Ok(py.detach(|| locked(inner).map(|r| r.retired_count()))?)
    }

    fn memory_bytes(&self, py: Python<'_>) -> Result<u64> {
        let inner = &self.inner;
        Ok(py.detach(|| locked(inner).map(|r| r.memory_bytes()))?)
    }

    fn save(&self, py: Python<'_>, path: PathBuf) -> Result<()> {
        let inner = &self.inner;
        Ok(py.detach(|| locked(inner)?.save(&path))?)
    }

    #[staticmethod]
    fn load(py: Python<'_>, key: &[u8], path: PathBuf) -> Result<Self> {
        let inner = py.detach(|| Issuer::load(key, &path))?;
        Ok(IssuerCore {
            inner: Mutex::new(inner),
        })
    }
}

#[pymodule]
fn _jukicore(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // The error classes are imported on first use; importing their module now
    // makes a broken installation fail here, not inside an error path.
    m.py().import("jukicore.errors")?;
    m.add_function(wrap_pyfunction!(check_digits, m)?)?;
    m.add_function(wrap_pyfunction!(validate, m)?)?;
    m.add_function(wrap_pyfunction!(container_pack, m)?)?;
    m.add_function(wrap_pyfunction!(container_unpack, m)?)?;
    m.add_function(wrap_pyfunction!(text_flags, m)?)?;
    for (name, flag) in [
        ("TEXT_NULL", text::NULL),
        ("TEXT_EMPTY", text::EMPTY),
        ("TEXT_CONTROL", text::CONTROL),
        ("TEXT_SURROUNDING", text::SURROUNDING),
        ("TEXT_TOO_LONG", text::TOO_LONG),
        ("TEXT_NOT_UTF8", text::NOT_UTF8),
    ] {
        m.add(name, flag)?;
    }
    aead::register(m)?;
    canonical::register(m)?;
    merkle::register(m)?;
    normalize::register(m)?;
    index::register(m)?;
    m.add_class::<RegistryCore>()?;
    m.add_class::<IssuerCore>()?;
    Ok(())
}
