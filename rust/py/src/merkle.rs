//! Bindings of `jukicore_core::merkle`: the audit log's RFC 6962 tree.
//!
//! Hashes are 32-byte `bytes`; a frontier is its nodes concatenated. The
//! leaves of a whole log live in a [`MerkleLeaves`] (hashed from Arrow record
//! batches of audit rows without the GIL), so proofs and prefix roots of ten
//! million entries never cross the boundary as Python objects.

use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, ArrayRef, GenericStringArray, PrimitiveArray};
use arrow_schema::{DataType, TimeUnit};
use jukicore_core::merkle::{self, Entry, Frontier, Hash, ENTRY_TEXT_FIELDS};
use jukicore_core::CoreError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::arrow;
use crate::error::Result;

fn hash_of(b: &[u8], what: &str) -> std::result::Result<Hash, CoreError> {
    b.try_into()
        .map_err(|_| CoreError::Invalid(format!("{what} is {} bytes, not a 32-byte hash", b.len())))
}

fn hashes_of(b: &[u8], what: &str) -> std::result::Result<Vec<Hash>, CoreError> {
    if !b.chunks_exact(32).remainder().is_empty() {
        return Err(CoreError::Invalid(format!(
            "{what} is {} bytes, not a whole number of 32-byte hashes",
            b.len()
        )));
    }
    Ok(b.chunks_exact(32)
        .map(|c| c.try_into().expect("32 bytes"))
        .collect())
}

fn frontier_of(size: u64, nodes: &[u8]) -> std::result::Result<Frontier, CoreError> {
    Frontier::from_parts(size, hashes_of(nodes, "a frontier")?)
}

fn proof_of(proof: Vec<Vec<u8>>) -> std::result::Result<Vec<Hash>, CoreError> {
    proof.iter().map(|p| hash_of(p, "a proof hash")).collect()
}

fn out<'py>(py: Python<'py>, h: &Hash) -> Bound<'py, PyBytes> {
    PyBytes::new(py, h)
}

/// `SHA-256(0x00 || data)`.
#[pyfunction]
fn merkle_leaf_hash<'py>(py: Python<'py>, data: &[u8]) -> Bound<'py, PyBytes> {
    out(py, &merkle::leaf_hash(data))
}

/// `SHA-256(0x01 || left || right)`.
#[pyfunction]
fn merkle_node_hash<'py>(
    py: Python<'py>,
    left: &[u8],
    right: &[u8],
) -> Result<Bound<'py, PyBytes>> {
    let (l, r) = (hash_of(left, "left")?, hash_of(right, "right")?);
    Ok(out(py, &merkle::node_hash(&l, &r)))
}

/// The root of leaf hashes given concatenated.
#[pyfunction]
fn merkle_root<'py>(py: Python<'py>, leaves: &[u8]) -> Result<Bound<'py, PyBytes>> {
    let leaves = hashes_of(leaves, "the leaves")?;
    let r = py.detach(|| merkle::root(&leaves));
    Ok(out(py, &r))
}

/// The root of the tree whose frontier is `nodes` (`size` leaves).
#[pyfunction]
fn merkle_frontier_root<'py>(
    py: Python<'py>,
    size: u64,
    nodes: &[u8],
) -> Result<Bound<'py, PyBytes>> {
    Ok(out(py, &frontier_of(size, nodes)?.root()))
}

#[pyfunction]
fn merkle_verify_inclusion(
    leaf: &[u8],
    index: u64,
    size: u64,
    proof: Vec<Vec<u8>>,
    root: &[u8],
) -> Result<bool> {
    let (leaf, root) = (hash_of(leaf, "the leaf")?, hash_of(root, "the root")?);
    Ok(merkle::verify_inclusion(
        &leaf,
        index,
        size,
        &proof_of(proof)?,
        &root,
    ))
}

#[pyfunction]
fn merkle_verify_consistency(
    m: u64,
    n: u64,
    root_m: &[u8],
    root_n: &[u8],
    proof: Vec<Vec<u8>>,
) -> Result<bool> {
    let (rm, rn) = (hash_of(root_m, "root_m")?, hash_of(root_n, "root_n")?);
    Ok(merkle::verify_consistency(
        m,
        n,
        &rm,
        &rn,
        &proof_of(proof)?,
    ))
}

type Texts = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn texts_ref(t: &Texts) -> [Option<&str>; 6] {
    [
        t.0.as_deref(),
        t.1.as_deref(),
        t.2.as_deref(),
        t.3.as_deref(),
        t.4.as_deref(),
        t.5.as_deref(),
    ]
}

/// The canonical bytes of one audit entry (see `jukicore_core::merkle::entry_bytes`).
#[pyfunction]
fn audit_entry_bytes<'py>(
    py: Python<'py>,
    seq: u64,
    at_us: i64,
    texts: Texts,
) -> Result<Bound<'py, PyBytes>> {
    let mut buf = Vec::new();
    merkle::entry_bytes(
        &Entry {
            seq,
            at_us,
            texts: texts_ref(&texts),
        },
        &mut buf,
    )?;
    Ok(PyBytes::new(py, &buf))
}

