//! `polycache._native`: the PyO3 module behind the `polycache` Python package. Thin:
//! conversion in `value.rs`, errors in `errors.rs`, the runtime in `runtime.rs`; all cache
//! logic lives in the `polycache` crate.

mod asyncio;
mod cache;
mod contract;
mod errors;
mod fresh;
mod runtime;
mod value;

use pyo3::prelude::*;

/// Stops the async runtime before the interpreter finalizes (registered with `atexit`).
#[pyfunction]
fn _shutdown(py: Python<'_>) {
    py.detach(runtime::shutdown);
}

/// Makes every near tier inherited from the parent inert in a forked child (registered
/// with `os.register_at_fork`): its tracking threads did not survive the fork.
#[pyfunction]
fn _after_fork() {
    polycache::after_fork();
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // Whether dicts and strs are read in place (value/layout.rs), for tests and bug reports.
    m.add("_reads_cpython_layout", value::detect_layout(m.py()))?;
    errors::register(m)?;
    cache::register(m)?;
    contract::register(m)?;
    fresh::register(m)?;
    m.add_function(wrap_pyfunction!(_shutdown, m)?)?;
    m.add_function(wrap_pyfunction!(_after_fork, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
