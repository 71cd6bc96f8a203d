//! The core's one error type. The Python bindings map each variant onto a
//! class of `jukicore.errors`.

use std::fmt;

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
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

pub type Result<T> = std::result::Result<T, CoreError>;
