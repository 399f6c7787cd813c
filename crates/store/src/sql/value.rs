//! Parameters and result rows in one form for both backends.

use crate::{Result, StoreError};

/// A parameter of a statement, or a column of a result row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Int(i64),
    Bool(bool),
    Text(String),
    Bytes(Vec<u8>),
    /// A list of integers, for `= ANY($n)` (PostgreSQL) or `json_each($n)` (SQLite).
    Ints(Vec<i64>),
    /// A list of texts, the same way.
    Texts(Vec<String>),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Value::Int(i64::from(v))
    }
}
impl From<u64> for Value {
    /// Counts and sizes beyond `i64::MAX` cannot occur; they saturate.
    fn from(v: u64) -> Self {
        Value::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}
impl From<usize> for Value {
    fn from(v: usize) -> Self {
        Value::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Text(v.clone())
    }
}
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Bytes(v)
    }
}
impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Self {
        Value::Bytes(v.to_vec())
    }
}
impl From<Vec<i64>> for Value {
    fn from(v: Vec<i64>) -> Self {
        Value::Ints(v)
    }
}
impl From<Vec<String>> for Value {
    fn from(v: Vec<String>) -> Self {
        Value::Texts(v)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// Builds a parameter list: `params![a, b, c]`.
macro_rules! params {
    ($($v:expr),* $(,)?) => {
        &[$($crate::sql::Value::from($v)),*][..]
    };
}
pub(crate) use params;

/// One result row; getters take columns by index and say clearly when the
/// stored type is not the one expected (a damaged or foreign database).
#[derive(Debug, Default)]
pub(crate) struct Row(pub(crate) Vec<Value>);

impl Row {
    fn at(&self, i: usize) -> Result<&Value> {
        self.0
            .get(i)
            .ok_or_else(|| StoreError::Backend(format!("result has no column {i}")))
    }

    fn mismatch(&self, i: usize, wanted: &str) -> StoreError {
        StoreError::Corrupt(format!(
            "column {i} holds {:?}, not {wanted}",
            self.0.get(i)
        ))
    }

    /// An integer column (booleans count as 0 and 1).
    pub(crate) fn int(&self, i: usize) -> Result<i64> {
        match self.at(i)? {
            Value::Int(v) => Ok(*v),
            Value::Bool(b) => Ok(i64::from(*b)),
            _ => Err(self.mismatch(i, "an integer")),
        }
    }

    /// An integer column that may be NULL.
    pub(crate) fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        match self.at(i)? {
            Value::Null => Ok(None),
            _ => self.int(i).map(Some),
        }
    }

    /// An unsigned integer column (negative values read as 0).
    pub(crate) fn uint(&self, i: usize) -> Result<u64> {
        Ok(self.int(i)?.max(0) as u64)
    }

    /// A 32-bit unsigned column (UIDs, flags).
    pub(crate) fn u32(&self, i: usize) -> Result<u32> {
        u32::try_from(self.int(i)?).map_err(|_| self.mismatch(i, "a 32-bit number"))
    }

    /// A boolean column (SQLite keeps booleans as integers).
    pub(crate) fn flag(&self, i: usize) -> Result<bool> {
        match self.at(i)? {
            Value::Bool(b) => Ok(*b),
            Value::Int(v) => Ok(*v != 0),
            _ => Err(self.mismatch(i, "a boolean")),
        }
    }

    /// A boolean column that may be NULL.
    pub(crate) fn opt_flag(&self, i: usize) -> Result<Option<bool>> {
        match self.at(i)? {
            Value::Null => Ok(None),
            _ => self.flag(i).map(Some),
        }
    }

    /// A text column, taken out of the row.
    pub(crate) fn text(&mut self, i: usize) -> Result<String> {
        match self.0.get_mut(i) {
            Some(Value::Text(s)) => Ok(std::mem::take(s)),
            _ => Err(self.mismatch(i, "text")),
        }
    }

    /// A text column that may be NULL, taken out of the row.
    pub(crate) fn opt_text(&mut self, i: usize) -> Result<Option<String>> {
        match self.at(i)? {
            Value::Null => Ok(None),
            _ => self.text(i).map(Some),
        }
    }

    /// A text column, borrowed.
    pub(crate) fn str(&self, i: usize) -> Result<&str> {
        match self.at(i)? {
            Value::Text(s) => Ok(s),
            _ => Err(self.mismatch(i, "text")),
        }
    }

    /// A binary column, taken out of the row.
    pub(crate) fn bytes(&mut self, i: usize) -> Result<Vec<u8>> {
        match self.0.get_mut(i) {
            Some(Value::Bytes(b)) => Ok(std::mem::take(b)),
            // SQLite hands back what was stored; text written as bytes reads as text.
            Some(Value::Text(s)) => Ok(std::mem::take(s).into_bytes()),
            _ => Err(self.mismatch(i, "bytes")),
        }
    }

    /// A binary column that may be NULL, taken out of the row.
    pub(crate) fn opt_bytes(&mut self, i: usize) -> Result<Option<Vec<u8>>> {
        match self.at(i)? {
            Value::Null => Ok(None),
            _ => self.bytes(i).map(Some),
        }
    }
}
