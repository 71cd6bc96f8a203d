//! Thin PyO3 bindings of `jukicore-core`.
//!
//! Everything here converts at the boundary (contiguous numpy uint64 columns
//! in, numpy columns out, without copies where numpy allows), releases the GIL
//! for the heavy work, and maps core errors onto `jukicore.errors`. Input
//! normalisation (scalars, strings, pyarrow, lists) lives in `jukicore.ids`.

mod aead;

use std::path::PathBuf;

use jukicore_core::checkdigit::{self, Kind};
use jukicore_core::container;
use jukicore_core::mynumber::Issuer;
use jukicore_core::registry::Registry;
use jukicore_core::{CoreError, RowError};
use numpy::{IntoPyArray, PyArray1, PyReadonlyArray1};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

/// Map a core error onto the Python hierarchy rooted at `jukicore.JukiError`.
pub(crate) fn to_py(py: Python<'_>, err: CoreError) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let errors = py.import("jukicore.errors")?;
        let with_rows = |class: &str, message: String, rows: Vec<RowError>| -> PyResult<PyErr> {
            let bad_row = errors.getattr("BadRow")?;
            let list = PyList::empty(py);
            for r in rows {
                list.append(bad_row.call1((r.row, r.reason))?)?;
            }
            Ok(PyErr::from_value(
                errors.getattr(class)?.call1((message, list))?,
            ))
        };
        let plain = |class: &str, message: String| -> PyResult<PyErr> {
            Ok(PyErr::from_value(errors.getattr(class)?.call1((message,))?))
        };
        match err {
            CoreError::InvalidRows { message, rows } => {
                with_rows("InvalidInputError", message, rows)
            }
            CoreError::Invalid(m) => plain("InvalidInputError", m),
            CoreError::Conflict { message, rows } => with_rows("ConflictError", message, rows),
            CoreError::Corrupt(m) => plain("CorruptFileError", m),
            CoreError::Exhausted(m) => plain("CodeSpaceExhaustedError", m),
            CoreError::Random(m) => plain("JukiError", format!("random source failed: {m}")),
            CoreError::Io(e) => Ok(PyErr::from(e)),
        }
    };
    build().unwrap_or_else(|e| e)
}

fn kind_of(name: &str) -> PyResult<Kind> {
    match name {
        "resident_code" => Ok(Kind::ResidentCode),
        "my_number" => Ok(Kind::MyNumber),
        "lg_code" => Ok(Kind::LgCode),
        other => Err(PyValueError::new_err(format!(
            "unknown identifier kind {other:?}"
        ))),
    }
}

/// Check digits of a column of bodies of the given kind.
#[pyfunction]
fn check_digits<'py>(
    py: Python<'py>,
    kind: &str,
    bodies: PyReadonlyArray1<'py, u64>,
) -> PyResult<Bound<'py, PyArray1<u8>>> {
    let kind = kind_of(kind)?;
    let bodies = bodies.as_slice()?;
    let out = py
        .detach(|| checkdigit::check_digits(kind, bodies))
        .map_err(|e| to_py(py, e))?;
    Ok(out.into_pyarray(py))
}

/// Validity of a column of full codes of the given kind.
#[pyfunction]
fn validate<'py>(
    py: Python<'py>,
    kind: &str,
    codes: PyReadonlyArray1<'py, u64>,
) -> PyResult<Bound<'py, PyArray1<bool>>> {
    let kind = kind_of(kind)?;
    let codes = codes.as_slice()?;
    let out = py
        .detach(|| checkdigit::validate(kind, codes))
        .map_err(|e| to_py(py, e))?;
    Ok(out.into_pyarray(py))
}

fn kind_tag(kind: &str) -> PyResult<[u8; 8]> {
    let b = kind.as_bytes();
    if b.is_empty() || b.len() > 8 || !kind.is_ascii() {
        return Err(PyValueError::new_err(
            "a container kind is 1 to 8 ASCII characters",
        ));
    }
    let mut tag = [b' '; 8];
    tag[..b.len()].copy_from_slice(b);
    Ok(tag)
}

/// Pack sections into a checksummed jukicore container (bytes).
#[pyfunction]
fn container_pack<'py>(
    py: Python<'py>,
    kind: &str,
    version: u32,
    sections: Vec<Vec<u8>>,
) -> PyResult<Bound<'py, PyBytes>> {
    let tag = kind_tag(kind)?;
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
) -> PyResult<(u32, Vec<Bound<'py, PyBytes>>)> {
    let tag = kind_tag(kind)?;
    let loaded = container::parse(data.to_vec(), &tag, &versions).map_err(|e| to_py(py, e))?;
    let sections = (0..loaded.sections())
        .map(|i| PyBytes::new(py, loaded.section(i)))
        .collect();
    Ok((loaded.version, sections))
}

