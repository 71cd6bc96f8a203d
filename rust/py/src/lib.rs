//! Thin PyO3 bindings of `jukicore-core`.
//!
//! Everything here converts at the boundary (contiguous numpy uint64 columns
//! in, numpy columns out, without copies where numpy allows), releases the GIL
//! for the heavy work, and maps core errors onto `jukicore.errors`. Input
//! normalisation (scalars, strings, pyarrow, lists) lives in `jukicore.ids`.

mod aead;

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use jukicore_core::checkdigit::{self, Kind};
use jukicore_core::container;
use jukicore_core::mynumber::Issuer;
use jukicore_core::registry::Registry;
use jukicore_core::text;
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
            // OSError(errno, strerror): Python picks the subclass and keeps the errno.
            CoreError::Io(e) => match e.raw_os_error() {
                Some(n) => {
                    let reason = py.import("os")?.getattr("strerror")?.call1((n,))?;
                    Ok(PyErr::from_value(
                        py.import("builtins")?
                            .getattr("OSError")?
                            .call1((n, reason))?,
                    ))
                }
                None => Ok(PyErr::from(e)),
            },
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

/// Flags of every value of a string column (`jukicore_core::text`): the UTF-8
/// bytes, `n + 1` int32 offsets, and Arrow's validity bitmap with the first
/// value at `bit_offset` (None: no nulls).
#[pyfunction]
#[pyo3(signature = (data, offsets, validity, bit_offset, limit))]
fn text_flags<'py>(
    py: Python<'py>,
    data: PyReadonlyArray1<'py, u8>,
    offsets: PyReadonlyArray1<'py, i32>,
    validity: Option<PyReadonlyArray1<'py, u8>>,
    bit_offset: usize,
    limit: usize,
) -> PyResult<Bound<'py, PyArray1<u8>>> {
    let (data, offsets) = (data.as_slice()?, offsets.as_slice()?);
    let bits = validity.as_ref().map(|v| v.as_slice()).transpose()?;
    let out = text::column_flags(data, offsets, bits.map(|b| (b, bit_offset)), limit)
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

/// Lock a core object's mutex; a panic that poisoned it leaves the object unusable.
fn locked<'a, T>(m: &'a Mutex<T>) -> Result<MutexGuard<'a, T>, CoreError> {
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

    fn generate<'py>(&self, py: Python<'py>, n: usize) -> PyResult<Bound<'py, PyArray1<u64>>> {
        let inner = &self.inner;
        let out = py
            .detach(|| locked(inner)?.generate(n))
            .map_err(|e| to_py(py, e))?;
        Ok(out.into_pyarray(py))
    }

    fn add(&self, py: Python<'_>, codes: PyReadonlyArray1<'_, u64>) -> PyResult<u64> {
        let codes = codes.as_slice()?;
        let inner = &self.inner;
        py.detach(|| locked(inner)?.add(codes))
            .map_err(|e| to_py(py, e))
    }

    fn contains<'py>(
        &self,
        py: Python<'py>,
        codes: PyReadonlyArray1<'py, u64>,
    ) -> PyResult<Bound<'py, PyArray1<bool>>> {
        let codes = codes.as_slice()?;
        let inner = &self.inner;
        let out = py
            .detach(|| locked(inner).map(|r| r.contains_many(codes)))
            .map_err(|e| to_py(py, e))?;
        Ok(out.into_pyarray(py))
    }

    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        let inner = &self.inner;
        py.detach(|| locked(inner).map(|r| r.len() as usize))
            .map_err(|e| to_py(py, e))
    }

    fn memory_bytes(&self, py: Python<'_>) -> PyResult<u64> {
        let inner = &self.inner;
        py.detach(|| locked(inner).map(|r| r.memory_bytes()))
            .map_err(|e| to_py(py, e))
    }

    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let inner = &self.inner;
        py.detach(|| locked(inner)?.save(&path))
            .map_err(|e| to_py(py, e))
    }

    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let inner = py
            .detach(|| Registry::load(&path))
            .map_err(|e| to_py(py, e))?;
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
    fn new(py: Python<'_>, key: &[u8]) -> PyResult<Self> {
        Ok(IssuerCore {
            inner: Mutex::new(Issuer::new(key).map_err(|e| to_py(py, e))?),
        })
    }

    fn issue<'py>(
        &self,
        py: Python<'py>,
        codes: PyReadonlyArray1<'py, u64>,
    ) -> PyResult<Bound<'py, PyArray1<u64>>> {
        let codes = codes.as_slice()?;
        let inner = &self.inner;
        let out = py
            .detach(|| locked(inner)?.issue(codes))
            .map_err(|e| to_py(py, e))?;
        Ok(out.into_pyarray(py))
    }

    fn replace(&self, py: Python<'_>, code: u64, leaked: u64) -> PyResult<u64> {
        let inner = &self.inner;
        py.detach(|| locked(inner)?.replace(code, leaked))
            .map_err(|e| to_py(py, e))
    }

    fn issued_count(&self, py: Python<'_>) -> PyResult<u64> {
        let inner = &self.inner;
        py.detach(|| locked(inner).map(|r| r.issued_count()))
            .map_err(|e| to_py(py, e))
    }

    fn holder_count(&self, py: Python<'_>) -> PyResult<u64> {
        let inner = &self.inner;
        py.detach(|| locked(inner).map(|r| r.holder_count()))
            .map_err(|e| to_py(py, e))
    }

    fn retired_count(&self, py: Python<'_>) -> PyResult<u64> {
        let inner = &self.inner;
        py.detach(|| locked(inner).map(|r| r.retired_count()))
            .map_err(|e| to_py(py, e))
    }

    fn memory_bytes(&self, py: Python<'_>) -> PyResult<u64> {
        let inner = &self.inner;
        py.detach(|| locked(inner).map(|r| r.memory_bytes()))
            .map_err(|e| to_py(py, e))
    }

    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let inner = &self.inner;
        py.detach(|| locked(inner)?.save(&path))
            .map_err(|e| to_py(py, e))
    }

    #[staticmethod]
    fn load(py: Python<'_>, key: &[u8], path: PathBuf) -> PyResult<Self> {
        let inner = py
            .detach(|| Issuer::load(key, &path))
            .map_err(|e| to_py(py, e))?;
        Ok(IssuerCore {
            inner: Mutex::new(inner),
        })
    }
}

#[pymodule]
fn _jukicore(m: &Bound<'_, PyModule>) -> PyResult<()> {
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
    m.add_class::<RegistryCore>()?;
    m.add_class::<IssuerCore>()?;
    Ok(())
}
