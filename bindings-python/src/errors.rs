//! The one place where core's ErrorKind becomes a Python exception (and back).

use polycache::{Error, ErrorKind};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(
    polycache,
    PolycacheError,
    PyException,
    "Base class of every polycache error."
);
create_exception!(
    polycache,
    ConfigError,
    PolycacheError,
    "Invalid configuration or URL."
);
create_exception!(
    polycache,
    KeyError,
    PolycacheError,
    "An unusable cache key (e.g. empty)."
);
create_exception!(
    polycache,
    CodecError,
    PolycacheError,
    "A value that cannot be encoded."
);
create_exception!(
    polycache,
    ConnectionError,
    PolycacheError,
    "Redis could not be reached."
);
create_exception!(
    polycache,
    TimeoutError,
    PolycacheError,
    "Redis did not answer in time."
);
create_exception!(
    polycache,
    ServerError,
    PolycacheError,
    "Redis answered with an error."
);
create_exception!(
    polycache,
    ClusterError,
    PolycacheError,
    "Redis Cluster could not route."
);
create_exception!(polycache, LoaderError, PolycacheError, "A loader failed.");
create_exception!(
    polycache,
    WriterError,
    PolycacheError,
    "A write-through writer failed."
);

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

/// Core error → Python exception. A host exception comes back as itself.
pub fn to_py(err: Error) -> PyErr {
    if let Some(HostError(original)) = err.source_as::<HostError>() {
        return Python::attach(|py| original.clone_ref(py));
    }
    let message = err.message().to_owned();
    match err.kind() {
        ErrorKind::Config => ConfigError::new_err(message),
        ErrorKind::Key => KeyError::new_err(message),
        ErrorKind::Codec => CodecError::new_err(message),
        ErrorKind::Connection => ConnectionError::new_err(message),
        ErrorKind::Timeout => TimeoutError::new_err(message),
        ErrorKind::Server => ServerError::new_err(message),
        ErrorKind::Cluster => ClusterError::new_err(message),
        ErrorKind::Loader => LoaderError::new_err(message),
        ErrorKind::Writer => WriterError::new_err(message),
        _ => PolycacheError::new_err(message),
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("PolycacheError", py.get_type::<PolycacheError>())?;
    m.add("ConfigError", py.get_type::<ConfigError>())?;
    m.add("KeyError", py.get_type::<KeyError>())?;
    m.add("CodecError", py.get_type::<CodecError>())?;
    m.add("ConnectionError", py.get_type::<ConnectionError>())?;
    m.add("TimeoutError", py.get_type::<TimeoutError>())?;
    m.add("ServerError", py.get_type::<ServerError>())?;
    m.add("ClusterError", py.get_type::<ClusterError>())?;
    m.add("LoaderError", py.get_type::<LoaderError>())?;
    m.add("WriterError", py.get_type::<WriterError>())?;
    Ok(())
}
