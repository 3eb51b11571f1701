//! Frozen Python classes over JSON values: the one way every nestcore result reaches Python.
//!
//! A result class holds the serde JSON of its Rust struct (the JSON contract, not a copy of the
//! Rust layout) and reads its attributes from it on access. That gives, from one definition:
//! typed read-only attributes, `to_dict()` / `to_json()` exactly as the CLI prints them, value
//! equality and hashing, pickling through JSON, and a dataclass-style `__repr__`.
//!
//! A new result type (a nested plan, a guest CPU configuration) is one [`value_class!`] listing its
//! fields with their [`Shape`], a line in `_nestcore` and in `_from_json` (lib.rs), and its stub in
//! `_nestcore.pyi`; the stub test catches a missing piece.

use std::hash::{Hash, Hasher};

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};
use serde_json::Value;

/// How one attribute's JSON value becomes a Python value.
pub(crate) trait Shape {
    /// The Python value of `v` (already validated by [`Shape::validate`]).
    fn to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>>;
    /// `repr()` of that Python value, without building it where that is cheaper.
    fn repr(py: Python<'_>, v: &Value) -> PyResult<String> {
        Ok(Self::to_py(py, v)?.repr()?.to_string())
    }
    /// Whether `v` has this shape; the error names the path (`cpu.family`) and what was expected.
    fn validate(v: &Value, path: &str) -> Result<(), String>;
}

fn mismatch(path: &str, expected: &str, v: &Value) -> String {
    let mut found = v.to_string();
    if found.len() > 60 {
        found.truncate(57);
        found.push_str("...");
    }
    format!("{path}: expected {expected}, found {found}")
}

fn wrong_type(v: &Value, expected: &str) -> PyErr {
    PyTypeError::new_err(mismatch("nestcore value", expected, v))
}

/// A JSON string: `str`.
pub(crate) struct Str;
/// A JSON integer: `int`.
pub(crate) struct Int;
/// A JSON boolean: `bool`.
pub(crate) struct Bool;
/// `null` or `T`: `T | None` (a missing key reads as `None`, so older pickles still load).
pub(crate) struct Opt<T>(std::marker::PhantomData<T>);
/// A JSON array of `T`: `list[T]` (a new list on every access, so the object stays immutable).
pub(crate) struct List<T>(std::marker::PhantomData<T>);
/// A JSON object of scalars (module parameters): `dict[str, bool | int | str]`.
pub(crate) struct ScalarMap;
/// A JSON array of `T`: `tuple[T, ...]` (the classes of plans and guest configurations, which
/// are immutable all the way down).
pub(crate) struct Tuple<T>(std::marker::PhantomData<T>);
/// A JSON array of two items: `tuple[A, B]` (a timeline entry, a command and its status).
pub(crate) struct Pair<A, B>(std::marker::PhantomData<(A, B)>);

impl Shape for Str {
    fn to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
        let s = v.as_str().ok_or_else(|| wrong_type(v, "a string"))?;
        Ok(PyString::new(py, s).into_any())
    }
    fn validate(v: &Value, path: &str) -> Result<(), String> {
        v.is_string()
            .then_some(())
            .ok_or_else(|| mismatch(path, "a string", v))
    }
}

impl Shape for Int {
    fn to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
        if let Some(n) = v.as_i64() {
            return Ok(n.into_pyobject(py)?.into_any());
        }
        let n = v.as_u64().ok_or_else(|| wrong_type(v, "an integer"))?;
        Ok(n.into_pyobject(py)?.into_any())
    }
    fn repr(_py: Python<'_>, v: &Value) -> PyResult<String> {
        Ok(v.to_string())
    }
    fn validate(v: &Value, path: &str) -> Result<(), String> {
        (v.is_i64() || v.is_u64())
            .then_some(())
            .ok_or_else(|| mismatch(path, "an integer", v))
    }
}

impl Shape for Bool {
    fn to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
        let b = v.as_bool().ok_or_else(|| wrong_type(v, "a boolean"))?;
        Ok(pyo3::types::PyBool::new(py, b).to_owned().into_any())
    }
    fn repr(_py: Python<'_>, v: &Value) -> PyResult<String> {
        Ok(if v.as_bool() == Some(true) {
            "True"
        } else {
            "False"
        }
        .to_string())
    }
    fn validate(v: &Value, path: &str) -> Result<(), String> {
        v.is_boolean()
            .then_some(())
            .ok_or_else(|| mismatch(path, "a boolean", v))
    }
}

