//! The core's one error type. The Python bindings map each variant onto a
//! class of `jukicore.errors`.

use std::fmt;
use std::path::{Path, PathBuf};

/// One offending row of a bulk input: its position and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub row: usize,
    pub reason: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "row {}: {}", self.row, self.reason)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// Input refused; every bad row is listed. Nothing was changed.
    #[error("{message} ({} bad rows)", rows.len())]
    InvalidRows {
        message: String,
        rows: Vec<RowError>,
    },
    /// A scalar argument was refused. Nothing was changed.
    #[error("{0}")]
    Invalid(String),
    /// The request contradicts current state (for example a number already issued).
    #[error("{message} ({} rows)", rows.len())]
    Conflict {
        message: String,
        rows: Vec<RowError>,
    },
    /// A file is truncated, corrupted, or of an unknown kind or version.
    #[error("{0}")]
    Corrupt(String),
    /// Not enough fresh codes are left.
    #[error("{0}")]
    Exhausted(String),
    /// The operating system's random source failed.
    #[error("random source failed: {0}")]
    Random(String),
    /// A file could not be read or written: the operation, the path the caller
    /// named, and the operating system's error (its errno, where there is one).
    #[error("cannot {action} {}: {}", path.display(), os_reason(source))]
    File {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An I/O error where no path is known (a sink or source in memory).
    #[error("{}", os_reason(.0))]
    Io(#[from] std::io::Error),
}

impl CoreError {
    /// The errno of an I/O error, if the operating system gave one.
    pub fn os_errno(&self) -> Option<i32> {
        match self {
            CoreError::File { source, .. } | CoreError::Io(source) => source.raw_os_error(),
            _ => None,
        }
    }
}

/// The operating system's reason without Rust's " (os error N)" suffix, as
/// Python's `strerror` would give it.
pub fn os_reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    match e.raw_os_error() {
        Some(n) => text
            .strip_suffix(&format!(" (os error {n})"))
            .map(str::to_owned)
            .unwrap_or(text),
        None => text,
    }
}

/// Attach the operation and the path to an I/O error.
pub trait IoContext<T> {
    fn at(self, action: &'static str, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, action: &'static str, path: &Path) -> Result<T> {
        self.map_err(|source| CoreError::File {
            action,
            path: path.to_path_buf(),
            source,
        })
    }
}

pub type Result<T> = std::result::Result<T, CoreError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_errors_name_the_action_path_and_reason_and_keep_the_errno() {
        let missing = Path::new("/nonexistent-jukicore-dir/x.bin");
        let err = std::fs::File::open(missing)
            .at("read", missing)
            .unwrap_err();
        assert_eq!(err.os_errno(), Some(libc::ENOENT));
        assert_eq!(
            err.to_string(),
            "cannot read /nonexistent-jukicore-dir/x.bin: No such file or directory"
        );
        let plain = CoreError::from(std::io::Error::other("sink closed"));
        assert_eq!(plain.os_errno(), None);
        assert_eq!(plain.to_string(), "sink closed");
    }
}
