//! Bindings of `jukicore_core::index`: the identity lookup index.
//!
//! Columns come in as Arrow arrays through the PyCapsule interface (codes
//! `uint64`, texts `string` or `large_string`, dates `date32` (or `int32`
//! days), sex `int8` (1, 2, 9), status `uint8` (0 resident, 1 removed)); no
//! column may hold nulls. Answers go out as `pyarrow.RecordBatch`es. Heavy
//! work runs with the GIL released, behind a read-write lock (lookups and
//! searches share it; `apply_delta` and `save` take it alone).

use std::path::PathBuf;
use std::ptr::NonNull;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Int32Type, Int8Type, UInt64Type, UInt8Type};
use arrow_array::{
    Array, ArrayRef, Date32Array, DictionaryArray, Int32Array, Int8Array, LargeStringArray,
    ListArray, StringArray, StructArray, UInt64Array, UInt8Array,
};
use arrow_buffer::{BooleanBuffer, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::{DataType, Field, Fields};
use jukicore_core::index::{
    Builder, Found, Gathered, Hit, Index, Input, Looked, Offsets, Queries, Query, RetiredCodes,
    Rows, Shared, StrCol, TextItem, TextOffsets, Texts, NO_ROW,
};
use jukicore_core::normalize::MatchKeys;
use jukicore_core::CoreError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;

use crate::arrow::{import_array, to_pyarrow_batch};
use crate::error::Result;

/// The match keys of `jukicore_core::normalize` (names and addresses).
const KEYS: MatchKeys = MatchKeys;

fn invalid(m: String) -> CoreError {
    CoreError::Invalid(m)
}

fn no_nulls(a: &ArrayRef, name: &str) -> std::result::Result<(), CoreError> {
    if a.null_count() > 0 {
        return Err(invalid(format!("column {name} holds nulls")));
    }
    Ok(())
}

fn strcol<'a>(a: &'a ArrayRef, name: &str) -> std::result::Result<StrCol<'a>, CoreError> {
    let validity = a.nulls().map(|n| (n.validity(), n.offset()));
    Ok(match a.data_type() {
        DataType::Utf8 => {
            let s = a.as_string::<i32>();
            StrCol {
                data: s.values().as_slice(),
                offsets: Offsets::I32(s.value_offsets()),
                validity,
            }
        }
        DataType::LargeUtf8 => {
            let s = a.as_string::<i64>();
            StrCol {
                data: s.values().as_slice(),
                offsets: Offsets::I64(s.value_offsets()),
                validity,
            }
        }
        other => {
            return Err(invalid(format!(
                "column {name} must be string or large_string, not {other}"
            )))
        }
    })
}

fn codes<'a>(a: &'a ArrayRef, name: &str) -> std::result::Result<&'a [u64], CoreError> {
    no_nulls(a, name)?;
    match a.data_type() {
        DataType::UInt64 => Ok(a.as_primitive::<UInt64Type>().values()),
        other => Err(invalid(format!(
            "column {name} must be uint64, not {other}"
        ))),
    }
}

fn dates<'a>(a: &'a ArrayRef, name: &str) -> std::result::Result<&'a [i32], CoreError> {
    no_nulls(a, name)?;
    match a.data_type() {
        DataType::Date32 => Ok(a.as_primitive::<Date32Type>().values()),
        DataType::Int32 => Ok(a.as_primitive::<Int32Type>().values()),
        other => Err(invalid(format!(
            "column {name} must be date32 (or int32 days), not {other}"
        ))),
    }
}

fn int8s<'a>(a: &'a ArrayRef, name: &str) -> std::result::Result<&'a [i8], CoreError> {
    no_nulls(a, name)?;
    match a.data_type() {
        DataType::Int8 => Ok(a.as_primitive::<Int8Type>().values()),
        other => Err(invalid(format!("column {name} must be int8, not {other}"))),
    }
}

fn uint8s<'a>(a: &'a ArrayRef, name: &str) -> std::result::Result<&'a [u8], CoreError> {
    no_nulls(a, name)?;
    match a.data_type() {
        DataType::UInt8 => Ok(a.as_primitive::<UInt8Type>().values()),
        other => Err(invalid(format!(
            "column {name} must be uint8 (0 resident, 1 removed), not {other}"
        ))),
    }
}

/// The ten row columns, imported.
struct RowArrays {
    a: [ArrayRef; 10],
}

