//! The bridge between tokio and asyncio: how `AsyncCache` calls complete, and how tokio
//! tasks call coroutine loaders and writers.
//!
//! Completions never take the GIL on a tokio thread. A finished call pushes its result
//! into its event loop's queue and, when the queue was empty, writes one byte to a socket
//! the loop watches (`loop.add_reader`). The loop thread then drains the whole queue at
//! once: converts each result to Python and resolves each future. Fifty concurrent calls
//! cost one wake-up of the loop, not fifty `call_soon_threadsafe` round trips.

use std::future::Future;
use std::io::{ErrorKind as IoErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex, PoisonError};

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyTuple;
use tokio::sync::oneshot;

use crate::errors::{self, PolycacheError};
use crate::runtime;
use crate::value::to_py;
use polycache::Value;

tokio::task_local! {
    /// The event loop of the call being served, for loaders that are coroutines.
    static EVENT_LOOP: Py<PyAny>;
}

/// Produces the Python result of a finished call, on the loop thread.
type Finish = Box<dyn FnOnce(Python<'_>) -> PyResult<Py<PyAny>> + Send>;

/// Finished calls of one event loop, waiting for the loop to pick them up.
struct LoopQueue {
    done: Mutex<Vec<(Py<PyAny>, Finish)>>,
    wake: UnixStream,
}

impl LoopQueue {
    fn push(&self, future: Py<PyAny>, finish: Finish) {
        let mut done = self.done.lock().unwrap_or_else(PoisonError::into_inner);
        let was_empty = done.is_empty();
        done.push((future, finish));
        drop(done);
        if was_empty {
            // A full socket buffer means a wake-up is already pending: nothing is lost.
            let _ = (&self.wake).write(&[1]);
        }
    }
}

/// The per-loop end of the queue: the loop calls `drain` when the socket is readable.
#[pyclass(module = "polycache._native", frozen)]
pub struct Completer {
    queue: Arc<LoopQueue>,
    reader: UnixStream,
}

impl std::fmt::Debug for Completer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Completer")
            .field("fd", &self.reader.as_raw_fd())
            .finish()
    }
}