impl<T: Shape> Shape for Opt<T> {
    fn to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
        if v.is_null() {
            Ok(py.None().into_bound(py))
        } else {
            T::to_py(py, v)
        }
    }
    fn repr(py: Python<'_>, v: &Value) -> PyResult<String> {
        if v.is_null() {
            Ok("None".to_string())
        } else {
            T::repr(py, v)
        }
    }
    fn validate(v: &Value, path: &str) -> Result<(), String> {
        if v.is_null() {
            Ok(())
        } else {
            T::validate(v, path)
        }
    }
}

impl<T: Shape> Shape for List<T> {
    fn to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
        let items = v.as_array().ok_or_else(|| wrong_type(v, "an array"))?;
        let list = PyList::empty(py);
        for item in items {
            list.append(T::to_py(py, item)?)?;
        }
        Ok(list.into_any())
    }
    fn repr(py: Python<'_>, v: &Value) -> PyResult<String> {
        let items = v.as_array().ok_or_else(|| wrong_type(v, "an array"))?;
        let parts = items
            .iter()
            .map(|i| T::repr(py, i))
            .collect::<PyResult<Vec<_>>>()?;
        Ok(format!("[{}]", parts.join(", ")))
    }
    fn validate(v: &Value, path: &str) -> Result<(), String> {
        let items = v.as_array().ok_or_else(|| mismatch(path, "an array", v))?;
        for (i, item) in items.iter().enumerate() {
            T::validate(item, &format!("{path}[{i}]"))?;
        }
        Ok(())
    }
}

impl<T: Shape> Shape for Tuple<T> {
    fn to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
        let items = v.as_array().ok_or_else(|| wrong_type(v, "an array"))?;
        let items = items
            .iter()
            .map(|i| T::to_py(py, i))
            .collect::<PyResult<Vec<_>>>()?;
        Ok(PyTuple::new(py, items)?.into_any())
    }
    fn validate(v: &Value, path: &str) -> Result<(), String> {
        List::<T>::validate(v, path)
    }
}

impl<A: Shape, B: Shape> Shape for Pair<A, B> {
    fn to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
        match v.as_array().map(Vec::as_slice) {
            Some([a, b]) => Ok(PyTuple::new(py, [A::to_py(py, a)?, B::to_py(py, b)?])?.into_any()),
            _ => Err(wrong_type(v, "an array of two items")),
        }
    }
    fn validate(v: &Value, path: &str) -> Result<(), String> {
        match v.as_array().map(Vec::as_slice) {
            Some([a, b]) => {
                A::validate(a, &format!("{path}[0]"))?;
                B::validate(b, &format!("{path}[1]"))
            }
            _ => Err(mismatch(path, "an array of two items", v)),
        }
    }
}

impl Shape for ScalarMap {
    fn to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
        json_to_py(py, v)
    }
    fn validate(v: &Value, path: &str) -> Result<(), String> {
        let map = v.as_object().ok_or_else(|| mismatch(path, "an object", v))?;
        for (k, x) in map {
            if !(x.is_boolean() || x.is_i64() || x.is_u64() || x.is_string()) {
                return Err(mismatch(
                    &format!("{path}.{k}"),
                    "a boolean, integer or string",
                    x,
                ));
            }
        }
        Ok(())
    }
}

/// `v` as plain Python data: dicts, lists, str, int, float, bool, None.
pub(crate) fn json_to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => pyo3::types::PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else {
                n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any()
            }
        }
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(a) => {
            let list = PyList::empty(py);
            for x in a {
                list.append(json_to_py(py, x)?)?;
            }
            list.into_any()
        }
        Value::Object(m) => {
            let dict = PyDict::new(py);
            for (k, x) in m {
                dict.set_item(k, json_to_py(py, x)?)?;
            }
            dict.into_any()
        }
    })
}

static NULL: Value = Value::Null;

/// The value of `key` in the object `v`, `null` when missing.
pub(crate) fn field<'a>(v: &'a Value, key: &str) -> &'a Value {
    v.get(key).unwrap_or(&NULL)
}

/// The JSON text as `to_json()` returns it: pretty-printed, like `nestcore check --json`.
pub(crate) fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// A hash consistent with equality (equal values have equal compact JSON: maps keep their order,
/// and both sides of an equality come from the same serializer).
pub(crate) fn hash_value(v: &Value) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    v.to_string().hash(&mut h);
    h.finish()
}

/// `nestcore._nestcore._from_json`, the reconstructor that `__reduce__` hands to pickle.
pub(crate) fn reconstructor(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    static FROM_JSON: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    FROM_JSON.import(py, "nestcore._nestcore", "_from_json")
}