const ROW_COLUMNS: [&str; 10] = [
    "code",
    "family_name",
    "given_name",
    "address",
    "lg_code",
    "change_reason",
    "birth_date",
    "sex",
    "status",
    "change_date",
];

impl RowArrays {
    fn import(objs: [&Bound<'_, PyAny>; 10]) -> Result<Self> {
        let mut a = Vec::with_capacity(10);
        for o in objs {
            a.push(import_array(o)?);
        }
        Ok(RowArrays {
            a: a.try_into().map_err(|_| invalid("ten columns".into()))?,
        })
    }
    fn rows(&self) -> std::result::Result<Rows<'_>, CoreError> {
        let [c, f, g, ad, l, r, b, s, st, ch] = &self.a;
        for (i, x) in [f, g, ad, l, r].into_iter().enumerate() {
            no_nulls(x, ROW_COLUMNS[i + 1])?;
        }
        Ok(Rows {
            code: codes(c, "code")?,
            family_name: strcol(f, "family_name")?,
            given_name: strcol(g, "given_name")?,
            address: strcol(ad, "address")?,
            lg_code: strcol(l, "lg_code")?,
            change_reason: strcol(r, "change_reason")?,
            birth_date: dates(b, "birth_date")?,
            sex: int8s(s, "sex")?,
            status: uint8s(st, "status")?,
            change_date: dates(ch, "change_date")?,
        })
    }
}

struct RetiredArrays([ArrayRef; 3]);

impl RetiredArrays {
    fn import(
        old: Option<&Bound<'_, PyAny>>,
        new: Option<&Bound<'_, PyAny>>,
        on: Option<&Bound<'_, PyAny>>,
    ) -> Result<Self> {
        let get = |o: Option<&Bound<'_, PyAny>>, empty: ArrayRef| -> Result<ArrayRef> {
            o.map_or(Ok(empty), import_array)
        };
        Ok(RetiredArrays([
            get(old, Arc::new(UInt64Array::from(Vec::<u64>::new())))?,
            get(new, Arc::new(UInt64Array::from(Vec::<u64>::new())))?,
            get(on, Arc::new(Date32Array::from(Vec::<i32>::new())))?,
        ]))
    }
    fn retired(&self) -> std::result::Result<RetiredCodes<'_>, CoreError> {
        let [o, n, d] = &self.0;
        Ok(RetiredCodes {
            old: codes(o, "retired_old")?,
            new: codes(n, "retired_new")?,
            retired_on: dates(d, "retired_on")?,
        })
    }
}

fn texts(t: Texts, nulls: Option<NullBuffer>) -> ArrayRef {
    let values = Buffer::from_vec(t.data);
    // SAFETY: `Index::gather` guarantees its texts: offsets from 0, monotonic,
    // ending at the data's length, every value UTF-8 (dictionary entries are
    // checked when built and opened, and an address splits at an ASCII or
    // fullwidth digit, a character boundary).
    match t.offsets {
        TextOffsets::I32(o) => Arc::new(unsafe {
            StringArray::new_unchecked(
                OffsetBuffer::new_unchecked(ScalarBuffer::from(o)),
                values,
                nulls,
            )
        }),
        TextOffsets::I64(o) => Arc::new(unsafe {
            LargeStringArray::new_unchecked(
                OffsetBuffer::new_unchecked(ScalarBuffer::from(o)),
                values,
                nulls,
            )
        }),
    }
}

/// The item columns of gathered rows (null where a row is absent).
fn item_columns(g: Gathered) -> std::result::Result<Vec<(&'static str, ArrayRef)>, CoreError> {
    let nulls = if g.present.iter().all(|&p| p) {
        None
    } else {
        Some(NullBuffer::from(g.present.clone()))
    };
    let date = |v: Vec<i32>| -> ArrayRef {
        Arc::new(Date32Array::new(ScalarBuffer::from(v), nulls.clone()))
    };
    Ok(vec![
        (
            "code",
            Arc::new(UInt64Array::new(ScalarBuffer::from(g.code), nulls.clone())) as ArrayRef,
        ),
        ("family_name", texts(g.family_name, nulls.clone())),
        ("given_name", texts(g.given_name, nulls.clone())),
        ("birth_date", date(g.birth_date)),
        (
            "sex",
            Arc::new(Int8Array::new(ScalarBuffer::from(g.sex), nulls.clone())),
        ),
        ("address", texts(g.address, nulls.clone())),
        ("lg_code", texts(g.lg_code, nulls.clone())),
        (
            "status",
            Arc::new(UInt8Array::new(ScalarBuffer::from(g.status), nulls.clone())),
        ),
        ("change_date", date(g.change_date)),
        ("change_reason", texts(g.change_reason, nulls.clone())),
    ])
}

