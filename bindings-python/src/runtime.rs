//! The one lazily built tokio runtime behind `AsyncCache`, safe across `fork()` and
//! interpreter exit.
//!
//! - After `fork()` the child has no runtime threads: the runtime is keyed by pid and a
//!   child builds its own (the parent's is leaked in the child, never dropped there).
//! - At exit, `atexit` calls [`shutdown`] before the interpreter finalizes, so no tokio
//!   thread tries to take the GIL from a dying interpreter (the crash of
//!   pyo3-async-runtimes issue #40); later calls fail instead of crashing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use polycache::{Error, ErrorKind};
use tokio::runtime::Runtime;

static RUNTIME: Mutex<Option<(u32, Arc<Runtime>)>> = Mutex::new(None);
static STOPPED: AtomicBool = AtomicBool::new(false);

/// Whether the interpreter is exiting (tokio tasks must not call into Python then).
pub fn stopped() -> bool {
    STOPPED.load(Ordering::Acquire)
}

/// The runtime of this process, built on first use.
pub fn get() -> polycache::Result<Arc<Runtime>> {
    if stopped() {
        return Err(Error::new(
            ErrorKind::Connection,
            "the interpreter is shutting down",
        ));
    }
    let mut slot = RUNTIME.lock().unwrap_or_else(PoisonError::into_inner);
    let pid = std::process::id();
    match slot.as_ref() {
        Some((owner, runtime)) if *owner == pid => Ok(runtime.clone()),
        other => {
            if let Some((_, inherited)) = other {
                // Forked: the parent's worker threads do not exist here; leak its runtime.
                std::mem::forget(inherited.clone());
            }
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("polycache")
                .enable_all()
                .build()
                .map_err(|e| Error::new(ErrorKind::Config, format!("tokio runtime: {e}")))?;
            let runtime = Arc::new(runtime);
            *slot = Some((pid, runtime.clone()));
            Ok(runtime)
        }
    }
}

/// Stops the runtime (called from `atexit`, with the GIL released).
pub fn shutdown() {
    STOPPED.store(true, Ordering::Release);
    let taken = RUNTIME
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    if let Some((owner, runtime)) = taken {
        if owner != std::process::id() {
            std::mem::forget(runtime);
            return;
        }
        match Arc::try_unwrap(runtime) {
            Ok(runtime) => runtime.shutdown_timeout(Duration::from_millis(500)),
            // Still referenced by a cache: its tasks see `stopped()` and leave Python alone.
            Err(shared) => std::mem::forget(shared),
        }
    }
}
