//! The one place where core's ErrorKind becomes a Python exception (and back).
//!
//! Every polycache failure is a `polycache.PolycacheError`. A kind that means what a
//! builtin exception means also subclasses that builtin, so `except ValueError` around a
//! bad option or TTL and `except TimeoutError` around a slow call keep working; no class
//! takes a builtin's name without subclassing it.

use polycache::{Error, ErrorKind};
use pyo3::create_exception;
use pyo3::exceptions::{PyConnectionError, PyException, PyTimeoutError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};

create_exception!(
    polycache,
    PolycacheError,
    PyException,
    "Base class of every polycache error."
);

/// A builtin exception class a kind's class also derives from.
type Builtin = for<'py> fn(Python<'py>) -> Bound<'py, PyType>;

/// Each kind's class: name, builtin base (if the kind means what the builtin means), doc.
/// In the order of `ErrorKind::ALL`.
const CLASSES: [(ErrorKind, &str, Option<Builtin>, &str); 9] = [
    (
        ErrorKind::Config,
        "ConfigError",
        Some(|py| py.get_type::<PyValueError>()),
        "Invalid configuration, URL, option or TTL (also a ValueError).",
    ),
    (
        ErrorKind::Key,
        // Not `KeyError`: the builtin means "no such key in a mapping", and a missing
        // cache key is a miss (None), never an exception. An unusable key (empty, too
        // long for a schema) is a bad argument value.
        "InvalidKeyError",
        Some(|py| py.get_type::<PyValueError>()),
        "An unusable cache key, e.g. an empty one (also a ValueError).",
    ),
    (
        ErrorKind::Codec,
        // TypeError, as json.dumps raises for a value it cannot serialize: the common
        // case is a value of a type (or shape: too deep, an int over 64 bits) polycache
        // cannot store.
        "CodecError",
        Some(|py| py.get_type::<PyTypeError>()),
        "A value that cannot be stored, or bytes that cannot be decoded (also a TypeError).",
    ),
    (
        ErrorKind::Connection,
        "ConnectionError",
        Some(|py| py.get_type::<PyConnectionError>()),
        "Redis could not be reached or the connection broke (also a builtin ConnectionError).",
    ),
    (
        ErrorKind::Timeout,
        "TimeoutError",
        Some(|py| py.get_type::<PyTimeoutError>()),
        "Redis did not answer in time (also a builtin TimeoutError).",
    ),
    (
        ErrorKind::Server,
        "ServerError",
        None,
        "Redis answered with an error.",
    ),
    (
        ErrorKind::Cluster,
        "ClusterError",
        None,
        "Redis Cluster could not route.",
    ),
    (ErrorKind::Loader, "LoaderError", None, "A loader failed."),
    (
        ErrorKind::Writer,
        "WriterError",
        None,
        "A write-through writer failed.",
    ),
];

/// The classes of [`CLASSES`], created once: `type(name, (PolycacheError, builtin), …)`.
static TYPES: PyOnceLock<Vec<Py<PyType>>> = PyOnceLock::new();

fn types(py: Python<'_>) -> PyResult<&Vec<Py<PyType>>> {
    TYPES.get_or_try_init(py, || {
        CLASSES
            .iter()
            .map(|(_, name, builtin, doc)| {
                let base = py.get_type::<PolycacheError>();
                let bases = match builtin {
                    Some(builtin) => PyTuple::new(py, [base, builtin(py)])?,
                    None => PyTuple::new(py, [base])?,
                };
                let dict = PyDict::new(py);
                dict.set_item("__module__", "polycache")?;
                dict.set_item("__doc__", *doc)?;
                let class = py.get_type::<PyType>().call1((*name, bases, dict))?;
                Ok(class.cast_into::<PyType>()?.unbind())
            })
            .collect()
    })
}

/// The Python exception of `kind` with `message`.
pub fn new_err(kind: ErrorKind, message: impl Into<String>) -> PyErr {
    let message = message.into();
    Python::attach(|py| {
        let class = CLASSES
            .iter()
            .position(|(k, ..)| *k == kind)
            .and_then(|i| Some(types(py).ok()?[i].clone_ref(py)));
        match class {
            Some(class) => PyErr::from_type(class.into_bound(py), message),
            None => PolycacheError::new_err(message),
        }
    })
}

/// A Python exception raised by a loader or writer, carried through core unchanged.
#[derive(Debug)]
pub struct HostError(pub PyErr);

impl std::fmt::Display for HostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for HostError {}

/// A loader's exception as a core error (its source is the original exception).
pub fn loader_error(err: PyErr) -> Error {
    Error::loader(HostError(err))
}

/// A writer's exception as a core error.
pub fn writer_error(err: PyErr) -> Error {
    Error::writer(HostError(err))
}

/// Core error → Python exception: core's message (without the kind, which is the class).
/// A host exception comes back as itself.
pub fn to_py(err: Error) -> PyErr {
    if let Some(HostError(original)) = err.source_as::<HostError>() {
        return Python::attach(|py| original.clone_ref(py));
    }
    new_err(err.kind(), err.message())
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("PolycacheError", py.get_type::<PolycacheError>())?;
    for ((_, name, ..), class) in CLASSES.iter().zip(types(py)?) {
        m.add(*name, class.clone_ref(py))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_class_per_kind_in_order() {
        let kinds: Vec<ErrorKind> = CLASSES.iter().map(|(kind, ..)| *kind).collect();
        assert_eq!(kinds, ErrorKind::ALL);
    }
}
