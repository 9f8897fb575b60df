//! One error type for the whole crate. Bindings map [`ErrorKind`] to same-named host errors
//! (Python exception classes, JS `err.code` from [`ErrorKind::code`], a WIT `variant`) in
//! exactly one file each.
//!
//! One message format: every binding shows [`Error::message`], the message without the
//! kind, because each host carries the kind in its own channel (the exception class, the
//! `code`, the variant case). Only Rust's `Display`, which has no such channel, puts the
//! kind in front (`Timeout error: …`).

use std::fmt;
use std::sync::Arc;

/// What went wrong, coarse enough to act on. New kinds may be added, so match with a
/// wildcard arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Invalid configuration or URL.
    Config,
    /// An unusable cache key (for example an empty one).
    Key,
    /// A value that cannot be encoded, or stored bytes that cannot be decoded.
    Codec,
    /// Redis could not be reached or the connection broke.
    Connection,
    /// Redis did not answer within the configured bound.
    Timeout,
    /// Redis answered with an error reply.
    Server,
    /// Redis Cluster could not route the request (slots moving, cluster down).
    Cluster,
    /// The loader supplied by the caller failed; the original error is the source.
    Loader,
    /// The write-through writer failed; the cache was not touched.
    Writer,
}

impl ErrorKind {
    /// The stable name used by every binding (`"Timeout"`, `"Codec"` …).
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Config => "Config",
            ErrorKind::Key => "Key",
            ErrorKind::Codec => "Codec",
            ErrorKind::Connection => "Connection",
            ErrorKind::Timeout => "Timeout",
            ErrorKind::Server => "Server",
            ErrorKind::Cluster => "Cluster",
            ErrorKind::Loader => "Loader",
            ErrorKind::Writer => "Writer",
        }
    }

    /// The stable JS `err.code`: `E` + the name in capitals (`ETIMEOUT`, `ECODEC` …), in
    /// the style of Node's own `ECONNREFUSED`.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::Config => "ECONFIG",
            ErrorKind::Key => "EKEY",
            ErrorKind::Codec => "ECODEC",
            ErrorKind::Connection => "ECONNECTION",
            ErrorKind::Timeout => "ETIMEOUT",
            ErrorKind::Server => "ESERVER",
            ErrorKind::Cluster => "ECLUSTER",
            ErrorKind::Loader => "ELOADER",
            ErrorKind::Writer => "EWRITER",
        }
    }

    /// Every kind, in declaration order (bindings iterate this to build their mapping).
    pub const ALL: [ErrorKind; 9] = [
        ErrorKind::Config,
        ErrorKind::Key,
        ErrorKind::Codec,
        ErrorKind::Connection,
        ErrorKind::Timeout,
        ErrorKind::Server,
        ErrorKind::Cluster,
        ErrorKind::Loader,
        ErrorKind::Writer,
    ];
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

type Source = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// The error of every fallible polycache call. Cheap to clone (single-flight hands one
/// failure to every waiter), and it keeps the host's original error as its source so a
/// binding can re-raise a loader's own exception unchanged.
#[derive(Clone)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Source>,
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error of `kind` with a message for humans.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// Attaches the underlying cause.
    #[must_use]
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// A loader failure carrying the caller's own error.
    pub fn loader(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        let message = source.to_string();
        Error::new(ErrorKind::Loader, message).with_source(source)
    }

    /// A writer failure carrying the caller's own error.
    pub fn writer(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        let message = source.to_string();
        Error::new(ErrorKind::Writer, message).with_source(source)
    }

    pub(crate) fn config(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Config, message)
    }

    pub(crate) fn codec(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Codec, message)
    }

    /// This error with the node it happened on (`host:port`) in front of its message.
    #[cfg(feature = "redis")]
    pub(crate) fn on_node(mut self, node: &str) -> Self {
        self.message = format!("{node}: {}", self.message);
        self
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message without the kind prefix: what every binding shows (see the module docs).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The original cause, if it is of type `T` (bindings use this to recover a host
    /// exception raised by a loader or writer).
    pub fn source_as<T: std::error::Error + 'static>(&self) -> Option<&T> {
        self.source.as_deref().and_then(|s| s.downcast_ref::<T>())
    }

    /// Redis did not answer in time.
    pub fn is_timeout(&self) -> bool {
        self.kind == ErrorKind::Timeout
    }

    /// Redis could not be reached.
    pub fn is_connection_error(&self) -> bool {
        self.kind == ErrorKind::Connection
    }

    /// A loader's answer that the key has no value (negative caching): return it from a
    /// loader, and `get_or_load` and `get_entry` return it while the cached "not found"
    /// lives (`negative_ttl`). Its kind is [`ErrorKind::Loader`]; tell it apart with
    /// [`Error::is_not_found`].
    pub fn not_found() -> Self {
        Error::new(ErrorKind::Loader, "not found").with_source(NotFound)
    }

    /// Whether this is [`Error::not_found`]: the key has no value, as its loader said.
    pub fn is_not_found(&self) -> bool {
        self.source_as::<NotFound>().is_some()
    }

    /// Bytes could not be decoded or a value could not be encoded.
    pub fn is_codec_error(&self) -> bool {
        self.kind == ErrorKind::Codec
    }
}

/// The source of [`Error::not_found`].
#[derive(Debug)]
struct NotFound;

impl fmt::Display for NotFound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not found")
    }
}

impl std::error::Error for NotFound {}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .field("source", &self.source.as_ref().map(|s| s.to_string()))
            .finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} error: {}", self.kind, self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

#[cfg(feature = "redis")]
impl From<redis::RedisError> for Error {
    fn from(err: redis::RedisError) -> Self {
        let kind = if err.is_timeout() {
            ErrorKind::Timeout
        } else if err.is_connection_refusal()
            || err.is_connection_dropped()
            || err.is_io_error()
            || err.is_unrecoverable_error()
        {
            ErrorKind::Connection
        } else if err.is_cluster_error() {
            ErrorKind::Cluster
        } else {
            ErrorKind::Server
        };
        Error::new(kind, err.to_string()).with_source(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_e_and_the_name_in_capitals() {
        for kind in ErrorKind::ALL {
            assert_eq!(
                kind.code(),
                format!("E{}", kind.name().to_ascii_uppercase())
            );
        }
        let err = Error::new(ErrorKind::Timeout, "no reply");
        assert_eq!(err.message(), "no reply");
        assert_eq!(err.to_string(), "Timeout error: no reply");
    }
}