/// Append entries `(at_us, texts)` numbered `size, size + 1, ...` to the
/// frontier (`size`, `nodes`); returns the new frontier's nodes and root.
#[pyfunction]
fn audit_chain_append<'py>(
    py: Python<'py>,
    size: u64,
    nodes: &[u8],
    entries: Vec<(i64, Texts)>,
) -> Result<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)> {
    let mut f = frontier_of(size, nodes)?;
    let mut buf = Vec::with_capacity(256);
    for (i, (at_us, texts)) in entries.iter().enumerate() {
        buf.clear();
        merkle::entry_bytes(
            &Entry {
                seq: size + i as u64,
                at_us: *at_us,
                texts: texts_ref(texts),
            },
            &mut buf,
        )?;
        f.push(merkle::leaf_hash(&buf));
    }
    Ok((PyBytes::new(py, &f.nodes().concat()), out(py, &f.root())))
}

enum Texty<'a> {
    Small(&'a GenericStringArray<i32>),
    Large(&'a GenericStringArray<i64>),
    Null,
}

impl Texty<'_> {
    fn get(&self, i: usize) -> Option<&str> {
        match self {
            Texty::Small(a) => (!a.is_null(i)).then(|| a.value(i)),
            Texty::Large(a) => (!a.is_null(i)).then(|| a.value(i)),
            Texty::Null => None,
        }
    }
}

fn column<'a>(
    cols: &'a [ArrayRef],
    names: &[String],
    name: &str,
) -> std::result::Result<&'a ArrayRef, CoreError> {
    names
        .iter()
        .position(|n| n == name)
        .map(|i| &cols[i])
        .ok_or_else(|| CoreError::Invalid(format!("the audit rows have no column {name:?}")))
}

fn texty<'a>(a: &'a ArrayRef, name: &str) -> std::result::Result<Texty<'a>, CoreError> {
    match a.data_type() {
        DataType::Utf8 => Ok(Texty::Small(a.as_string::<i32>())),
        DataType::LargeUtf8 => Ok(Texty::Large(a.as_string::<i64>())),
        DataType::Null => Ok(Texty::Null),
        t => Err(CoreError::Invalid(format!(
            "audit column {name} is {t}, not a string"
        ))),
    }
}

fn non_null_i64<'a>(
    a: &'a ArrayRef,
    name: &str,
) -> std::result::Result<&'a PrimitiveArray<Int64Type>, CoreError> {
    if a.null_count() > 0 {
        return Err(CoreError::Invalid(format!(
            "audit column {name} holds nulls"
        )));
    }
    a.as_primitive_opt::<Int64Type>()
        .ok_or_else(|| CoreError::Invalid(format!("audit column {name} is not int64")))
}

/// The leaf hashes of an audit log (the tree's leaves, in order).
#[pyclass(module = "jukicore._jukicore")]
pub(crate) struct MerkleLeaves {
    leaves: Vec<Hash>,
}

impl MerkleLeaves {
    fn prefix(&self, size: u64) -> std::result::Result<&[Hash], CoreError> {
        usize::try_from(size)
            .ok()
            .and_then(|s| self.leaves.get(..s))
            .ok_or_else(|| {
                CoreError::Invalid(format!(
                    "a tree of {size} leaves: only {} are known",
                    self.leaves.len()
                ))
            })
    }
}

#[pymethods]
impl MerkleLeaves {
    #[new]
    #[pyo3(signature = (leaves = None))]
    fn new(leaves: Option<&[u8]>) -> Result<Self> {
        Ok(Self {
            leaves: hashes_of(leaves.unwrap_or(&[]), "the leaves")?,
        })
    }

    fn __len__(&self) -> usize {
        self.leaves.len()
    }