/// Bytes of the index as an Arrow buffer, not copied: the buffer keeps
/// their owner (the mapped file or the index's vector) alive.
fn shared_buffer<T>(s: &Shared<T>) -> Buffer {
    let bytes = std::mem::size_of_val(s.as_slice());
    match NonNull::new(s.as_slice().as_ptr() as *mut u8) {
        // SAFETY: the slice is valid and unchanged for as long as its owner
        // lives (`Shared`), and the buffer holds the owner.
        Some(ptr) => unsafe {
            Buffer::from_custom_allocation(ptr, bytes, Arc::new(s.owner.clone()))
        },
        None => Buffer::from_vec(Vec::<u8>::new()),
    }
}

/// A dictionary's entries as `large_string` values, not copied.
fn dict_array((bytes, offs): &(Shared<u8>, Shared<u64>)) -> ArrayRef {
    let n = offs.as_slice().len();
    let offsets = ScalarBuffer::<i64>::new(shared_buffer(offs), 0, n);
    // SAFETY: a dictionary's offsets are monotonic within its bytes (checked
    // when built or opened, far below 2^63) and its entries UTF-8.
    Arc::new(unsafe {
        LargeStringArray::new_unchecked(
            OffsetBuffer::new_unchecked(offsets),
            shared_buffer(bytes),
            None,
        )
    })
}

/// The columns of `lookup`'s answer: texts of the dictionaries as
/// `dictionary<int32, large_string>` over the index's own entries (nothing
/// per row copied), the address as `string` (`large_string` past 2 GiB).
fn looked_columns(
    l: Looked,
    dicts: [(Shared<u8>, Shared<u64>); 4],
    code: ArrayRef,
) -> std::result::Result<Vec<(&'static str, ArrayRef)>, CoreError> {
    let n = l.hit.len();
    let hit_kind = &l.hit;
    let nulls = (l.found < n)
        .then(|| NullBuffer::new(BooleanBuffer::collect_bool(n, |i| hit_kind[i] == 0)));
    let retired_nulls = if l.retired == 0 {
        Some(NullBuffer::new_null(n))
    } else if l.retired == n {
        None
    } else {
        Some(NullBuffer::new(BooleanBuffer::collect_bool(n, |i| {
            hit_kind[i] == 1
        })))
    };
    let [fam, giv, lg, reason] = dicts.map(|d| dict_array(&d));
    let dict = |keys: Vec<i32>, values: ArrayRef| -> ArrayRef {
        let keys = Int32Array::new(ScalarBuffer::from(keys), nulls.clone());
        // SAFETY: every non-null key is an id of the dictionary it is paired
        // with (`lookup_items` reads them from the index's records, checked
        // within their dictionaries when built or opened); null keys are 0.
        Arc::new(unsafe { DictionaryArray::<Int32Type>::new_unchecked(keys, values) })
    };
    let date = |v: Vec<i32>, nulls: Option<NullBuffer>| -> ArrayRef {
        Arc::new(Date32Array::new(ScalarBuffer::from(v), nulls))
    };
    let address = texts(l.address, nulls.clone());
    let hit = DictionaryArray::<Int8Type>::try_new(
        Int8Array::from(l.hit),
        Arc::new(StringArray::from(vec!["found", "retired", "not_found"])),
    )
    .map_err(|e| invalid(format!("cannot build the hit column: {e}")))?;
    Ok(vec![
        ("hit", Arc::new(hit) as ArrayRef),
        // the queried codes are the input column itself (uint64, no nulls)
        ("code", code),
        ("family_name", dict(l.family_name, fam)),
        ("given_name", dict(l.given_name, giv)),
        ("birth_date", date(l.birth_date, nulls.clone())),
        (
            "sex",
            Arc::new(Int8Array::new(ScalarBuffer::from(l.sex), nulls.clone())),
        ),
        ("address", address),
        ("lg_code", dict(l.lg_code, lg)),
        (
            "status",
            Arc::new(UInt8Array::new(ScalarBuffer::from(l.status), nulls.clone())),
        ),
        ("change_date", date(l.change_date, nulls.clone())),
        ("change_reason", dict(l.change_reason, reason)),
        (
            "new_code",
            Arc::new(UInt64Array::new(
                ScalarBuffer::from(l.new_code),
                retired_nulls.clone(),
            )),
        ),
        ("retired_on", date(l.retired_on, retired_nulls)),
    ])
}