/// Parses and validates the JSON of a pickled object.
pub(crate) fn parse_checked<S: Shape>(json: &str, what: &str) -> PyResult<Value> {
    let v: Value = serde_json::from_str(json)
        .map_err(|e| PyValueError::new_err(format!("Cannot parse {what} JSON: {e}")))?;
    S::validate(&v, what).map_err(|e| PyValueError::new_err(format!("Invalid {what}: {e}")))?;
    Ok(v)
}

/// Defines a frozen Python class over a JSON object with the given fields and their shapes, plus
/// optional extra methods (`methods { ... }`). See the module documentation.
macro_rules! value_class {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$fmeta:meta])* $field:ident : $shape:ty ),* $(,)?
        }
        $( renamed { $( $(#[$rmeta:meta])* $rfield:ident as $rkey:literal : $rshape:ty ),* $(,)? } )?
        $( methods { $($extra:tt)* } )?
    ) => {
        $(#[$meta])*
        #[pyclass(frozen, eq, module = "nestcore", skip_from_py_object)]
        #[derive(PartialEq)]
        pub(crate) struct $name {
            pub(crate) v: serde_json::Value,
        }

        impl $name {
            /// Wraps `v`, which must have this class's shape (the JSON of the Rust struct).
            #[allow(dead_code)]
            pub(crate) fn new(v: serde_json::Value) -> Self {
                $name { v }
            }
        }

        impl $crate::value::Shape for $name {
            fn to_py<'py>(
                py: pyo3::Python<'py>,
                v: &serde_json::Value,
            ) -> pyo3::PyResult<pyo3::Bound<'py, pyo3::PyAny>> {
                Ok(pyo3::Bound::new(py, $name { v: v.clone() })?.into_any())
            }
            #[allow(unused_mut, unused_variables)]
            fn repr(py: pyo3::Python<'_>, v: &serde_json::Value) -> pyo3::PyResult<String> {
                let mut parts: Vec<String> = Vec::new();
                $(
                    parts.push(format!(
                        "{}={}",
                        stringify!($field),
                        <$shape as $crate::value::Shape>::repr(py, $crate::value::field(v, stringify!($field)))?
                    ));
                )*
                $($(
                    parts.push(format!(
                        "{}={}",
                        $rkey,
                        <$rshape as $crate::value::Shape>::repr(py, $crate::value::field(v, $rkey))?
                    ));
                )*)?
                Ok(format!("{}({})", stringify!($name), parts.join(", ")))
            }
            #[allow(unused_variables)]
            fn validate(v: &serde_json::Value, path: &str) -> Result<(), String> {
                if !v.is_object() {
                    return Err(format!("{path}: expected an object, found {v}"));
                }
                $(
                    <$shape as $crate::value::Shape>::validate(
                        $crate::value::field(v, stringify!($field)),
                        &format!("{path}.{}", stringify!($field)),
                    )?;
                )*
                $($(
                    <$rshape as $crate::value::Shape>::validate(
                        $crate::value::field(v, $rkey),
                        &format!("{path}.{}", $rkey),
                    )?;
                )*)?
                Ok(())
            }
        }

        #[pymethods]
        impl $name {
            $(
                $(#[$fmeta])*
                // Named explicitly: pyo3 would drop a `get_` prefix (`get_msr_features`).
                #[getter($field)]
                fn $field<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
                    <$shape as $crate::value::Shape>::to_py(py, $crate::value::field(&self.v, stringify!($field)))
                }
            )*
            $($(
                $(#[$rmeta])*
                // A JSON key that is a Rust keyword (`type`).
                #[getter]
                #[pyo3(name = $rkey)]
                fn $rfield<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
                    <$rshape as $crate::value::Shape>::to_py(py, $crate::value::field(&self.v, $rkey))
                }
            )*)?

            /// The JSON form as plain Python data (dicts, lists, str, int, bool, None).
            fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
                $crate::value::json_to_py(py, &self.v)
            }

            /// The JSON form, pretty-printed like `nestcore check --json`.
            fn to_json(&self) -> String {
                $crate::value::pretty(&self.v)
            }

            fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
                <Self as $crate::value::Shape>::repr(py, &self.v)
            }

            fn __hash__(&self) -> u64 {
                $crate::value::hash_value(&self.v)
            }

            fn __reduce__<'py>(
                &self,
                py: Python<'py>,
            ) -> PyResult<(Bound<'py, PyAny>, (&'static str, String))> {
                Ok((
                    $crate::value::reconstructor(py)?.clone(),
                    (stringify!($name), self.v.to_string()),
                ))
            }

            $( $($extra)* )?
        }
    };
}

pub(crate) use value_class;
