//! polycache's `ErrorKind` to the WIT `error` variant: the one place the mapping lives.

use polycache::{Error, ErrorKind};

use crate::bindings::polycache::cache::types::Error as WitError;

/// The WIT error for a core error; the payload is the message without the kind prefix.
pub(crate) fn to_wit(err: Error) -> WitError {
    let message = err.message().to_owned();
    match err.kind() {
        ErrorKind::Config => WitError::Config(message),
        ErrorKind::Key => WitError::Key(message),
        ErrorKind::Codec => WitError::Codec(message),
        ErrorKind::Connection => WitError::Connection(message),
        ErrorKind::Timeout => WitError::Timeout(message),
        ErrorKind::Server => WitError::Server(message),
        ErrorKind::Cluster => WitError::Cluster(message),
        ErrorKind::Loader => WitError::Loader(message),
        ErrorKind::Writer => WitError::Writer(message),
        // A kind newer than this WIT: report it as a server error naming the kind, until
        // the WIT gains the case (a new case is a new package version).
        other => WitError::Server(format!("{other}: {message}")),
    }
}

/// Maps a core result into a WIT result.
pub(crate) fn wit<T>(result: polycache::Result<T>) -> Result<T, WitError> {
    result.map_err(to_wit)
}