fn batch<'py>(py: Python<'py>, cols: Vec<(&'static str, ArrayRef)>) -> Result<Bound<'py, PyAny>> {
    let fields: Fields = cols
        .iter()
        .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
        .collect();
    let arrays: Vec<ArrayRef> = cols.into_iter().map(|(_, a)| a).collect();
    let st = StructArray::try_new(fields, arrays, None)
        .map_err(|e| invalid(format!("cannot build a record batch: {e}")))?;
    to_pyarrow_batch(py, Arc::new(st))
}

static FROM_ORDINAL: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Days since 1970-01-01 as a `datetime.date`.
fn date<'py>(py: Python<'py>, days: i32) -> Result<Bound<'py, PyAny>> {
    let from_ordinal = FROM_ORDINAL.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
        Ok(py
            .import("datetime")?
            .getattr("date")?
            .getattr("fromordinal")?
            .unbind())
    })?;
    Ok(from_ordinal.bind(py).call1((i64::from(days) + 719_163,))?)
}

/// A code given as a Python int or a string of digits (a scalar lookup).
fn scalar_code(obj: &Bound<'_, PyAny>) -> Option<std::result::Result<u64, CoreError>> {
    if let Ok(c) = obj.extract::<u64>() {
        return Some(Ok(c));
    }
    let s: String = obj.extract().ok()?;
    Some(
        s.parse::<u64>()
            .ok()
            .filter(|_| !s.is_empty() && s.len() <= 11 && s.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| invalid(format!("{s:?} is not a resident code (11 digits)"))),
    )
}

fn utf8(values: Vec<&'static str>) -> ArrayRef {
    Arc::new(StringArray::from(values))
}

/// A birth date given as days since 1970-01-01 (int) or a `datetime.date`.
fn days(obj: &Bound<'_, PyAny>) -> Result<i32> {
    if let Ok(d) = obj.extract::<i32>() {
        return Ok(d);
    }
    if obj.hasattr("toordinal")? {
        let ordinal: i64 = obj.call_method0("toordinal")?.extract()?;
        return Ok((ordinal - 719_163) as i32);
    }
    Err(invalid("a birth date is a datetime.date or days since 1970-01-01".into()).into())
}

/// The identity lookup index (see `jukicore_core::index`).
#[pyclass(module = "jukicore._jukicore", frozen)]
struct IdentityIndexCore {
    inner: RwLock<Index>,
}

fn read(l: &RwLock<Index>) -> std::result::Result<RwLockReadGuard<'_, Index>, CoreError> {
    l.read().map_err(|_| {
        invalid("this index is unusable: an earlier call failed inside the Rust core".into())
    })
}

fn write(l: &RwLock<Index>) -> std::result::Result<RwLockWriteGuard<'_, Index>, CoreError> {
    l.write().map_err(|_| {
        invalid("this index is unusable: an earlier call failed inside the Rust core".into())
    })
}

impl IdentityIndexCore {
    fn lookup_scalar<'py>(&self, py: Python<'py>, code: u64) -> Result<Bound<'py, PyAny>> {
        let (hit, g) = {
            let idx = read(&self.inner)?;
            let hit = idx.lookup(&[code])[0];
            let row = match hit {
                Hit::Found(r) => r,
                _ => NO_ROW,
            };
            (hit, idx.gather(&[row]))
        };
        let d = PyDict::new(py);
        let found = matches!(hit, Hit::Found(_));
        d.set_item(
            "hit",
            match hit {
                Hit::Found(_) => "found",
                Hit::Retired { .. } => "retired",
                Hit::NotFound => "not_found",
            },
        )?;
        d.set_item("code", code)?;
        let none = py.None();
        for (name, t) in [
            ("family_name", &g.family_name),
            ("given_name", &g.given_name),
        ] {
            if found {
                d.set_item(name, t.value(0))?
            } else {
                d.set_item(name, &none)?
            }
        }
        if found {
            d.set_item("birth_date", date(py, g.birth_date[0])?)?;
            d.set_item("sex", g.sex[0])?;
            d.set_item("address", g.address.value(0))?;
            d.set_item("lg_code", g.lg_code.value(0))?;
            d.set_item("status", g.status[0])?;
            d.set_item("change_date", date(py, g.change_date[0])?)?;
            d.set_item("change_reason", g.change_reason.value(0))?;
        } else {
            for name in [
                "birth_date",
                "sex",
                "address",
                "lg_code",
                "status",
                "change_date",
                "change_reason",
            ] {
                d.set_item(name, &none)?;
            }
        }
        match hit {
            Hit::Retired { new, on } => {
                d.set_item("new_code", new)?;
                d.set_item("retired_on", date(py, on)?)?;
            }
            _ => {
                d.set_item("new_code", &none)?;
                d.set_item("retired_on", &none)?;
            }
        }
        Ok(d.into_any())
    }
}