/// The set of every resident code ever issued (see `jukicore.ids.CodeRegistry`).
#[pyclass(module = "jukicore._jukicore")]
struct RegistryCore {
    inner: Registry,
}

#[pymethods]
impl RegistryCore {
    #[new]
    fn new() -> Self {
        RegistryCore {
            inner: Registry::new(),
        }
    }

    fn generate<'py>(&mut self, py: Python<'py>, n: usize) -> PyResult<Bound<'py, PyArray1<u64>>> {
        let inner = &mut self.inner;
        let out = py.detach(|| inner.generate(n)).map_err(|e| to_py(py, e))?;
        Ok(out.into_pyarray(py))
    }

    fn add(&mut self, py: Python<'_>, codes: PyReadonlyArray1<'_, u64>) -> PyResult<u64> {
        let codes = codes.as_slice()?;
        let inner = &mut self.inner;
        py.detach(|| inner.add(codes)).map_err(|e| to_py(py, e))
    }

    fn contains<'py>(
        &self,
        py: Python<'py>,
        codes: PyReadonlyArray1<'py, u64>,
    ) -> PyResult<Bound<'py, PyArray1<bool>>> {
        let codes = codes.as_slice()?;
        let inner = &self.inner;
        Ok(py.detach(|| inner.contains_many(codes)).into_pyarray(py))
    }

    fn __len__(&self) -> usize {
        self.inner.len() as usize
    }

    fn memory_bytes(&self) -> u64 {
        self.inner.memory_bytes()
    }

    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let inner = &self.inner;
        py.detach(|| inner.save(&path)).map_err(|e| to_py(py, e))
    }

    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let inner = py
            .detach(|| Registry::load(&path))
            .map_err(|e| to_py(py, e))?;
        Ok(RegistryCore { inner })
    }
}

/// The center's My Number issuer (see `jukicore.ids.MyNumberIssuer`).
#[pyclass(module = "jukicore._jukicore")]
struct IssuerCore {
    inner: Issuer,
}

#[pymethods]
impl IssuerCore {
    #[new]
    fn new(py: Python<'_>, key: &[u8]) -> PyResult<Self> {
        Ok(IssuerCore {
            inner: Issuer::new(key).map_err(|e| to_py(py, e))?,
        })
    }

    fn issue<'py>(
        &mut self,
        py: Python<'py>,
        codes: PyReadonlyArray1<'py, u64>,
    ) -> PyResult<Bound<'py, PyArray1<u64>>> {
        let codes = codes.as_slice()?;
        let inner = &mut self.inner;
        let out = py.detach(|| inner.issue(codes)).map_err(|e| to_py(py, e))?;
        Ok(out.into_pyarray(py))
    }

    fn replace(&mut self, py: Python<'_>, code: u64, leaked: u64) -> PyResult<u64> {
        self.inner.replace(code, leaked).map_err(|e| to_py(py, e))
    }

    fn issued_count(&self) -> u64 {
        self.inner.issued_count()
    }

    fn holder_count(&self) -> u64 {
        self.inner.holder_count()
    }

    fn retired_count(&self) -> u64 {
        self.inner.retired_count()
    }

    fn memory_bytes(&self) -> u64 {
        self.inner.memory_bytes()
    }

    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let inner = &self.inner;
        py.detach(|| inner.save(&path)).map_err(|e| to_py(py, e))
    }

    #[staticmethod]
    fn load(py: Python<'_>, key: &[u8], path: PathBuf) -> PyResult<Self> {
        let inner = py
            .detach(|| Issuer::load(key, &path))
            .map_err(|e| to_py(py, e))?;
        Ok(IssuerCore { inner })
    }
}

#[pymodule]
fn _jukicore(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(check_digits, m)?)?;
    m.add_function(wrap_pyfunction!(validate, m)?)?;
    m.add_function(wrap_pyfunction!(container_pack, m)?)?;
    m.add_function(wrap_pyfunction!(container_unpack, m)?)?;
    aead::register(m)?;
    m.add_class::<RegistryCore>()?;
    m.add_class::<IssuerCore>()?;
    Ok(())
}