#[pymethods]
impl Completer {
    fn drain(&self, py: Python<'_>) -> PyResult<()> {
        // Empty the socket first, then the queue: a push after the take writes again.
        let mut buf = [0u8; 256];
        loop {
            match (&self.reader).read(&mut buf) {
                Ok(n) if n == buf.len() => continue,
                Ok(_) => break,
                Err(e) if e.kind() == IoErrorKind::WouldBlock => break,
                Err(e) if e.kind() == IoErrorKind::Interrupted => continue,
                Err(e) => return Err(PolycacheError::new_err(e.to_string())),
            }
        }
        let done = std::mem::take(
            &mut *self
                .queue
                .done
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for (future, finish) in done {
            let future = future.bind(py);
            if future.call_method0("done")?.is_truthy()? {
                continue; // cancelled by the caller
            }
            match finish(py) {
                Ok(value) => future.call_method1("set_result", (value,))?,
                Err(err) => future.call_method1("set_exception", (err.into_value(py),))?,
            };
        }
        Ok(())
    }
}

/// `weakref.WeakKeyDictionary` of event loop → its `Completer`.
static COMPLETERS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn queue_of(py: Python<'_>, event_loop: &Bound<'_, PyAny>) -> PyResult<Arc<LoopQueue>> {
    let completers = COMPLETERS
        .get_or_try_init(py, || -> PyResult<_> {
            Ok(py
                .import("weakref")?
                .call_method0("WeakKeyDictionary")?
                .unbind())
        })?
        .bind(py);
    if let Ok(found) = completers
        .call_method1("get", (event_loop,))?
        .cast::<Completer>()
    {
        return Ok(found.get().queue.clone());
    }
    let (reader, wake) = UnixStream::pair().map_err(|e| PolycacheError::new_err(e.to_string()))?;
    reader
        .set_nonblocking(true)
        .map_err(|e| PolycacheError::new_err(e.to_string()))?;
    wake.set_nonblocking(true)
        .map_err(|e| PolycacheError::new_err(e.to_string()))?;
    let fd = reader.as_raw_fd();
    let queue = Arc::new(LoopQueue {
        done: Mutex::new(Vec::new()),
        wake,
    });
    let completer = Bound::new(
        py,
        Completer {
            queue: queue.clone(),
            reader,
        },
    )?;
    event_loop.call_method1("add_reader", (fd, completer.getattr("drain")?))?;
    completers.set_item(event_loop, &completer)?;
    Ok(queue)
}

/// Runs `work` on the tokio runtime and returns an asyncio future for its result;
/// `convert` turns the result into a Python object on the loop thread.
pub fn spawn<T, F, C>(py: Python<'_>, work: F, convert: C) -> PyResult<Bound<'_, PyAny>>
where
    T: Send + 'static,
    F: Future<Output = polycache::Result<T>> + Send + 'static,
    C: FnOnce(Python<'_>, T) -> PyResult<Py<PyAny>> + Send + 'static,
{
    let event_loop = py.import("asyncio")?.call_method0("get_running_loop")?;
    let future = event_loop.call_method0("create_future")?;
    let queue = queue_of(py, &event_loop)?;
    let runtime = runtime::get().map_err(errors::to_py)?;
    let future_ref = future.clone().unbind();
    runtime.spawn(EVENT_LOOP.scope(event_loop.unbind(), async move {
        let outcome = work.await;
        if runtime::stopped() {
            return; // the interpreter is exiting: leave Python alone
        }
        let finish: Finish = Box::new(move |py| convert(py, outcome.map_err(errors::to_py)?));
        queue.push(future_ref, finish);
    }));
    Ok(future)
}

/// Runs `work` as a call served on `event_loop`: a loader inside it that returns a
/// coroutine has it run there. For work that may outlive the call that started it (a
/// background refresh, a load finishing after `soft_timeout`), which `spawn`'s scope does
/// not reach.
pub async fn on_loop<F: Future>(event_loop: Py<PyAny>, work: F) -> F::Output {
    EVENT_LOOP.scope(event_loop, work).await
}

/// The done-callback of a coroutine scheduled on the event loop from a tokio task.
#[pyclass(module = "polycache._native", frozen)]
struct Done {
    sender: Mutex<Option<oneshot::Sender<PyResult<Py<PyAny>>>>>,
}

#[pymethods]
impl Done {
    fn __call__(&self, future: &Bound<'_, PyAny>) {
        let result = future.call_method0("result").map(Bound::unbind);
        if let Some(sender) = self
            .sender
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            let _ = sender.send(result);
        }
    }
}

/// The `(cache id, key)` pairs whose loader runs in the current asyncio context: a load
/// for a key that is already loading in this context is a loader asking for its own key.
/// (Core detects that on the polling thread; an asyncio loader runs on the event loop, so
/// the binding carries the mark in the loader's context.)
static LOADING: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn loading_var(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    Ok(LOADING
        .get_or_try_init(py, || -> PyResult<_> {
            Ok(py
                .import("contextvars")?
                .getattr("ContextVar")?
                .call1(("polycache_loading",))?
                .unbind())
        })?
        .bind(py))
}

/// For a load of `key` in `cache` called from the current context: the error when that key
/// is already loading here, else a context for the loader with the key marked.
pub fn loading_context(
    py: Python<'_>,
    cache: usize,
    key: &str,
) -> PyResult<Result<Py<PyAny>, polycache::Error>> {
    let var = loading_var(py)?;
    let marked = var.call_method1("get", (PyTuple::empty(py),))?;
    let mark = (cache, key).into_pyobject(py)?;
    if marked.contains(&mark)? {
        return Ok(Err(polycache::patterns::reentrant_load(key)));
    }
    let context = py.import("contextvars")?.call_method0("copy_context")?;
    let with_mark = marked.add(PyTuple::new(py, [mark])?)?;
    context.call_method1("run", (var.getattr("set")?, with_mark))?;
    Ok(Ok(context.unbind()))
}

/// Calls an async (or plain) Python function with `args` from a tokio task: a coroutine is
/// scheduled on the caller's event loop (in `context` when given) and awaited through a
/// done-callback.
pub async fn call(
    func: Py<PyAny>,
    args: Vec<Value>,
    context: Option<Py<PyAny>>,
    host_error: fn(PyErr) -> polycache::Error,
) -> polycache::Result<Py<PyAny>> {
    let event_loop = EVENT_LOOP
        .try_with(|l| Python::attach(|py| l.clone_ref(py)))
        .map_err(|_| {
            host_error(PolycacheError::new_err(
                "no running event loop for the callback",
            ))
        })?;
    let (sender, receiver) = oneshot::channel();
    // The callable may be a plain function doing slow work: it runs on a blocking-pool
    // thread, never on a runtime worker, so it cannot hold up other calls' I/O and timers.
    // A coroutine it returns runs on the caller's event loop.
    let call = move || {
        Python::attach(|py| -> PyResult<Called> {
            let args = args
                .iter()
                .map(|a| to_py(py, a))
                .collect::<PyResult<Vec<_>>>()?;
            let out = func.call1(py, PyTuple::new(py, args)?)?;
            let asyncio = py.import("asyncio")?;
            if !asyncio.call_method1("iscoroutine", (&out,))?.is_truthy()? {
                return Ok(Called::Returned(out)); // a plain function: its return value
            }
            let done = Done {
                sender: Mutex::new(Some(sender)),
            };
            let schedule = asyncio.getattr("run_coroutine_threadsafe")?;
            // The task takes the context current when it is scheduled.
            let scheduled = match &context {
                Some(context) => context.call_method1(py, "run", (schedule, out, event_loop))?,
                None => schedule.call1((out, event_loop))?.unbind(),
            };
            scheduled.call_method1(py, "add_done_callback", (done,))?;
            Ok(Called::Scheduled(scheduled))
        })
    };
    let scheduled = tokio::task::spawn_blocking(call)
        .await
        .map_err(|e| {
            host_error(PolycacheError::new_err(format!(
                "the callback panicked: {e}"
            )))
        })?
        .map_err(host_error)?;
    // Held until the coroutine is done: asyncio keeps tasks only weakly, and a task waiting
    // on a stream (whose protocol holds its reader weakly) is otherwise referenced by a
    // cycle alone, which the garbage collector ends mid-load.
    let _running = match scheduled {
        Called::Returned(value) => return Ok(value),
        Called::Scheduled(running) => running,
    };
    match receiver.await {
        Ok(result) => result.map_err(host_error),
        Err(_) => Err(host_error(PolycacheError::new_err(
            "the coroutine was dropped",
        ))),
    }
}

/// What calling a loader or writer gave: its return value, or its coroutine scheduled on
/// the event loop (the `concurrent.futures.Future` that `run_coroutine_threadsafe` made).
enum Called {
    Returned(Py<PyAny>),
    Scheduled(Py<PyAny>),
}