#[pymethods]
impl IdentityIndexCore {
    /// Build from columns (one row per resident code) and the retired codes.
    #[staticmethod]
    #[pyo3(signature = (code, family_name, given_name, address, lg_code, change_reason,
                        birth_date, sex, status, change_date, *, retired_old = None,
                        retired_new = None, retired_on = None, store_id, mark))]
    #[allow(clippy::too_many_arguments)]
    fn build(
        py: Python<'_>,
        code: &Bound<'_, PyAny>,
        family_name: &Bound<'_, PyAny>,
        given_name: &Bound<'_, PyAny>,
        address: &Bound<'_, PyAny>,
        lg_code: &Bound<'_, PyAny>,
        change_reason: &Bound<'_, PyAny>,
        birth_date: &Bound<'_, PyAny>,
        sex: &Bound<'_, PyAny>,
        status: &Bound<'_, PyAny>,
        change_date: &Bound<'_, PyAny>,
        retired_old: Option<&Bound<'_, PyAny>>,
        retired_new: Option<&Bound<'_, PyAny>>,
        retired_on: Option<&Bound<'_, PyAny>>,
        store_id: &str,
        mark: u64,
    ) -> Result<Self> {
        let rows = RowArrays::import([
            code,
            family_name,
            given_name,
            address,
            lg_code,
            change_reason,
            birth_date,
            sex,
            status,
            change_date,
        ])?;
        let retired = RetiredArrays::import(retired_old, retired_new, retired_on)?;
        let index = py.detach(|| -> std::result::Result<Index, CoreError> {
            let input = Input {
                rows: rows.rows()?,
                retired: retired.retired()?,
                store_id,
                mark,
            };
            Index::build(&input, &KEYS)
        })?;
        Ok(IdentityIndexCore {
            inner: RwLock::new(index),
        })
    }

    /// Build from batches of rows: an iterable of tuples of the ten columns of
    /// `build`, in its order. Each batch's texts become dictionary ids as it
    /// comes (with the GIL released, so that the iterable's producer, a reader
    /// thread, goes on meanwhile): the index `build` gives for all the rows at
    /// once, without all their texts held at once. A refused batch refuses
    /// the build (its rows numbered from the first row of all batches).
    #[staticmethod]
    #[pyo3(signature = (pieces, *, retired_old = None, retired_new = None, retired_on = None,
                        store_id, mark))]
    fn build_from_pieces(
        py: Python<'_>,
        pieces: &Bound<'_, PyAny>,
        retired_old: Option<&Bound<'_, PyAny>>,
        retired_new: Option<&Bound<'_, PyAny>>,
        retired_on: Option<&Bound<'_, PyAny>>,
        store_id: &str,
        mark: u64,
    ) -> Result<Self> {
        let retired = RetiredArrays::import(retired_old, retired_new, retired_on)?;
        let mut builder = Builder::new();
        for piece in pieces.try_iter()? {
            let cols: Vec<Bound<'_, PyAny>> = piece?.extract()?;
            let Ok(cols) = <[Bound<'_, PyAny>; 10]>::try_from(cols) else {
                return Err(invalid(format!(
                    "each piece is a tuple of the ten columns {ROW_COLUMNS:?}"
                ))
                .into());
            };
            let rows = RowArrays::import(cols.each_ref())?;
            drop(cols);
            let b = &mut builder;
            py.detach(|| -> std::result::Result<(), CoreError> { b.push(&rows.rows()?) })?;
        }
        let index = py.detach(|| -> std::result::Result<Index, CoreError> {
            builder.finish(&retired.retired()?, store_id, mark, &KEYS)
        })?;
        Ok(IdentityIndexCore {
            inner: RwLock::new(index),
        })
    }

    /// Open a saved index (memory-mapped; every checksum verified).
    #[staticmethod]
    fn open(py: Python<'_>, path: PathBuf) -> Result<Self> {
        let index = py.detach(|| Index::open(&path))?;
        Ok(IdentityIndexCore {
            inner: RwLock::new(index),
        })
    }

    /// Save atomically; the overlay is folded in first.
    fn save(&self, py: Python<'_>, path: PathBuf) -> Result<()> {
        let inner = &self.inner;
        Ok(py.detach(|| write(inner)?.save(&path))?)
    }

    /// One row per code: `hit` ("found", "retired", "not_found"), the items
    /// (null unless found), `new_code` and `retired_on` (null unless retired).
    ///
    /// A scalar code (an int or a string of digits) is answered in kind: a
    /// dict of the same fields (the dates as `datetime.date`), without an
    /// Arrow round trip.
    fn lookup<'py>(
        &self,
        py: Python<'py>,
        codes_in: &Bound<'py, PyAny>,
    ) -> Result<Bound<'py, PyAny>> {
        if let Some(code) = scalar_code(codes_in) {
            return self.lookup_scalar(py, code?);
        }
        let arr = import_array(codes_in)?;
        let inner = &self.inner;
        let cols = py.detach(|| -> std::result::Result<_, CoreError> {
            let c = codes(&arr, "codes")?;
            let idx = read(inner)?;
            let looked = idx.lookup_items(c);
            let dicts = [
                TextItem::FamilyName,
                TextItem::GivenName,
                TextItem::LgCode,
                TextItem::ChangeReason,
            ]
            .map(|t| idx.dict_values(t));
            drop(idx);
            looked_columns(looked, dicts, arr.clone())
        })?;
        batch(py, cols)
    }

    /// The rows matching every item given (keys compared exactly).
    #[pyo3(signature = (family_name, given_name, birth_date, sex = None, address = None))]
    fn search<'py>(
        &self,
        py: Python<'py>,
        family_name: &str,
        given_name: &str,
        birth_date: &Bound<'py, PyAny>,
        sex: Option<i8>,
        address: Option<&str>,
    ) -> Result<Bound<'py, PyAny>> {
        let birth = days(birth_date)?;
        let inner = &self.inner;
        let g = py.detach(|| -> std::result::Result<_, CoreError> {
            let idx = read(inner)?;
            let q = Query {
                family_name,
                given_name,
                birth_date: birth,
                sex,
                address,
            };
            let rows = idx.search(&q, &KEYS);
            Ok(idx.gather(&rows))
        })?;
        batch(py, item_columns(g)?)
    }

    /// A search per row of the columns (`sex` 0 or null, a null address: not
    /// given): `status` ("match", "ambiguous", "not_found") and `codes` (the
    /// matching resident codes).
    #[pyo3(signature = (family_name, given_name, birth_date, sex = None, address = None))]
    fn search_many<'py>(
        &self,
        py: Python<'py>,
        family_name: &Bound<'py, PyAny>,
        given_name: &Bound<'py, PyAny>,
        birth_date: &Bound<'py, PyAny>,
        sex: Option<&Bound<'py, PyAny>>,
        address: Option<&Bound<'py, PyAny>>,
    ) -> Result<Bound<'py, PyAny>> {
        let f = import_array(family_name)?;
        let g = import_array(given_name)?;
        let b = import_array(birth_date)?;
        let s = sex.map(import_array).transpose()?;
        let a = address.map(import_array).transpose()?;
        let inner = &self.inner;
        let (found, codes_out) = py.detach(|| -> std::result::Result<_, CoreError> {
            // a null sex means "not given", as 0 does
            let sex_vals: Option<Vec<i8>> = match &s {
                Some(s) => {
                    let v = match s.data_type() {
                        DataType::Int8 => s.as_primitive::<Int8Type>(),
                        other => {
                            return Err(invalid(format!("column sex must be int8, not {other}")))
                        }
                    };
                    Some(
                        (0..v.len())
                            .map(|i| if v.is_null(i) { 0 } else { v.value(i) })
                            .collect(),
                    )
                }
                None => None,
            };
            let q = Queries {
                family_name: strcol(&f, "family_name")?,
                given_name: strcol(&g, "given_name")?,
                birth_date: dates(&b, "birth_date")?,
                sex: sex_vals.as_deref(),
                address: a.as_ref().map(|a| strcol(a, "address")).transpose()?,
            };
            let idx = read(inner)?;
            let found = idx.search_many(&q, &KEYS)?;
            let mut all_rows = Vec::new();
            let mut offsets = vec![0i32];
            for f in &found {
                match f {
                    Found::Match(r) => all_rows.push(*r),
                    Found::Ambiguous(rs) => all_rows.extend_from_slice(rs),
                    Found::NotFound => {}
                }
                offsets.push(all_rows.len() as i32);
            }
            let codes_out = idx.gather(&all_rows).code;
            Ok((found, (codes_out, offsets)))
        })?;
        let status = utf8(
            found
                .iter()
                .map(|f| match f {
                    Found::Match(_) => "match",
                    Found::Ambiguous(_) => "ambiguous",
                    Found::NotFound => "not_found",
                })
                .collect(),
        );
        let (values, offsets) = codes_out;
        let item = Arc::new(Field::new("item", DataType::UInt64, false));
        let list = ListArray::try_new(
            item,
            OffsetBuffer::new(ScalarBuffer::from(offsets)),
            Arc::new(UInt64Array::from(values)),
            None,
        )
        .map_err(|e| invalid(format!("cannot build the codes column: {e}")))?;
        batch(py, vec![("status", status), ("codes", Arc::new(list))])
    }

    /// Apply a packet's changes (rows replacing or adding their codes,
    /// removed codes, retired codes) in the overlay; the index then reflects `mark`.
    #[pyo3(signature = (code, family_name, given_name, address, lg_code, change_reason,
                        birth_date, sex, status, change_date, *, removed = None,
                        retired_old = None, retired_new = None, retired_on = None, mark,
                        store_id = None))]
    #[allow(clippy::too_many_arguments)]
    fn apply_delta(
        &self,
        py: Python<'_>,
        code: &Bound<'_, PyAny>,
        family_name: &Bound<'_, PyAny>,
        given_name: &Bound<'_, PyAny>,
        address: &Bound<'_, PyAny>,
        lg_code: &Bound<'_, PyAny>,
        change_reason: &Bound<'_, PyAny>,
        birth_date: &Bound<'_, PyAny>,
        sex: &Bound<'_, PyAny>,
        status: &Bound<'_, PyAny>,
        change_date: &Bound<'_, PyAny>,
        removed: Option<&Bound<'_, PyAny>>,
        retired_old: Option<&Bound<'_, PyAny>>,
        retired_new: Option<&Bound<'_, PyAny>>,
        retired_on: Option<&Bound<'_, PyAny>>,
        mark: u64,
        store_id: Option<&str>,
    ) -> Result<()> {
        let rows = RowArrays::import([
            code,
            family_name,
            given_name,
            address,
            lg_code,
            change_reason,
            birth_date,
            sex,
            status,
            change_date,
        ])?;
        let retired = RetiredArrays::import(retired_old, retired_new, retired_on)?;
        let removed: ArrayRef = match removed {
            Some(r) => import_array(r)?,
            None => Arc::new(UInt64Array::from(Vec::<u64>::new())),
        };
        let inner = &self.inner;
        Ok(py.detach(|| -> std::result::Result<(), CoreError> {
            let r = rows.rows()?;
            let ret = retired.retired()?;
            let rem = codes(&removed, "removed")?;
            let mut idx = write(inner)?;
            idx.apply_delta(&r, rem, &ret, mark, &KEYS)?;
            match store_id {
                Some(id) => idx.set_store_id(id),
                None => Ok(()),
            }
        })?)
    }

    #[getter]
    fn mark(&self) -> Result<u64> {
        Ok(read(&self.inner)?.mark())
    }

    #[getter]
    fn store_id(&self) -> Result<String> {
        Ok(read(&self.inner)?.store_id().to_owned())
    }

    fn __len__(&self) -> Result<usize> {
        Ok(read(&self.inner)?.len())
    }

    fn memory_bytes(&self) -> Result<u64> {
        Ok(read(&self.inner)?.memory_bytes())
    }

    fn overlay_len(&self) -> Result<usize> {
        Ok(read(&self.inner)?.overlay_len())
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<IdentityIndexCore>()
}