    /// Hash and append the entries of a record batch of audit rows (columns
    /// `seq` int64, `at` timestamp[us] or int64 microseconds, and the six text
    /// columns; any producer of `__arrow_c_array__` giving a struct array).
    /// The canonical bytes use each row's own `seq`.
    fn extend_audit(&mut self, py: Python<'_>, batch: &Bound<'_, PyAny>) -> Result<usize> {
        let array = arrow::import_array(batch)?;
        let s = array.as_struct_opt().ok_or_else(|| {
            CoreError::Invalid(format!(
                "audit rows must be a record batch (a struct array), not {}",
                array.data_type()
            ))
        })?;
        let names: Vec<String> = s.column_names().iter().map(|n| n.to_string()).collect();
        let cols = s.columns();
        let seq = non_null_i64(column(cols, &names, "seq")?, "seq")?;
        let at_col = column(cols, &names, "at")?;
        if at_col.null_count() > 0 {
            return Err(CoreError::Invalid("audit column at holds nulls".into()).into());
        }
        let at: &[i64] = match at_col.data_type() {
            DataType::Timestamp(TimeUnit::Microsecond, _) => {
                at_col.as_primitive::<TimestampMicrosecondType>().values()
            }
            DataType::Int64 => at_col.as_primitive::<Int64Type>().values(),
            t => {
                return Err(CoreError::Invalid(format!(
                    "audit column at is {t}, not timestamp[us]"
                ))
                .into())
            }
        };
        let seq: &[i64] = seq.values();
        if let Some(i) = seq.iter().position(|&v| v < 0) {
            return Err(
                CoreError::Invalid(format!("audit row {i}: seq {} is negative", seq[i])).into(),
            );
        }
        let texts: Vec<Texty<'_>> = ENTRY_TEXT_FIELDS
            .iter()
            .map(|n| column(cols, &names, n).and_then(|c| texty(c, n)))
            .collect::<std::result::Result<_, _>>()?;
        let n = s.len();
        let new = py.detach(|| {
            merkle::entry_leaves(n, |i| Entry {
                seq: seq[i] as u64,
                at_us: at[i],
                texts: std::array::from_fn(|k| texts[k].get(i)),
            })
        })?;
        self.leaves.extend_from_slice(&new);
        Ok(n)
    }

    /// Leaf hash `index`.
    fn leaf<'py>(&self, py: Python<'py>, index: u64) -> Result<Bound<'py, PyBytes>> {
        let l = self.prefix(index.saturating_add(1))?;
        Ok(out(py, &l[index as usize]))
    }

    /// The leaves, concatenated.
    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.leaves.concat())
    }

    /// The root of the first `size` leaves (all of them by default).
    #[pyo3(signature = (size = None))]
    fn root<'py>(&self, py: Python<'py>, size: Option<u64>) -> Result<Bound<'py, PyBytes>> {
        let l = self.prefix(size.unwrap_or(self.leaves.len() as u64))?;
        let r = py.detach(|| merkle::root(l));
        Ok(out(py, &r))
    }

    /// The roots of the prefixes of the given sizes (in any order), in one
    /// pass over the leaves.
    fn roots<'py>(&self, py: Python<'py>, sizes: Vec<u64>) -> Result<Vec<Bound<'py, PyBytes>>> {
        let max = sizes.iter().copied().max().unwrap_or(0);
        self.prefix(max)?;
        let mut order: Vec<usize> = (0..sizes.len()).collect();
        order.sort_by_key(|&i| sizes[i]);
        let leaves = &self.leaves;
        let found = py.detach(|| {
            let mut f = Frontier::new();
            let mut res = vec![merkle::EMPTY_ROOT; sizes.len()];
            for &i in &order {
                while f.size() < sizes[i] {
                    f.push(leaves[f.size() as usize]);
                }
                res[i] = f.root();
            }
            res
        });
        Ok(found.iter().map(|h| out(py, h)).collect())
    }

    /// The frontier (its nodes, concatenated) of the first `size` leaves.
    fn frontier<'py>(&self, py: Python<'py>, size: u64) -> Result<Bound<'py, PyBytes>> {
        let l = self.prefix(size)?;
        let f = py.detach(|| {
            let mut f = Frontier::new();
            f.extend(l);
            f
        });
        Ok(PyBytes::new(py, &f.nodes().concat()))
    }

    /// The inclusion proof of leaf `index` in the tree of the first `size` leaves.
    fn inclusion_proof<'py>(
        &self,
        py: Python<'py>,
        index: u64,
        size: u64,
    ) -> Result<Vec<Bound<'py, PyBytes>>> {
        let l = self.prefix(size)?;
        let p = py.detach(|| merkle::inclusion_proof(l, index))?;
        Ok(p.iter().map(|h| out(py, h)).collect())
    }

    /// The consistency proof of the first `m` leaves with the first `n`.
    fn consistency_proof<'py>(
        &self,
        py: Python<'py>,
        m: u64,
        n: u64,
    ) -> Result<Vec<Bound<'py, PyBytes>>> {
        let l = self.prefix(n)?;
        let p = py.detach(|| merkle::consistency_proof(l, m))?;
        Ok(p.iter().map(|h| out(py, h)).collect())
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(merkle_leaf_hash, m)?)?;
    m.add_function(wrap_pyfunction!(merkle_node_hash, m)?)?;
    m.add_function(wrap_pyfunction!(merkle_root, m)?)?;
    m.add_function(wrap_pyfunction!(merkle_frontier_root, m)?)?;
    m.add_function(wrap_pyfunction!(merkle_verify_inclusion, m)?)?;
    m.add_function(wrap_pyfunction!(merkle_verify_consistency, m)?)?;
    m.add_function(wrap_pyfunction!(audit_entry_bytes, m)?)?;
    m.add_function(wrap_pyfunction!(audit_chain_append, m)?)?;
    m.add_class::<MerkleLeaves>()?;
    Ok(())
}
