//! How core errors reach Python: the classes of `jukicore.errors`, imported
//! once by pyo3 (`import_exception!`), and a conversion (`From`) instead of a
//! lookup by name at each error.
//!
//! Binding functions return [`Result`]: `?` takes both a [`CoreError`] and a
//! [`PyErr`], and pyo3 turns an [`Error`] into the Python exception.

use jukicore_core::{CoreError, RowError};
use numpy::AsSliceError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyList, PyType};

pyo3::import_exception!(jukicore.errors, JukiError);
pyo3::import_exception!(jukicore.errors, InvalidInputError);
pyo3::import_exception!(jukicore.errors, ConflictError);
pyo3::import_exception!(jukicore.errors, CorruptFileError);
pyo3::import_exception!(jukicore.errors, CodeSpaceExhaustedError);
pyo3::import_exception!(jukicore.errors, FileError);

/// `jukicore.errors.BadRow` (a dataclass, not an exception), imported once.
static BAD_ROW: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// An error of a binding call: from the core, or from Python itself
/// (argument conversion, a non-contiguous array).
pub(crate) enum Error {
    Core(CoreError),
    Py(PyErr),
}

pub(crate) type Result<T> = std::result::Result<T, Error>;

impl From<CoreError> for Error {
    fn from(e: CoreError) -> Self {
        Error::Core(e)
    }
}

impl From<PyErr> for Error {
    fn from(e: PyErr) -> Self {
        Error::Py(e)
    }
}

impl From<AsSliceError> for Error {
    fn from(e: AsSliceError) -> Self {
        Error::Py(e.into())
    }
}

impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        match e {
            Error::Py(e) => e,
            Error::Core(e) => Python::attach(|py| core_to_py(py, e)),
        }
    }
}

/// The rows as a list of `BadRow`.
fn bad_rows(py: Python<'_>, rows: Vec<RowError>) -> PyResult<Py<PyList>> {
    let bad_row = BAD_ROW.import(py, "jukicore.errors", "BadRow")?;
    let list = PyList::empty(py);
    for r in rows {
        list.append(bad_row.call1((r.row, r.reason))?)?;
    }
    Ok(list.unbind())
}

/// The Python exception of a core error:
///
/// | variant        | class                                   |
/// |----------------|-----------------------------------------|
/// | `InvalidRows`  | `InvalidInputError` with `rows`         |
/// | `Invalid`      | `InvalidInputError`                     |
/// | `Conflict`     | `ConflictError` with `rows`             |
/// | `Corrupt`      | `CorruptFileError`                      |
/// | `Exhausted`    | `CodeSpaceExhaustedError`               |
/// | `Random`       | `JukiError`                             |
/// | `File`, `Io`   | `FileError` (an `OSError`) with `errno` |
fn core_to_py(py: Python<'_>, err: CoreError) -> PyErr {
    let message = err.to_string();
    match err {
        CoreError::InvalidRows { message, rows } => match bad_rows(py, rows) {
            Ok(rows) => InvalidInputError::new_err((message, rows)),
            Err(e) => e,
        },
        CoreError::Conflict { message, rows } => match bad_rows(py, rows) {
            Ok(rows) => ConflictError::new_err((message, rows)),
            Err(e) => e,
        },
        CoreError::Invalid(m) => InvalidInputError::new_err((m,)),
        CoreError::Corrupt(m) => CorruptFileError::new_err((m,)),
        CoreError::Exhausted(m) => CodeSpaceExhaustedError::new_err((m,)),
        CoreError::Random(_) => JukiError::new_err((message,)),
        CoreError::File { .. } | CoreError::Io(_) => {
            // FileError(message) with the errno set afterwards, as
            // jukicore._files does: OSError(errno, strerror) would print
            // "[Errno n]" before the message, and a filename would replace it.
            let errno = err.os_errno();
            let exc = FileError::new_err((message,));
            if let Some(n) = errno {
                if let Err(e) = exc.value(py).setattr("errno", n) {
                    return e;
                }
            }
            exc
        }
    }
}
