//! jukicore-core: the pure-Rust core of jukicore.
//!
//! No Python here: identifiers and their check digits ([`checkdigit`]), the
//! set of every code ever issued ([`codeset`]), resident-code allocation
//! ([`registry`]) and My Number derivation ([`mynumber`]), and the checksummed
//! file container they persist in ([`container`]), the identity lookup index
//! ([`index`]), bulk AES-256-GCM of
//! record columns ([`aead`]), canonical JSON digests of records ([`canonical`]), the
//! checks every stored text passes ([`text`]), match keys of names and addresses
//! ([`normalize`]) and the audit log's RFC 6962 Merkle tree
//! ([`merkle`]). The PyO3 bindings in
//! `rust/py` convert at the boundary and map [`CoreError`] onto the Python
//! exception hierarchy.

pub mod aead;
pub mod canonical;
pub mod checkdigit;
pub mod codeset;
pub mod container;
pub mod error;
pub mod index;
pub mod mem;
pub mod merkle;
pub mod mynumber;
pub mod normalize;
pub mod random;
pub mod registry;
pub mod text;

pub use error::{CoreError, Result, RowError};
